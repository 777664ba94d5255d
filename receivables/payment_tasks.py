"""Celery tasks of payment files: check, post, and the nightly deadline check."""

from __future__ import annotations

from celery import shared_task

from portal.models import User

__all__ = ["check_collector_files", "check_payment_file", "post_payment_file"]


@shared_task(acks_late=True, reject_on_worker_lost=True)
def check_payment_file(import_id: int) -> None:
    from receivables import imports
    from receivables.models import PaymentImport

    imp = PaymentImport.objects.filter(pk=import_id).select_related("collector").first()
    if imp is not None:
        imports.check_file(imp)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def post_payment_file(import_id: int, user_id: int | None = None) -> None:
    """Post a checked file; a rerun finds it posted (or waits for the posting one) and stops."""
    from receivables import imports
    from receivables.models import PaymentImport

    imp = PaymentImport.objects.filter(pk=import_id).first()
    if imp is None:
        return
    user = User.objects.filter(pk=user_id).first() if user_id else None
    imports.post_file(imp, by=user)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def check_collector_files() -> int:
    """Nightly: a task for every working day a collector's file is missing past its deadline."""
    from receivables import imports

    return imports.check_missing_files()
