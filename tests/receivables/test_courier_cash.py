"""The courier's cash-collection page (/courier/cash/): cash against a numbered receipt,
stored once however often the form is sent."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from time_machine import TimeMachineFixture

from billing.models import Invoice, InvoiceStatus
from meters.courier import device_key
from meters.models import Service, SupplyPoint
from portal.models import AuditEvent, Customer, User
from portal.roles import Role
from receivables.models import Channel, LedgerEntry, Payment
from tests.receivables.conftest import Issue

D = Decimal
pytestmark = pytest.mark.django_db
ClientFor = Callable[[User], Client]
URL = "/courier/cash/"


@pytest.fixture(autouse=True)
def frozen(time_machine: TimeMachineFixture) -> None:
    time_machine.move_to(datetime(2026, 11, 20, 10, 0, tzinfo=UTC), tick=False)


@pytest.fixture
def courier(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.COURIER)


@pytest.fixture
def point(customer: Customer) -> SupplyPoint:
    return SupplyPoint.objects.create(
        customer=customer, code="RO005E000000000001", service=Service.ELECTRICITY,
        street="Str. Lalelelor 5", postal_code="010101", city="București",
    )


@pytest.fixture
def invoice(customer: Customer, issue: Issue, point: SupplyPoint) -> Invoice:
    return issue(customer, "121.00", due=date(2026, 11, 15))


def _cash(**extra: str) -> dict[str, str]:
    data = {
        "supply_point": "RO005E000000000001", "amount": "100.00", "receipt_number": "c-1001",
        "client_id": str(uuid.uuid4()),
    }
    data.update(extra)
    return data


def test_it_is_mounted_where_couriers_find_it() -> None:
    assert reverse("receivables-courier:cash") == URL


def test_it_hides_the_cash_page_from_customers(
    client_for: ClientFor, alice: User, invoice: Invoice
) -> None:
    client = client_for(alice)
    assert client.get(URL).status_code == 404
    assert client.post(URL, _cash()).status_code == 404
    assert not Payment.objects.exists()


def test_it_forbids_the_cash_page_to_office_staff(
    client_for: ClientFor, make_staff: Callable[[Role], User], invoice: Invoice
) -> None:
    client = client_for(make_staff(Role.COLLECTIONS))
    assert client.get(URL).status_code == 403
    assert client.post(URL, _cash()).status_code == 403
    assert not Payment.objects.exists()


def test_it_sends_anonymous_visitors_to_the_courier_login(db: None) -> None:
    response = Client().get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("courier:login"))


def test_it_records_cash_against_a_receipt(
    client_for: ClientFor, courier: User, customer: Customer, invoice: Invoice
) -> None:
    client = client_for(courier)
    form = client.get(URL, {"point": "RO005E000000000001"})
    assert 'value="RO005E000000000001"' in form.content.decode()
    assert form["Cache-Control"] == "private, no-store"
    # Kept by the courier service worker for this courier, to open without network.
    assert form["X-Courier-Key"] == device_key(courier)
    assert "receivables/cash.js" in form.content.decode()

    response = client.post(URL, _cash(supply_point="ro005e 000000000001"), follow=True)

    payment = Payment.objects.get()
    assert (payment.channel, payment.customer, payment.amount, payment.reference) == (
        Channel.COURIER, customer, D("100.00"), "C-1001"
    )
    assert payment.created_by == courier
    assert LedgerEntry.objects.get(payment=payment).amount == D("-100.00")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PARTLY_PAID
    page = response.content.decode()
    assert "Recorded: 100.00 EUR from Ana Popescu, receipt C-1001. Still open: 21.00 EUR." in page
    assert "Total to hand over" in page
    assert AuditEvent.objects.filter(action="receivables.courier_cash", actor=courier).exists()


def test_it_stores_a_replayed_post_once(
    client_for: ClientFor, courier: User, invoice: Invoice
) -> None:
    client = client_for(courier)
    data = _cash()

    client.post(URL, data)
    again = client.post(URL, data, HTTP_HX_REQUEST="true")

    assert Payment.objects.count() == 1
    page = again.content.decode()
    assert page.lstrip().startswith('<div id="cash-panel">')
    assert "Receipt C-1001 was already recorded." in page


def test_it_refuses_a_receipt_number_used_before_at_the_field(
    client_for: ClientFor, courier: User, invoice: Invoice
) -> None:
    client = client_for(courier)
    client.post(URL, _cash())

    response = client.post(URL, _cash(amount="5.00"))

    assert response.status_code == 422
    assert "Receipt C-1001 was already entered" in response.context["form"].errors[
        "receipt_number"
    ][0]
    assert Payment.objects.count() == 1


@pytest.mark.parametrize(
    ("field", "typed", "message"),
    [
        ("supply_point", "RO-NOWHERE", "No supply point has this code."),
        ("amount", "-3", "greater than or equal to 0.01"),
        ("amount", "lots", "Enter a number."),
        ("receipt_number", "", "This field is required."),
    ],
)
def test_it_keeps_what_was_typed_and_says_what_is_wrong(
    client_for: ClientFor, courier: User, invoice: Invoice, field: str, typed: str, message: str
) -> None:
    response = client_for(courier).post(URL, _cash(**{field: typed}))

    assert response.status_code == 422
    assert any(message in e for e in response.context["form"].errors[field])
    if typed:
        assert f'value="{typed}"' in response.content.decode()
    assert not Payment.objects.exists()
