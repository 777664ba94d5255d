"""Celery tasks of dunning: thin, ids in, a service call inside (star-imported by tasks.py)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

__all__ = [
    "deliver_dunning_messages",
    "make_dunning_letter_batch",
    "nightly_dunning",
    "prepare_dunning_letters",
    "sync_dunning_outcomes",
]


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def nightly_dunning() -> None:
    """The beat's nightly run. A killed worker's run rolls back and runs again: no duplicates."""
    from receivables import dunning

    dunning.sync_outcomes()
    dunning.run_dunning(day=timezone.localdate())


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver_dunning_messages(message_ids: list[int]) -> None:
    """Send these outbox messages (each claimed once), then follow their outcomes."""
    from notifications.services import deliver
    from receivables import dunning

    for message_id in message_ids:
        deliver(message_id)
    dunning.sync_outcomes(message_ids=message_ids)


@shared_task(acks_late=True, ignore_result=True)
def sync_dunning_outcomes() -> None:
    from receivables import dunning

    dunning.sync_outcomes()


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def prepare_dunning_letters(notice_ids: list[int]) -> None:
    from receivables import dunning_letters

    dunning_letters.prepare_letters(notice_ids)


@shared_task(acks_late=True, ignore_result=True)
def make_dunning_letter_batch() -> None:
    from receivables import dunning_letters

    dunning_letters.make_letter_batch()
