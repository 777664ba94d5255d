"""The e-mail outbox against a real SMTP server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connections, transaction
from time_machine import TimeMachineFixture

from notifications import tasks
from notifications.models import Channel, OutboxMessage, Status
from notifications.services import claim, dispatch_due, mark_bounced, queue_email, requeue
from portal.models import Customer
from tests.notifications.conftest import SmtpServer, free_port, point_django_at

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def queue_notice(to: str = "ana@example.com", **extra: Any) -> OutboxMessage:
    return queue_email(
        to=to,
        kind="statement",
        template="tests_notifications/notice",
        context={"name": "Ana Popescu"},
        language="ro",
        **extra,
    )


def test_it_sends_a_committed_email_over_smtp_once(
    smtp_server: SmtpServer, customer: Customer, django_capture_on_commit_callbacks: Callable
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        message = queue_notice(about=customer)
        # Nothing leaves before the change that caused it is committed.
        assert smtp_server.received == []

    assert len(callbacks) == 1
    assert len(smtp_server.received) == 1
    received = smtp_server.received[0]
    assert smtp_server.envelopes == [("no-reply@guichet.example", ["ana@example.com"])]
    assert received["Subject"] == "Your statement, Ana Popescu"
    assert received["To"] == "ana@example.com"
    text = received.get_body(preferencelist=("plain",))
    html = received.get_body(preferencelist=("html",))
    assert text is not None and "Hello Ana Popescu," in text.get_content()
    assert html is not None and "<p>Hello Ana Popescu,</p>" in html.get_content()

    message.refresh_from_db()
    assert message.status == Status.SENT
    assert message.channel == Channel.EMAIL
    assert message.attempts == 1
    assert message.sent_at is not None
    assert message.error == ""
    # The provider's id is the Message-ID the server received: bounces quote it.
    assert message.provider_id == received["Message-ID"]
    assert message.provider_id == f"<{message.public_id}@guichet.example>"
    assert list(OutboxMessage.objects.about(customer)) == [message]


def test_it_sends_once_when_the_task_runs_twice(
    smtp_server: SmtpServer, django_capture_on_commit_callbacks: Callable
) -> None:
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        message = queue_notice()
    # A redelivered task (acks_late) and a duplicate: neither sends again.
    tasks.send_message.delay(message.pk)
    tasks.send_message(message.pk)

    assert len(smtp_server.received) == 1
    message.refresh_from_db()
    assert message.status == Status.SENT
    assert message.attempts == 1


def make_message(**extra: Any) -> OutboxMessage:
    fields: dict[str, Any] = {
        "channel": Channel.EMAIL,
        "kind": "test",
        "to": "ana@example.com",
        "subject": "Test",
        "body_text": "Hello",
    }
    return OutboxMessage.objects.create(**{**fields, **extra})


def test_it_lets_only_the_first_claim_win() -> None:
    message = make_message()

    assert claim(message.pk) is True
    assert claim(message.pk) is False

    message.refresh_from_db()
    assert message.status == Status.SENDING
    assert message.attempts == 1
    assert message.claimed_at is not None


def test_it_does_not_claim_a_message_before_its_time(time_machine: TimeMachineFixture) -> None:
    time_machine.move_to(T0, tick=False)
    message = make_message(not_before=T0 + timedelta(minutes=5))

    assert claim(message.pk) is False
    time_machine.shift(timedelta(minutes=5))
    assert claim(message.pk) is True


@pytest.mark.django_db(transaction=True)
def test_it_lets_one_of_two_concurrent_claims_win() -> None:
    message = make_message()
    results: dict[str, bool] = {}
    first_claimed = threading.Event()
    finish_first = threading.Event()

    def first() -> None:
        try:
            with transaction.atomic():
                results["first"] = claim(message.pk)
                first_claimed.set()
                finish_first.wait(10)
        finally:
            connections.close_all()

    def second() -> None:
        try:
            results["second"] = claim(message.pk)
        finally:
            connections.close_all()

    first_thread = threading.Thread(target=first)
    first_thread.start()
    assert first_claimed.wait(10)
    second_thread = threading.Thread(target=second)
    second_thread.start()
    # The second UPDATE waits on the row the first one changed…
    second_thread.join(0.5)
    assert second_thread.is_alive()
    # …and once that commits, its WHERE status = 'queued' no longer matches.
    finish_first.set()
    first_thread.join(10)
    second_thread.join(10)

    assert results == {"first": True, "second": False}
    message.refresh_from_db()
    assert message.attempts == 1


def test_it_fails_a_message_whose_recipient_the_server_refuses(
    smtp_server: SmtpServer,
    django_capture_on_commit_callbacks: Callable,
    time_machine: TimeMachineFixture,
) -> None:
    time_machine.move_to(T0, tick=False)
    smtp_server.refuse.add("gone@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        message = queue_notice(to="gone@example.com")

    message.refresh_from_db()
    assert message.status == Status.FAILED
    assert message.error == "Recipient refused: gone@example.com: 550 5.1.1 Mailbox unavailable"
    assert smtp_server.received == []
    # A final refusal is not tried again by the sweeper.
    time_machine.shift(timedelta(hours=2))
    assert dispatch_due() == 0
    message.refresh_from_db()
    assert message.status == Status.FAILED


def test_it_sends_again_when_staff_requeue_a_failed_message(
    smtp_server: SmtpServer, django_capture_on_commit_callbacks: Callable
) -> None:
    smtp_server.refuse.add("ana@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        message = queue_notice()
    smtp_server.refuse.clear()  # the customer's mailbox is back

    with django_capture_on_commit_callbacks(execute=True):
        requeue(message=message)

    message.refresh_from_db()
    assert message.status == Status.SENT
    assert message.attempts == 2
    assert len(smtp_server.received) == 1


def test_it_keeps_a_message_queued_while_the_server_is_down(
    smtp_server: SmtpServer,
    settings: Any,
    time_machine: TimeMachineFixture,
    django_capture_on_commit_callbacks: Callable,
) -> None:
    time_machine.move_to(T0, tick=False)
    point_django_at(settings, free_port())  # nothing listens there
    with django_capture_on_commit_callbacks(execute=True):
        message = queue_notice()

    message.refresh_from_db()
    assert message.status == Status.QUEUED
    assert message.attempts == 1
    assert message.error.startswith("Mail server unreachable:")
    assert message.not_before == T0 + timedelta(minutes=1)
    # Not due yet: the sweeper leaves it alone.
    assert dispatch_due() == 0

    point_django_at(settings, smtp_server.port)  # the server is back
    assert dispatch_due() == 0
    time_machine.shift(timedelta(minutes=2))
    assert dispatch_due() == 1

    message.refresh_from_db()
    assert message.status == Status.SENT
    assert message.attempts == 2
    assert message.error == ""
    assert len(smtp_server.received) == 1


def test_it_gives_up_after_the_last_attempt(
    settings: Any,
    time_machine: TimeMachineFixture,
    django_capture_on_commit_callbacks: Callable,
) -> None:
    time_machine.move_to(T0, tick=False)
    settings.OUTBOX_MAX_ATTEMPTS = 2
    point_django_at(settings, free_port())
    with django_capture_on_commit_callbacks(execute=True):
        message = queue_notice()
    time_machine.shift(timedelta(minutes=1))

    assert dispatch_due() == 0

    message.refresh_from_db()
    assert message.status == Status.FAILED
    assert message.attempts == 2
    assert message.error.startswith("Mail server unreachable:")


def test_it_marks_a_message_lost_while_sending_as_failed(
    smtp_server: SmtpServer, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(T0, tick=False)
    message = make_message()
    assert claim(message.pk)  # …and the worker died here
    time_machine.shift(timedelta(minutes=61))

    assert dispatch_due() == 0

    message.refresh_from_db()
    assert message.status == Status.FAILED
    assert message.error == "Outcome unknown: the sender stopped while sending."
    assert smtp_server.received == []


def test_it_attaches_files_from_storage(
    smtp_server: SmtpServer, django_capture_on_commit_callbacks: Callable
) -> None:
    pdf = b"%PDF-1.4\n% statement of account\n"
    path = default_storage.save("statements/2026/C0100001.pdf", ContentFile(pdf))
    with django_capture_on_commit_callbacks(execute=True):
        message = queue_notice(
            attachments=[
                {"name": "statement-2026-03.pdf", "path": path, "content_type": "application/pdf"}
            ]
        )

    message.refresh_from_db()
    assert message.status == Status.SENT
    (attachment,) = smtp_server.received[0].iter_attachments()
    assert attachment.get_filename() == "statement-2026-03.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == pdf


def test_it_fails_a_message_whose_attachment_is_gone(
    smtp_server: SmtpServer, django_capture_on_commit_callbacks: Callable
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        message = queue_notice(
            attachments=[
                {
                    "name": "x.pdf",
                    "path": "statements/missing.pdf",
                    "content_type": "application/pdf",
                }
            ]
        )

    message.refresh_from_db()
    assert message.status == Status.FAILED
    assert message.error == "Attachment missing from storage: statements/missing.pdf"
    assert smtp_server.received == []


def test_it_leaves_no_row_and_sends_nothing_when_the_transaction_rolls_back(
    smtp_server: SmtpServer, django_capture_on_commit_callbacks: Callable
) -> None:
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        queue_notice()
        raise RuntimeError("the business change failed")

    assert callbacks == []
    assert not OutboxMessage.objects.exists()
    assert smtp_server.received == []


def test_it_records_a_bounce(
    smtp_server: SmtpServer, django_capture_on_commit_callbacks: Callable
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        message = queue_notice()
    message.refresh_from_db()
    other = make_message(status=Status.SENT, provider_id="<other@guichet.example>")

    changed = mark_bounced(provider_id=message.provider_id, reason="5.2.2 Mailbox full")

    assert changed == 1
    message.refresh_from_db()
    assert message.status == Status.BOUNCED
    assert message.error == "5.2.2 Mailbox full"
    other.refresh_from_db()
    assert other.status == Status.SENT
    assert mark_bounced(provider_id="<unknown@guichet.example>", reason="x") == 0
