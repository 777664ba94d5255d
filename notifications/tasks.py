from __future__ import annotations

from celery import shared_task

from notifications import services


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def send_message(message_id: int) -> None:
    services.deliver(message_id)


@shared_task(acks_late=True, ignore_result=True)
def dispatch_due() -> None:
    services.dispatch_due()
