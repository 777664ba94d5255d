"""The reading database of a customer for a period, as CSV and XLSX, streamed."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import openpyxl
import pytest
from django.http import FileResponse
from django.test import Client
from django.urls import reverse

from meters.models import Meter, Register, Service, SupplyPoint
from portal.models import Customer, User
from portal.roles import Role
from tests.meters.conftest import AddHistory

PERIOD = {"start": "2025-01-01", "end": "2025-03-31"}


@pytest.fixture
def readings(register: Register, water_register: Register, add_history: AddHistory) -> None:
    add_history(register, [(date(2024, 12, 31), 900), (date(2025, 1, 31), 1000),
                           (date(2025, 2, 28), 1280), (date(2025, 4, 30), 1500)])
    add_history(water_register, [(date(2025, 2, 28), "110.50")])


@pytest.fixture
def foreign_register(other_customer: Customer, add_history: AddHistory) -> Register:
    point = SupplyPoint.objects.create(customer=other_customer, code="PL-FOREIGN-1",
                                       service=Service.GAS, street="ul. Długa 1",
                                       postal_code="30-001", city="Kraków")
    meter = Meter.objects.create(supply_point=point, serial_number="G-9",
                                 installed_on=date(2024, 1, 1))
    register = Register.objects.create(meter=meter, code="G", name="Gas", unit="m3")
    add_history(register, [(date(2025, 2, 1), 4242)])
    return register


def csv_lines(response: Any) -> list[str]:
    assert response.streaming
    return b"".join(response.streaming_content).decode("utf-8-sig").splitlines()  # type: ignore[arg-type]


def test_it_streams_the_customers_readings_of_the_period_as_csv(
    readings: None, foreign_register: Register, alice: User,
    client_for: Callable[[User], Client],
) -> None:
    response = client_for(alice).get(reverse("meters:readings-export"),
                                     {**PERIOD, "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="readings-C0100001-2025-01-01-2025-03-31.csv"' in response[
        "Content-Disposition"]
    lines = csv_lines(response)
    assert lines[0].startswith("supply_point_code,meter,register,read_on,value")
    assert lines[1:] == [
        "RO-W-000000000001,W-2000001,W,2025-02-28,110.500,m3,,courier,periodic,accepted",
        "RO005E000000000001,E-1000001,1.8.0,2025-01-31,1000.000,kWh,,courier,periodic,accepted",
        "RO005E000000000001,E-1000001,1.8.0,2025-02-28,1280.000,kWh,,courier,periodic,accepted",
    ]


def test_it_exports_xlsx(readings: None, viola: User, client_for: Callable[[User], Client]) -> None:
    response = client_for(viola).get(reverse("meters:readings-export"),
                                     {**PERIOD, "format": "xlsx"})
    assert response.status_code == 200
    assert isinstance(response, FileResponse)
    book = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    rows = list(book.active.iter_rows(values_only=True))
    assert rows[0][:5] == ("supply_point_code", "meter", "register", "read_on", "value")
    assert [(r[0], r[3], r[4]) for r in rows[1:]] == [
        ("RO-W-000000000001", datetime(2025, 2, 28), 110.5),
        ("RO005E000000000001", datetime(2025, 1, 31), 1000),
        ("RO005E000000000001", datetime(2025, 2, 28), 1280),
    ]


def test_it_shows_an_outsider_only_its_own_readings(
    readings: None, foreign_register: Register, charlie: User,
    client_for: Callable[[User], Client],
) -> None:
    lines = csv_lines(client_for(charlie).get(reverse("meters:readings-export"),
                                              {**PERIOD, "format": "csv"}))
    assert len(lines) == 2
    assert lines[1].startswith("PL-FOREIGN-1,G-9,G,2025-02-01,4242")


def test_it_explains_a_bad_period_next_to_the_field(
    alice: User, client_for: Callable[[User], Client]
) -> None:
    response = client_for(alice).get(reverse("meters:readings-export"),
                                     {"start": "2025-03-31", "end": "2025-01-01", "format": "csv"})
    assert response.status_code == 400
    assert "before its start" in response.content.decode()
    assert 'value="2025-03-31"' in response.content.decode()


def test_it_shows_the_export_form(bob: User, client_for: Callable[[User], Client]) -> None:
    response = client_for(bob).get(reverse("meters:readings-export"))
    assert response.status_code == 200
    assert 'name="start"' in response.content.decode()


def test_it_asks_anonymous_visitors_to_sign_in(client: Client) -> None:
    response = client.get(reverse("meters:readings-export"), {**PERIOD, "format": "csv"})
    assert response.status_code == 302
    assert "login" in response["Location"]


# --- Office ---------------------------------------------------------------------------


def test_it_exports_a_customers_readings_in_the_office(
    readings: None, foreign_register: Register, customer: Customer,
    make_staff: Callable[[Role], User], client_for: Callable[[User], Client],
) -> None:
    client = client_for(make_staff(Role.BILLING))
    url = reverse("meters-office:readings-export", args=[customer.public_id])
    assert client.get(url).status_code == 200
    lines = csv_lines(client.get(url, {**PERIOD, "format": "csv"}))
    assert len(lines) == 4
    assert not any("PL-FOREIGN" in line for line in lines)


def test_it_hides_the_office_export_from_customers(
    readings: None, customer: Customer, alice: User, client_for: Callable[[User], Client]
) -> None:
    url = reverse("meters-office:readings-export", args=[customer.public_id])
    assert client_for(alice).get(url, {**PERIOD, "format": "csv"}).status_code == 404


def test_it_forbids_the_office_export_to_staff_without_reading_access(
    readings: None, customer: Customer, make_staff: Callable[[Role], User],
    client_for: Callable[[User], Client],
) -> None:
    url = reverse("meters-office:readings-export", args=[customer.public_id])
    client = client_for(make_staff(Role.COLLECTIONS))
    assert client.get(url, {**PERIOD, "format": "csv"}).status_code == 403
