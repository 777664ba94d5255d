"""Celery tasks of the meters app: checking and posting reading imports.

Both are safe to run twice: a check claims only an uploaded (or interrupted)
file and starts over; posting locks the import row and does nothing once the
file is posted.
"""

from __future__ import annotations

from celery import shared_task

from meters import imports
from meters.models import ReadingImport
from portal.models import User


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def check_reading_import(import_id: int) -> None:
    imp = ReadingImport.objects.filter(pk=import_id).first()
    if imp is not None:
        imports.check_import(imp)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def post_reading_import(import_id: int, user_id: int) -> None:
    imp = ReadingImport.objects.filter(pk=import_id).first()
    if imp is None:
        return
    try:
        imports.commit_import(imp=imp, committed_by=User.objects.get(pk=user_id))
    except imports.PostingFailed as exc:
        imports.fail_posting(imp=imp, problem=str(exc))
