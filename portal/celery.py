"""The Celery app; every periodic schedule lives here."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("guichet")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    # Retries and messages whose after-commit hook was lost.
    "outbox-dispatch-due": {"task": "notifications.tasks.dispatch_due", "schedule": 60.0},
}
