"""Celery tasks of billing runs: ids in, billing.runs does the work (see its docstring).

Every task is idempotent and runs with acks_late and reject_on_worker_lost: a
worker killed mid-task has its task delivered again, and the rerun repeats nothing.
"""

from __future__ import annotations

from celery import shared_task

from billing import runs
from billing.models import BillingRun


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def price_run(run_id: int) -> None:
    runs.price_run(run=BillingRun.objects.get(pk=run_id))


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def issue_run(run_id: int) -> None:
    runs.queue_chunks(run=BillingRun.objects.get(pk=run_id))


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def issue_chunk(run_id: int, invoice_ids: list[int]) -> None:
    runs.process_chunk(run=BillingRun.objects.get(pk=run_id), invoice_ids=invoice_ids)
