"""Customer pages of supply points: list, detail, self-reading, contract PDF, dashboard."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from time_machine import TimeMachineFixture

from meters.models import (
    Contract,
    Meter,
    Reading,
    ReadingSource,
    ReadingStatus,
    Register,
    Service,
    SupplyPoint,
)
from portal.models import Customer, Task, User
from portal.roles import Role
from tests.meters.conftest import AddHistory

pytestmark = pytest.mark.django_db

ClientFor = Callable[[User], Client]
TODAY = date(2026, 3, 15)
NOW = datetime(2026, 3, 15, 9, 0, tzinfo=UTC)
PREVIOUS = 2_100
# Every portal page: session, user, staff groups, membership with customer, and the session
# save (savepoint, update, release); see tests/portal/test_views.py.
BASE_QUERIES = 7  # the index on 2026-03-01, see _steady_history


@pytest.fixture
def frozen(time_machine: TimeMachineFixture) -> None:
    time_machine.move_to(NOW, tick=False)


def _steady_history(register: Register, add_history: AddHistory) -> None:
    """About 10 kWh a day for half a year, last read on 2026-03-01 at PREVIOUS."""
    months = [(2025, 9), (2025, 10), (2025, 11), (2025, 12), (2026, 1), (2026, 2), (2026, 3)]
    add_history(
        register,
        [(date(y, m, 1), PREVIOUS - (6 - i) * 300) for i, (y, m) in enumerate(months)],
    )


def _point(customer: Customer, number: int, **extra: object) -> SupplyPoint:
    return SupplyPoint.objects.create(
        customer=customer,
        code=f"RO005E{number:012d}",
        service=Service.ELECTRICITY,
        street=f"Str. Morii {number}",
        postal_code="010101",
        city="București",
        **extra,
    )


def _detail_url(point: SupplyPoint) -> str:
    return reverse("meters:supply-point", args=[point.public_id])


def _reading_url(register: Register) -> str:
    return reverse(
        "meters:reading-create", args=[register.meter.supply_point.public_id, register.public_id]
    )


# --- List ---------------------------------------------------------------------------


def test_it_lists_the_supply_points_with_meter_and_last_reading(
    client_for: ClientFor, alice: User, register: Register, add_history: AddHistory
) -> None:
    add_history(register, [(date(2026, 1, 5), 1200), (date(2026, 2, 5), 1530)])

    response = client_for(alice).get(reverse("meters:supply-points"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "RO005E000000000001" in page
    assert "Str. Lalelelor 5, 010101 București" in page
    assert "E-1000001" in page
    assert "1530 kWh" in page
    assert "1200 kWh" not in page


def test_it_does_not_list_supply_points_of_other_customers(
    client_for: ClientFor, charlie: User, supply_point: SupplyPoint
) -> None:
    response = client_for(charlie).get(reverse("meters:supply-points"))

    assert response.status_code == 200
    assert supply_point.code not in response.content.decode()


def _add_points(customer: Customer, count: int, add_history: AddHistory) -> None:
    for number in range(count):
        point = _point(customer, 1000 + number)
        meter = Meter.objects.create(
            supply_point=point, serial_number=f"S-{number}", installed_on=date(2024, 1, 1)
        )
        register = Register.objects.create(meter=meter, code="1.8.0", name="Total")
        add_history(register, [(date(2026, 1, 1), 100 + number), (date(2026, 2, 1), 200 + number)])


@pytest.mark.parametrize("count", [2, 20])
def test_it_lists_any_number_of_supply_points_in_the_same_queries(
    client_for: ClientFor,
    alice: User,
    customer: Customer,
    add_history: AddHistory,
    django_assert_num_queries: Callable[..., object],
    count: int,
) -> None:
    _add_points(customer, count, add_history)
    client = client_for(alice)
    client.get(reverse("portal:home"))  # the first page stores the current customer

    # the 7 of every portal page (see tests/portal/test_views.py BASE_QUERIES: session,
    # user, staff groups, membership with customer, session save in a savepoint)
    # + the supply points annotated with current meter and last reading
    with django_assert_num_queries(BASE_QUERIES + 1):  # type: ignore[attr-defined]
        response = client.get(reverse("meters:supply-points"))

    assert response.content.decode().count("S-") >= count


# --- Detail -------------------------------------------------------------------------


def test_it_shows_meters_registers_history_and_chart(
    frozen: None,
    client_for: ClientFor,
    alice: User,
    register: Register,
    add_history: AddHistory,
) -> None:
    _steady_history(register, add_history)
    Reading.objects.create(
        register=register,
        value=Decimal(2150),
        read_on=date(2026, 3, 10),
        read_at=datetime(2026, 3, 10, 8, tzinfo=UTC),
        source=ReadingSource.CUSTOMER,
        status=ReadingStatus.FLAGGED,
    )

    response = client_for(alice).get(_detail_url(register.meter.supply_point))

    assert response.status_code == 200
    page = response.content.decode()
    assert "E-1000001" in page
    assert "Total" in page and "1.8.0" in page
    assert "Customer" in page and "Courier" in page  # sources
    assert "Waiting for review" in page  # status of the flagged one
    start = page.index("<svg")
    svg = ET.fromstring(page[start : page.index("</svg>", start) + 6])  # noqa: S314
    bars = [r for r in svg.iter("{http://www.w3.org/2000/svg}rect") if r.get("class") == "bar"]
    assert len(bars) == 12  # the default period: the last 12 months


def test_it_shows_the_chosen_period(
    frozen: None, client_for: ClientFor, alice: User, register: Register
) -> None:
    response = client_for(alice).get(_detail_url(register.meter.supply_point), {"period": "24"})

    assert response.content.decode().count('class="bar"') == 24


def test_it_answers_404_for_a_supply_point_of_another_customer(
    client_for: ClientFor, charlie: User, register: Register
) -> None:
    response = client_for(charlie).get(_detail_url(register.meter.supply_point))

    assert response.status_code == 404


def test_it_shows_any_number_of_readings_in_the_same_queries(
    frozen: None,
    client_for: ClientFor,
    alice: User,
    register: Register,
    add_history: AddHistory,
    django_assert_num_queries: Callable[..., object],
) -> None:
    client = client_for(alice)
    client.get(reverse("portal:home"))  # the first page stores the current customer
    url = _detail_url(register.meter.supply_point)
    counts = []
    for first, count in ((0, 2), (2, 20)):
        add_history(
            register, [(TODAY - timedelta(days=200 - 10 * i), i * 100) for i in range(first, count)]
        )
        # BASE_QUERIES + 1. the supply point, 2. its meters, 3. their registers, 4. the
        # readings of the period, 5. the plausibility contexts (one query whatever the history,
        # see load_contexts), 6. the plausibility rules, 7. the contracts
        with django_assert_num_queries(QUERIES_DETAIL) as queries:  # type: ignore[attr-defined]
            response = client.get(url)
        counts.append(len(queries))
        assert response.content.decode().count('<td class="code">') == count
    assert counts[0] == counts[1]


QUERIES_DETAIL = BASE_QUERIES + 7


# --- Self-reading -------------------------------------------------------------------


def test_it_shows_the_previous_reading_and_the_accepted_range(
    frozen: None, client_for: ClientFor, bob: User, register: Register, add_history: AddHistory
) -> None:
    _steady_history(register, add_history)

    page = client_for(bob).get(_detail_url(register.meter.supply_point)).content.decode()

    assert "Send your reading" in page
    assert "2100 kWh" in page
    assert 'class="accepted-range"' in page


def test_it_stores_a_plausible_self_reading(
    frozen: None, client_for: ClientFor, alice: User, register: Register, add_history: AddHistory
) -> None:
    _steady_history(register, add_history)
    prefix = f"r{register.pk}"

    client = client_for(alice)
    response = client.post(_reading_url(register), {f"{prefix}-value": "2250"})

    assert response.status_code == 302
    reading = Reading.objects.get(register=register, read_on=TODAY)
    assert reading.value == Decimal(2250)
    assert reading.source == ReadingSource.CUSTOMER
    assert reading.status == ReadingStatus.ACCEPTED
    assert reading.entered_by == alice
    page = client.get(response["Location"]).content.decode()
    assert "your reading of 2250 kWh is saved" in page


def test_it_explains_a_rejected_reading_next_to_the_field_and_keeps_the_value(
    frozen: None, client_for: ClientFor, alice: User, register: Register, add_history: AddHistory
) -> None:
    _steady_history(register, add_history)
    prefix = f"r{register.pk}"

    response = client_for(alice).post(_reading_url(register), {f"{prefix}-value": "2050"})

    assert response.status_code == 200
    page = response.content.decode()
    assert "is lower than the previous reading" in page
    assert 'value="2050"' in page
    assert not Reading.objects.valid().filter(register=register, read_on=TODAY).exists()


def test_it_refuses_a_value_the_dial_cannot_show(
    frozen: None, client_for: ClientFor, alice: User, register: Register
) -> None:
    prefix = f"r{register.pk}"

    response = client_for(alice).post(_reading_url(register), {f"{prefix}-value": "12.5"})

    assert response.status_code == 200
    assert "whole numbers only" in response.content.decode()
    assert not Reading.objects.filter(register=register).exists()


def test_it_says_an_unusual_reading_will_be_reviewed(
    frozen: None, client_for: ClientFor, bob: User, register: Register, add_history: AddHistory
) -> None:
    _steady_history(register, add_history)
    prefix = f"r{register.pk}"

    client = client_for(bob)
    response = client.post(_reading_url(register), {f"{prefix}-value": "5000"})

    reading = Reading.objects.get(register=register, read_on=TODAY)
    assert reading.status == ReadingStatus.FLAGGED
    assert Task.objects.exists()
    page = client.get(response["Location"]).content.decode()
    assert "will review it" in page


def test_it_answers_htmx_with_the_form_fragment(
    frozen: None, client_for: ClientFor, alice: User, register: Register, add_history: AddHistory
) -> None:
    _steady_history(register, add_history)
    prefix = f"r{register.pk}"

    response = client_for(alice).post(
        _reading_url(register), {f"{prefix}-value": "2050"}, headers={"HX-Request": "true"}
    )

    page = response.content.decode()
    assert response.status_code == 200
    fragment = f'<div class="self-reading" id="self-reading-{register.public_id}"'
    assert page.lstrip().startswith(fragment)
    assert "is lower than the previous reading" in page
    assert "<html" not in page


def test_it_does_not_offer_self_reading_to_viewers(
    frozen: None, client_for: ClientFor, viola: User, register: Register
) -> None:
    page = client_for(viola).get(_detail_url(register.meter.supply_point)).content.decode()

    assert "Send your reading" not in page


def test_it_forbids_viewers_to_send_readings(
    client_for: ClientFor, viola: User, register: Register
) -> None:
    response = client_for(viola).post(_reading_url(register), {f"r{register.pk}-value": "10"})

    assert response.status_code == 403
    assert not Reading.objects.exists()


def test_it_answers_404_to_readings_for_another_customer(
    client_for: ClientFor, charlie: User, register: Register
) -> None:
    response = client_for(charlie).post(_reading_url(register), {f"r{register.pk}-value": "10"})

    assert response.status_code == 404
    assert not Reading.objects.exists()


def test_it_refuses_self_readings_where_they_are_not_allowed(
    client_for: ClientFor, alice: User, register: Register
) -> None:
    SupplyPoint.objects.filter(pk=register.meter.supply_point_id).update(self_reading_allowed=False)

    page = client_for(alice).get(_detail_url(register.meter.supply_point)).content.decode()
    response = client_for(alice).post(_reading_url(register), {f"r{register.pk}-value": "10"})

    assert "Send your reading" not in page
    assert response.status_code == 403
    assert not Reading.objects.exists()


def test_it_refuses_readings_for_a_removed_meter(
    client_for: ClientFor, alice: User, register: Register
) -> None:
    Meter.objects.filter(pk=register.meter_id).update(removed_on=date(2025, 6, 1))

    response = client_for(alice).post(_reading_url(register), {f"r{register.pk}-value": "10"})

    assert response.status_code == 404


def test_it_does_not_change_anything_on_get(
    client_for: ClientFor, alice: User, register: Register
) -> None:
    response = client_for(alice).get(_reading_url(register))

    assert response.status_code == 405


# --- Contract PDF -------------------------------------------------------------------


def _contract(point: SupplyPoint, **extra: object) -> Contract:
    return Contract.objects.create(
        supply_point=point,
        customer=point.customer,
        number="K-2024-0001",
        product="Casnic Standard",
        starts_on=date(2024, 1, 1),
        **extra,
    )


def test_it_renders_the_contract_pdf_without_storing_it(
    client_for: ClientFor, alice: User, supply_point: SupplyPoint
) -> None:
    contract = _contract(supply_point)

    response = client_for(alice).get(reverse("meters:contract-pdf", args=[contract.public_id]))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert 'filename="contract-K-2024-0001.pdf"' in response["Content-Disposition"]
    contract.refresh_from_db()
    assert not contract.document


def test_it_serves_the_stored_contract_document(
    client_for: ClientFor, viola: User, supply_point: SupplyPoint
) -> None:
    contract = _contract(supply_point)
    contract.document.save("signed.pdf", ContentFile(b"%PDF-1.4 signed original"))

    response = client_for(viola).get(reverse("meters:contract-pdf", args=[contract.public_id]))

    assert response.status_code == 200
    assert response.content == b"%PDF-1.4 signed original"


def test_it_answers_404_for_a_contract_of_another_customer(
    client_for: ClientFor, charlie: User, supply_point: SupplyPoint
) -> None:
    contract = _contract(supply_point)

    response = client_for(charlie).get(reverse("meters:contract-pdf", args=[contract.public_id]))

    assert response.status_code == 404


def test_it_lists_contracts_on_the_detail_page(
    client_for: ClientFor, alice: User, supply_point: SupplyPoint
) -> None:
    contract = _contract(supply_point)

    page = client_for(alice).get(_detail_url(supply_point)).content.decode()

    assert "K-2024-0001" in page
    assert reverse("meters:contract-pdf", args=[contract.public_id]) in page


# --- Dashboard card, navigation, office section -------------------------------------


def test_it_shows_supply_points_on_the_dashboard_and_in_the_navigation(
    client_for: ClientFor, alice: User, register: Register, add_history: AddHistory
) -> None:
    add_history(register, [(date(2026, 2, 5), 1530)])

    page = client_for(alice).get(reverse("portal:home")).content.decode()

    assert f'href="{reverse("meters:supply-points")}"' in page
    assert _detail_url(register.meter.supply_point) in page
    assert "1530 kWh" in page


def test_it_keeps_other_customers_points_off_the_dashboard(
    client_for: ClientFor, charlie: User, supply_point: SupplyPoint
) -> None:
    page = client_for(charlie).get(reverse("portal:home")).content.decode()

    assert supply_point.code not in page
    assert _detail_url(supply_point) not in page


def test_it_shows_supply_points_on_the_office_customer_page(
    client_for: ClientFor,
    make_staff: Callable[[Role], User],
    customer: Customer,
    register: Register,
    add_history: AddHistory,
) -> None:
    add_history(register, [(date(2026, 2, 5), 1530)])
    staff = make_staff(Role.METER_READING)

    page = client_for(staff).get(reverse("office:customer", args=[customer.public_id]))

    text = page.content.decode()
    assert "RO005E000000000001" in text
    assert "E-1000001" in text
    assert "1530 kWh" in text


def test_it_hides_the_office_section_from_roles_without_the_permission(
    client_for: ClientFor,
    make_staff: Callable[[Role], User],
    customer: Customer,
    register: Register,
) -> None:
    staff = make_staff(Role.COLLECTIONS)

    page = client_for(staff).get(reverse("office:customer", args=[customer.public_id]))

    assert page.status_code == 200
    assert "RO005E000000000001" not in page.content.decode()


# --- Outsiders on every URL ---------------------------------------------------------


def test_it_sends_anonymous_visitors_to_the_login(client: Client, register: Register) -> None:
    point = register.meter.supply_point
    contract = _contract(point)
    for url in (
        reverse("meters:supply-points"),
        _detail_url(point),
        reverse("meters:contract-pdf", args=[contract.public_id]),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert "/login" in response["Location"] or "/accounts/" in response["Location"]
    response = client.post(_reading_url(register), {f"r{register.pk}-value": "10"})
    assert response.status_code == 302
    assert not Reading.objects.exists()


# --- Demo data ----------------------------------------------------------------------


def test_it_seeds_demo_supply_points_and_readings_once() -> None:
    call_command("seed_demo", stdout=StringIO())
    counts = (SupplyPoint.objects.count(), Reading.objects.count(), Contract.objects.count())
    call_command("seed_demo", stdout=StringIO())

    assert counts[0] > 0 and counts[1] > 0 and counts[2] == counts[0]
    assert (
        SupplyPoint.objects.count(),
        Reading.objects.count(),
        Contract.objects.count(),
    ) == counts
    elena = Customer.objects.get(tax_id="2780315120011")
    assert SupplyPoint.objects.filter(customer=elena, self_reading_allowed=True).count() == 2


def _queries_for(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_it_shows_the_dashboard_card_in_the_same_queries_for_more_points(
    client_for: ClientFor, alice: User, customer: Customer, add_history: AddHistory
) -> None:
    client = client_for(alice)
    client.get(reverse("portal:home"))  # the first page stores the current customer
    _add_points(customer, 2, add_history)
    few = _queries_for(client, reverse("portal:home"))
    Reading.objects.all().delete()
    Register.objects.all().delete()
    Meter.objects.all().delete()
    SupplyPoint.objects.all().delete()
    _add_points(customer, 20, add_history)

    # The card adds one query (supply points annotated with their last reading),
    # whatever their number; it shows the first five.
    assert _queries_for(client, reverse("portal:home")) == few


def test_it_shows_the_office_section_in_the_same_queries_for_more_points(
    client_for: ClientFor,
    make_staff: Callable[[Role], User],
    customer: Customer,
    add_history: AddHistory,
) -> None:
    client = client_for(make_staff(Role.CUSTOMER_SERVICE))
    url = reverse("office:customer", args=[customer.public_id])
    client.get(url)
    _add_points(customer, 2, add_history)
    few = _queries_for(client, url)
    Reading.objects.all().delete()
    Register.objects.all().delete()
    Meter.objects.all().delete()
    SupplyPoint.objects.all().delete()
    _add_points(customer, 20, add_history)

    # The section adds four queries whatever the number of points: supply points with
    # last reading, their current meters, the meters' registers, each register's last reading.
    page_queries = _queries_for(client, url)
    assert page_queries == few
