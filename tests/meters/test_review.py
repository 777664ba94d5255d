"""The coordinator reviews a flagged reading from the work queue."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from meters.models import Reading, ReadingSource, ReadingStatus, Register
from meters.services import record_reading
from portal.models import AuditEvent, Task, TaskStatus, User
from portal.roles import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def flagged(register: Register, add_history: Any, alice: User) -> Reading:
    today = timezone.localdate()
    add_history(
        register, [(today - timedelta(days=10 + 30 * i), 14500 - 300 * i) for i in range(10)]
    )
    read_at = datetime.combine(today, time(9), tzinfo=ZoneInfo(settings.TIME_ZONE))
    reading = record_reading(
        register=register,
        value=Decimal(16000),
        read_at=read_at,
        source=ReadingSource.CUSTOMER,
        entered_by=alice,
    )
    assert reading.status == ReadingStatus.FLAGGED
    return reading


def url(reading: Reading) -> str:
    return reverse("meters-office:reading-review", args=[reading.public_id])


def test_it_links_the_review_task_to_the_reading(
    flagged: Reading, make_staff: Callable[[Role], User], client_for: Callable[[User], Client]
) -> None:
    coordinator = make_staff(Role.METER_READING)
    task = Task.objects.get(source_id=flagged.pk)
    response = client_for(coordinator).get(reverse("office:task", args=[task.public_id]))
    assert url(flagged) in response.content.decode()
    page = client_for(coordinator).get(url(flagged)).content.decode()
    assert "16000" in page or "16,000" in page
    assert flagged.findings[0]["message"] in page


def test_it_keeps_a_reading_the_coordinator_accepts(
    flagged: Reading, make_staff: Callable[[Role], User], client_for: Callable[[User], Client]
) -> None:
    coordinator = make_staff(Role.METER_READING)
    response = client_for(coordinator).post(url(flagged), {"decision": "accept"})
    assert response.status_code == 302
    flagged.refresh_from_db()
    assert flagged.status == ReadingStatus.ACCEPTED
    assert Task.objects.get(source_id=flagged.pk).status == TaskStatus.DONE
    assert AuditEvent.objects.filter(action="meters.reading_reviewed", actor=coordinator).exists()


def test_it_needs_a_reason_to_reject(
    flagged: Reading, make_staff: Callable[[Role], User], client_for: Callable[[User], Client]
) -> None:
    client = client_for(make_staff(Role.METER_READING))
    response = client.post(url(flagged), {"decision": "reject", "reason": " "})
    assert response.status_code == 200
    assert "Give a reason" in response.content.decode()
    response = client.post(url(flagged), {"decision": "reject", "reason": "Photo shows 15,000"})
    flagged.refresh_from_db()
    assert flagged.status == ReadingStatus.REJECTED
    assert not flagged.used_for_billing
    # Reviewing twice is refused with a message, not a 500.
    response = client.post(url(flagged), {"decision": "accept"})
    assert "already reviewed" in response.content.decode()


def test_it_guards_the_review_page(
    flagged: Reading,
    alice: User,
    charlie: User,
    make_staff: Callable[[Role], User],
    client_for: Callable[[User], Client],
) -> None:
    assert client_for(charlie).get(url(flagged)).status_code == 404
    assert client_for(alice).get(url(flagged)).status_code == 404
    assert client_for(make_staff(Role.COLLECTIONS)).get(url(flagged)).status_code == 403
    assert client_for(make_staff(Role.COURIER)).get(url(flagged)).status_code == 403
    billing = client_for(make_staff(Role.BILLING))
    assert billing.get(url(flagged)).status_code == 200  # may look…
    assert billing.post(url(flagged), {"decision": "accept"}).status_code == 403  # …not decide
    flagged.refresh_from_db()
    assert flagged.status == ReadingStatus.FLAGGED
