"""Recording readings from every door, and estimating them."""

from __future__ import annotations

import hashlib
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from meters.models import Meter, Reading, ReadingSource, ReadingStatus, Register
from meters.services import (
    CannotEstimate,
    ReadingNeedsConfirmation,
    ReadingRejected,
    estimate_reading,
    record_reading,
)
from portal.models import AuditEvent, Task, TaskKind, User
from portal.roles import Role

ZONE = ZoneInfo(settings.TIME_ZONE)


def at(day: date) -> datetime:
    return datetime.combine(day, time(9, 30), tzinfo=ZONE)


def days_ago(n: int) -> date:
    return timezone.localdate() - timedelta(days=n)


@pytest.fixture
def history(register: Register, add_history: Any) -> None:
    """Ten readings, 30 days apart, 300 kWh each: 10 kWh a day; the last 10 days ago: 14,500."""
    add_history(register, [(days_ago(10 + 30 * i), 14500 - 300 * i) for i in range(10)])


def test_it_stores_a_plausible_reading_with_its_consumption_and_an_audit_event(
    register: Register, history: None, alice: User
) -> None:
    reading = record_reading(register=register, value=Decimal(14600), read_at=at(days_ago(0)),
                             source=ReadingSource.CUSTOMER, entered_by=alice)

    assert reading.status == ReadingStatus.ACCEPTED
    assert reading.consumption == Decimal(100)
    assert reading.read_on == days_ago(0)
    assert reading.findings == []
    assert not Task.objects.exists()
    event = AuditEvent.objects.get(action="meters.reading_recorded")
    assert event.actor == alice
    assert event.object_id == str(reading.pk)


def test_it_stores_an_unusual_reading_flagged_with_a_review_task(
    register: Register, history: None, alice: User, customer: Any
) -> None:
    reading = record_reading(register=register, value=Decimal(16000), read_at=at(days_ago(0)),
                             source=ReadingSource.CUSTOMER, entered_by=alice)

    assert reading.status == ReadingStatus.FLAGGED
    assert reading.findings[0]["rule"] == "high_low"
    task = Task.objects.get()
    assert task.kind == TaskKind.READING_REVIEW
    assert task.team is not None and task.team.name == Role.METER_READING.value
    assert task.customer == customer
    assert task.source_id == reading.pk
    assert "16,000" in task.subject


def test_it_rejects_a_wrong_reading_stores_nothing_and_audits_the_attempt(
    register: Register, history: None, alice: User
) -> None:
    with pytest.raises(ReadingRejected) as caught:
        record_reading(register=register, value=Decimal(14000), read_at=at(days_ago(0)),
                       source=ReadingSource.CUSTOMER, entered_by=alice)

    assert [f.rule for f in caught.value.findings] == ["monotonic"]
    assert "lower than the previous reading 14,500" in str(caught.value)
    assert Reading.objects.filter(value=14000).count() == 0
    assert AuditEvent.objects.filter(action="meters.reading_rejected").count() == 1


def test_it_rejects_a_second_reading_the_same_day(
    register: Register, history: None, alice: User
) -> None:
    record_reading(register=register, value=Decimal(14600), read_at=at(days_ago(0)),
                   source=ReadingSource.CUSTOMER, entered_by=alice)

    with pytest.raises(ReadingRejected) as caught:
        record_reading(register=register, value=Decimal(14610), read_at=at(days_ago(0)),
                       source=ReadingSource.CUSTOMER, entered_by=alice)

    assert caught.value.findings[-1].rule == "date_duplicate"


def test_it_stores_a_reading_sent_twice_once(
    register: Register, history: None, make_staff: Any
) -> None:
    courier = make_staff(Role.COURIER)
    client_id = uuid.uuid4()
    kwargs: dict[str, Any] = {
        "register": register, "value": Decimal(14600), "read_at": at(days_ago(0)),
        "source": ReadingSource.COURIER, "entered_by": courier, "client_id": client_id,
    }

    first = record_reading(**kwargs)
    second = record_reading(**kwargs)

    assert first.pk == second.pk
    assert Reading.objects.filter(client_id=client_id).count() == 1


def test_it_asks_a_courier_to_confirm_an_out_of_range_value(
    register: Register, history: None, make_staff: Any
) -> None:
    courier = make_staff(Role.COURIER)
    kwargs: dict[str, Any] = {
        "register": register, "value": Decimal(16000), "read_at": at(days_ago(0)),
        "source": ReadingSource.COURIER, "entered_by": courier,
    }

    with pytest.raises(ReadingNeedsConfirmation) as caught:
        record_reading(**kwargs)
    assert caught.value.expected_range == (Decimal(14520), Decimal(14800))
    assert not Reading.objects.filter(value=16000).exists()

    reading = record_reading(**kwargs, confirmed_out_of_range=True)
    assert reading.status == ReadingStatus.FLAGGED


def test_it_keeps_the_photo_with_its_sha256(
    register: Register, history: None, make_staff: Any
) -> None:
    content = b"\xff\xd8\xff\xe0 not really a jpeg"
    photo = SimpleUploadedFile("meter.jpg", content, content_type="image/jpeg")

    reading = record_reading(
        register=register, value=Decimal(14600), read_at=at(days_ago(0)),
        source=ReadingSource.COURIER, entered_by=make_staff(Role.COURIER), photo=photo,
        latitude=Decimal("44.426767"), longitude=Decimal("26.102538"),
    )

    assert reading.photo_sha256 == hashlib.sha256(content).hexdigest()
    reading.photo.open("rb")
    assert reading.photo.read() == content
    reading.photo.delete(save=False)


def test_it_checks_a_register_with_decimals(
    water_register: Register, add_history: Any, alice: User
) -> None:
    add_history(water_register, [(days_ago(40), "100.00"), (days_ago(10), "115.00")])

    reading = record_reading(register=water_register, value=Decimal("120.25"),
                             read_at=at(days_ago(0)), source=ReadingSource.CUSTOMER,
                             entered_by=alice)
    assert reading.consumption == Decimal("5.25")
    with pytest.raises(ReadingRejected, match="more than 2 decimals"):
        record_reading(register=water_register, value=Decimal("121.255"),
                       read_at=at(days_ago(0)),
                       source=ReadingSource.CUSTOMER, entered_by=alice)


def test_it_multiplies_the_consumption_of_a_ct_meter(
    ct_register: Register, add_history: Any, alice: User
) -> None:
    add_history(ct_register, [(days_ago(40), 1000), (days_ago(10), 1300)])

    reading = record_reading(register=ct_register, value=Decimal(1400), read_at=at(days_ago(0)),
                             source=ReadingSource.CUSTOMER, entered_by=alice)

    assert reading.consumption == Decimal(4000)


def test_it_starts_the_new_meter_fresh_at_a_meter_exchange(
    register: Register, meter: Meter, history: None, make_staff: Any
) -> None:
    courier = make_staff(Role.COURIER)
    exchange_day = days_ago(0)
    final = record_reading(register=register, value=Decimal(14600), read_at=at(exchange_day),
                           source=ReadingSource.COURIER, reason="meter_exchange",
                           entered_by=courier)
    Meter.objects.filter(pk=meter.pk).update(removed_on=exchange_day)
    new_meter = Meter.objects.create(supply_point=meter.supply_point, serial_number="E-NEW",
                                     installed_on=exchange_day)
    new_register = Register.objects.create(meter=new_meter, code="1.8.0", name="Total")

    initial = record_reading(register=new_register, value=Decimal(3), read_at=at(exchange_day),
                             source=ReadingSource.COURIER, reason="meter_exchange",
                             entered_by=courier)

    assert final.consumption == Decimal(100)
    assert initial.status == ReadingStatus.ACCEPTED
    assert initial.consumption is None
    with pytest.raises(ReadingRejected, match="removed on"):
        record_reading(register=register, value=Decimal(14700),
                       read_at=at(exchange_day) + timedelta(days=1), source=ReadingSource.IMPORTED,
                       entered_by=None)


@pytest.mark.parametrize("length", [10, 10_000])
def test_it_records_a_reading_in_the_same_queries_whatever_the_history(
    length: int, register: Register, add_history: Any, alice: User,
    django_assert_num_queries: Any,
) -> None:
    add_history(register, [(days_ago(1 + 7 * i), 1000 + 35 * (length - i)) for i in range(length)])

    # 1 SAVEPOINT, 2 lock the register (+meter, supply point, customer), 3 contexts, 4 rules,
    # 5 INSERT reading, 6 INSERT audit event, 7 RELEASE SAVEPOINT
    with django_assert_num_queries(7):
        record_reading(register=register, value=Decimal(1000 + 35 * length + 5),
                       read_at=at(days_ago(0)), source=ReadingSource.CUSTOMER, entered_by=alice)


def test_it_estimates_a_reading_from_history(register: Register, history: None) -> None:
    reading = estimate_reading(register=register, on=days_ago(0))

    assert reading.source == ReadingSource.ESTIMATED
    assert reading.value == Decimal(14600)
    assert reading.consumption == Decimal(100)
    assert reading.entered_by is None


def test_it_rounds_an_estimate_to_the_registers_decimals(
    water_register: Register, add_history: Any
) -> None:
    add_history(water_register, [(days_ago(40), "100.00"), (days_ago(10), "110.00")])

    reading = estimate_reading(register=water_register, on=days_ago(0))

    assert reading.value == Decimal("113.33")


def test_it_refuses_to_estimate_without_history_or_over_a_reading(
    register: Register, water_register: Register, history: None
) -> None:
    with pytest.raises(CannotEstimate):
        estimate_reading(register=water_register, on=days_ago(0))
    with pytest.raises(CannotEstimate):
        estimate_reading(register=register, on=days_ago(10))
