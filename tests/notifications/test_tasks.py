"""The outbox through a real Celery worker consuming the (embedded) Redis broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun, task_prerun
from django.db import connections, transaction

from notifications.models import OutboxMessage, Status
from notifications.services import queue_email
from portal.celery import app
from tests.notifications.conftest import SmtpServer


def _close_worker_connections(**kwargs: Any) -> None:
    # The worker thread opened its own database connection; close it so the
    # test database can be flushed and dropped afterwards.
    connections.close_all()


@pytest.fixture
def celery_worker() -> Iterator[list[dict[str, Any]]]:
    """Start a worker in a thread; yields the tasks it ran (name, eager?, thread)."""
    ran: list[dict[str, Any]] = []

    def note_task(task: Any, **kwargs: Any) -> None:
        ran.append(
            {
                "name": task.name,
                "eager": task.request.is_eager,
                "thread": threading.current_thread(),
            }
        )

    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    task_prerun.connect(note_task, weak=False)
    task_postrun.connect(_close_worker_connections, weak=False)
    try:
        with start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING"):
            yield ran
    finally:
        task_prerun.disconnect(note_task)
        task_postrun.disconnect(_close_worker_connections)
        app.conf.task_always_eager = eager


def wait_for_status(message: OutboxMessage, status: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message.refresh_from_db()
        if message.status == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"message still {message.status!r} after {seconds}s: {message.error}")


@pytest.mark.django_db(transaction=True)
def test_it_sends_a_queued_email_through_the_worker_after_commit(
    celery_worker: list[dict[str, Any]], smtp_server: SmtpServer
) -> None:
    with transaction.atomic():
        message = queue_email(
            to="ana@example.com",
            kind="statement",
            template="tests_notifications/notice",
            context={"name": "Ana Popescu"},
        )

    # Published after commit (a task published earlier would find no row to
    # claim, and nothing would send the message until the sweeper).
    wait_for_status(message, Status.SENT)

    assert message.attempts == 1
    assert message.provider_id == f"<{message.public_id}@guichet.example>"
    (received,) = smtp_server.received
    assert received["Subject"] == "Your statement, Ana Popescu"
    # It went through the broker to the worker, not eagerly in this thread.
    (run,) = [r for r in celery_worker if r["name"] == "notifications.tasks.send_message"]
    assert run["eager"] is False
    assert run["thread"] is not threading.current_thread()
