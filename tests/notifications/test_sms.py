"""SMS through the console provider and through the Twilio adapter over real HTTP."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from time_machine import TimeMachineFixture

from notifications.models import Channel, OutboxMessage, Status
from notifications.services import dispatch_due, queue_sms
from tests.notifications.conftest import SmsApi, free_port

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def send_code(capture: Callable, to: str = "+40721000111") -> OutboxMessage:
    with capture(execute=True):
        message = queue_sms(to=to, kind="login_code", text="Guichet code: 482913")
    message.refresh_from_db()
    return message


def test_it_writes_console_sms_to_the_log_file(
    settings: Any, tmp_path: Path, django_capture_on_commit_callbacks: Callable
) -> None:
    settings.SMS_PROVIDER = "console"
    settings.SMS_LOG_FILE = tmp_path / "logs" / "sms.log"

    message = send_code(django_capture_on_commit_callbacks)

    assert message.channel == Channel.SMS
    assert message.status == Status.SENT
    assert message.provider_id == f"console-{message.public_id}"
    (line,) = settings.SMS_LOG_FILE.read_text(encoding="utf-8").splitlines()
    assert line.endswith(f"\t{message.public_id}\t+40721000111\tGuichet code: 482913")


def test_it_sends_through_the_twilio_api(
    sms_api: SmsApi, django_capture_on_commit_callbacks: Callable
) -> None:
    message = send_code(django_capture_on_commit_callbacks)

    assert message.status == Status.SENT
    assert message.provider_id == "SM123"
    assert message.error == ""
    (request,) = sms_api.requests
    assert request["path"] == f"/2010-04-01/Accounts/{sms_api.account_sid}/Messages.json"
    assert request["form"] == {
        "To": "+40721000111",
        "From": "+40700000000",
        "Body": "Guichet code: 482913",
    }
    user_pass = base64.b64decode(request["authorization"].removeprefix("Basic ")).decode()
    assert user_pass == f"{sms_api.account_sid}:{sms_api.auth_token}"


def test_it_fails_an_sms_the_provider_refuses(
    sms_api: SmsApi,
    django_capture_on_commit_callbacks: Callable,
    time_machine: TimeMachineFixture,
) -> None:
    time_machine.move_to(T0, tick=False)
    sms_api.answers = [
        (
            400,
            {
                "code": 21211,
                "status": 400,
                "message": "The 'To' number +40123 is not a valid phone number.",
            },
        )
    ]

    message = send_code(django_capture_on_commit_callbacks, to="+40123")

    assert message.status == Status.FAILED
    assert message.error == (
        "SMS refused: HTTP 400 The 'To' number +40123 is not a valid phone number."
    )
    # Final: the sweeper does not try again.
    time_machine.shift(timedelta(hours=1))
    assert dispatch_due() == 0
    assert len(sms_api.requests) == 1


def test_it_fails_when_the_provider_rejects_our_credentials(
    sms_api: SmsApi, settings: Any, django_capture_on_commit_callbacks: Callable
) -> None:
    settings.SMS_TWILIO_AUTH_TOKEN = "wrong-token"

    message = send_code(django_capture_on_commit_callbacks)

    assert message.status == Status.FAILED
    assert message.error == "SMS refused: HTTP 401 Authenticate"


def test_it_retries_an_sms_later_when_the_provider_is_busy(
    sms_api: SmsApi,
    django_capture_on_commit_callbacks: Callable,
    time_machine: TimeMachineFixture,
) -> None:
    time_machine.move_to(T0, tick=False)
    sms_api.answers = [
        (503, {"message": "Service unavailable"}),
        (201, {"sid": "SM123", "status": "queued"}),
    ]

    message = send_code(django_capture_on_commit_callbacks)

    assert message.status == Status.QUEUED
    assert message.attempts == 1
    assert message.error == "SMS provider busy: HTTP 503"
    assert message.not_before == T0 + timedelta(minutes=1)

    time_machine.shift(timedelta(minutes=1))
    assert dispatch_due() == 1

    message.refresh_from_db()
    assert message.status == Status.SENT
    assert message.provider_id == "SM123"
    assert message.attempts == 2
    assert len(sms_api.requests) == 2


def test_it_retries_an_sms_later_when_the_provider_is_unreachable(
    sms_api: SmsApi,
    settings: Any,
    django_capture_on_commit_callbacks: Callable,
    time_machine: TimeMachineFixture,
) -> None:
    time_machine.move_to(T0, tick=False)
    settings.SMS_TWILIO_BASE_URL = f"http://127.0.0.1:{free_port()}"

    message = send_code(django_capture_on_commit_callbacks)

    assert message.status == Status.QUEUED
    assert message.error.startswith("SMS provider unreachable:")
    assert message.not_before == T0 + timedelta(minutes=1)
    assert sms_api.requests == []
