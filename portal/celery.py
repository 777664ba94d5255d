"""The Celery app; every periodic schedule lives here."""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("guichet")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    # Retries and messages whose after-commit hook was lost.
    "outbox-dispatch-due": {"task": "notifications.tasks.dispatch_due", "schedule": 60.0},
    # Collectors' files missing past their Z+n deadline raise a task (early morning).
    "receivables-collector-files": {
        "task": "receivables.payment_tasks.check_collector_files",
        "schedule": crontab(hour=6, minute=15),
    },
    # The nightly dunning run (CELERY_TIMEZONE is UTC: 01:30 UTC is night in Europe).
    "dunning-nightly": {
        "task": "receivables.dunning_tasks.nightly_dunning",
        "schedule": crontab(hour=1, minute=30),
    },
    # Dunning notices follow their messages' outcomes (sent, or unknown: reconciliation list).
    "dunning-sync-outcomes": {
        "task": "receivables.dunning_tasks.sync_dunning_outcomes",
        "schedule": 300.0,
    },
    # The day's approved dunning letters go into one print batch (staff may make one earlier).
    "dunning-letter-batch": {
        "task": "receivables.dunning_tasks.make_dunning_letter_batch",
        "schedule": crontab(hour=14, minute=0),
    },
}
