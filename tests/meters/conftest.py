"""Shared fixtures for the meters tests.

supply_point     an electricity supply point of `customer` (self-reading allowed)
meter            the meter installed there since 2024-01-01
register         6 integer digits, 0 decimals, kWh, multiplier 1 (rollover 1,000,000)
water_register   5 integer digits, 2 decimals, m3 (on a water supply point of the same customer)
ct_register      6 integer digits, 0 decimals, kWh, multiplier 40 (a current-transformer meter)
add_history      add_history(register, [(date, value), ...]) → bulk-created accepted readings
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings

from meters.models import (
    Meter,
    Reading,
    ReadingSource,
    ReadingStatus,
    Register,
    Service,
    SupplyPoint,
)
from portal.models import Customer

AddHistory = Callable[[Register, Iterable[tuple[date, Decimal | int | str]]], list[Reading]]


@pytest.fixture
def supply_point(customer: Customer) -> SupplyPoint:
    return SupplyPoint.objects.create(
        customer=customer,
        code="RO005E000000000001",
        service=Service.ELECTRICITY,
        street="Str. Lalelelor 5",
        postal_code="010101",
        city="București",
        self_reading_allowed=True,
        access_notes="Meter box left of the gate.",
    )


@pytest.fixture
def meter(supply_point: SupplyPoint) -> Meter:
    return Meter.objects.create(
        supply_point=supply_point, serial_number="E-1000001", installed_on=date(2024, 1, 1)
    )


@pytest.fixture
def register(meter: Meter) -> Register:
    return Register.objects.create(
        meter=meter, code="1.8.0", name="Total", integer_digits=6, decimals=0, unit="kWh"
    )


@pytest.fixture
def water_register(customer: Customer) -> Register:
    point = SupplyPoint.objects.create(
        customer=customer,
        code="RO-W-000000000001",
        service=Service.WATER,
        street="Str. Lalelelor 5",
        postal_code="010101",
        city="București",
        self_reading_allowed=True,
    )
    water_meter = Meter.objects.create(
        supply_point=point, serial_number="W-2000001", installed_on=date(2024, 1, 1)
    )
    return Register.objects.create(
        meter=water_meter, code="W", name="Cold water", integer_digits=5, decimals=2, unit="m3"
    )


@pytest.fixture
def ct_register(customer: Customer) -> Register:
    point = SupplyPoint.objects.create(
        customer=customer,
        code="RO005E000000000040",
        service=Service.ELECTRICITY,
        street="Str. Fabricii 40",
        postal_code="010102",
        city="București",
    )
    ct_meter = Meter.objects.create(
        supply_point=point, serial_number="E-CT-40", installed_on=date(2024, 1, 1)
    )
    return Register.objects.create(
        meter=ct_meter, code="1.8.0", name="Total (CT 200/5)", integer_digits=6, decimals=0,
        multiplier=Decimal("40"), unit="kWh",
    )


OPERATOR_ZONE = ZoneInfo(settings.TIME_ZONE)


def _add_history(
    register: Register, rows: Iterable[tuple[date, Decimal | int | str]]
) -> list[Reading]:
    """Accepted courier readings, in one INSERT; consumption is not filled in."""
    readings = [
        Reading(
            register=register,
            value=Decimal(str(value)),
            read_on=day,
            read_at=datetime.combine(day, time(10, 0), tzinfo=OPERATOR_ZONE),
            source=ReadingSource.COURIER,
            status=ReadingStatus.ACCEPTED,
        )
        for day, value in rows
    ]
    return Reading.objects.bulk_create(readings, batch_size=5000)


@pytest.fixture
def add_history(db: None) -> AddHistory:
    return _add_history
