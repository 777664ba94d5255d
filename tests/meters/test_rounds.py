"""Reading rounds in the office: made, assigned, followed live, printed and typed back."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from meters import rounds
from meters.models import (
    Meter,
    Reading,
    ReadingRound,
    ReadingSource,
    ReadingStatus,
    Register,
    RoundStatus,
    Service,
    SupplyPoint,
)
from portal.models import Customer, User
from portal.roles import Role
from portal.services import ServiceError
from tests.conftest import make_user


@pytest.fixture
def courier(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.COURIER)


@pytest.fixture
def coordinator(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.METER_READING)


def make_point(customer: Customer, n: int, *, history: Any = None) -> Register:
    """Supply point number n with a meter and one register; optionally its past readings."""
    point = SupplyPoint.objects.create(
        customer=customer,
        code=f"RO005E{n:012d}",
        service=Service.ELECTRICITY,
        street=f"Str. Florilor {n}",
        postal_code="010101",
        city="București",
    )
    meter = Meter.objects.create(
        supply_point=point, serial_number=f"E-9{n:06d}", installed_on=date(2024, 1, 1)
    )
    register = Register.objects.create(meter=meter, code="1.8.0", name="Total")
    if history is not None:
        today = timezone.localdate()
        history(
            register,
            [
                (today - timedelta(days=d), v)
                for d, v in ((120, 1000), (90, 1300), (60, 1600), (30, 1900))
            ],
        )
    return register


@pytest.fixture
def the_round(
    customer: Customer, coordinator: User, courier: User, add_history: Any
) -> ReadingRound:
    registers = [make_point(customer, n, history=add_history) for n in (3, 1, 2)]
    today = timezone.localdate()
    return rounds.create_round(
        name="Florilor",
        period_start=today - timedelta(days=2),
        period_end=today + timedelta(days=5),
        supply_points=[r.meter.supply_point for r in registers],
        created_by=coordinator,
        courier=courier,
    )


# Every office page pays for: the session (1), the user (1), their role groups (1),
# the MFA check (1), their own and their groups' permissions (2) and saving the
# session (3: savepoint, UPDATE, release).
OFFICE_OVERHEAD = 9


def office_urls(the_round: ReadingRound) -> list[str]:
    return [
        reverse("meters-office:round-list"),
        reverse("meters-office:round-create"),
        reverse("meters-office:round-detail", args=[the_round.public_id]),
        reverse("meters-office:round-progress", args=[the_round.public_id]),
        reverse("meters-office:round-sheet", args=[the_round.public_id]),
    ]


# --- Services -------------------------------------------------------------------------------


def test_it_keeps_the_stops_in_the_given_order(the_round: ReadingRound, courier: User) -> None:
    codes = [s.supply_point.code for s in the_round.stops.order_by("position")]
    assert codes == ["RO005E000000000003", "RO005E000000000001", "RO005E000000000002"]
    assert the_round.courier == courier
    assert the_round.status == RoundStatus.ASSIGNED


def test_it_gives_rounds_only_to_couriers(the_round: ReadingRound, coordinator: User) -> None:
    with pytest.raises(ServiceError):
        rounds.assign(reading_round=the_round, courier=coordinator, by=coordinator)
    the_round.refresh_from_db()
    assert the_round.courier is not None and the_round.courier != coordinator


# --- Who may see what -----------------------------------------------------------------------


def test_it_hides_the_round_pages_from_customers(
    client_for: Callable[[User], Client], alice: User, the_round: ReadingRound
) -> None:
    client = client_for(alice)
    for url in office_urls(the_round):
        assert client.get(url).status_code == 404, url
        assert client.post(url).status_code in (404, 405), url


@pytest.mark.parametrize("role", [Role.COLLECTIONS, Role.BILLING, Role.COURIER])
def test_it_forbids_the_round_pages_to_other_roles(
    client_for: Callable[[User], Client],
    make_staff: Callable[[Role], User],
    the_round: ReadingRound,
    courier: User,
    role: Role,
) -> None:
    client = client_for(courier if role == Role.COURIER else make_staff(role))
    for url in office_urls(the_round):
        assert client.get(url).status_code == 403, url
    detail = reverse("meters-office:round-detail", args=[the_round.public_id])
    register = Register.objects.first()
    assert register is not None
    assert (
        client.post(
            detail, {"read_on": "2026-01-01", f"value-{register.public_id}": "2000"}
        ).status_code
        == 403
    )
    assert not Reading.objects.filter(round_stop__round=the_round).exists()


# --- Pages ------------------------------------------------------------------------------------


def test_it_lists_rounds_in_a_fixed_number_of_queries(
    client_for: Callable[[User], Client],
    coordinator: User,
    the_round: ReadingRound,
    django_assert_num_queries: Any,
) -> None:
    client = client_for(coordinator)
    client.get(reverse("meters-office:round-list"))  # warm the session and permission caches
    # the paginator's count, the page of rounds with courier and stop count
    with django_assert_num_queries(OFFICE_OVERHEAD + 2):
        response = client.get(reverse("meters-office:round-list"))
    assert the_round.name in response.content.decode()


def test_it_creates_a_round_from_codes_in_visiting_order(
    client_for: Callable[[User], Client], coordinator: User, courier: User, customer: Customer
) -> None:
    for n in (7, 8):
        make_point(customer, n)
    response = client_for(coordinator).post(
        reverse("meters-office:round-create"),
        {
            "name": "Centre",
            "period_start": "2026-11-01",
            "period_end": "2026-11-30",
            "courier": courier.pk,
            "codes": "RO005E000000000008\n\nRO005E000000000007\n",
        },
    )
    created = ReadingRound.objects.get(name="Centre")
    assert response.status_code == 302
    assert response["Location"] == reverse("meters-office:round-detail", args=[created.public_id])
    assert [s.supply_point.code for s in created.stops.order_by("position")] == [
        "RO005E000000000008",
        "RO005E000000000007",
    ]
    assert created.courier == courier and created.status == RoundStatus.ASSIGNED


def test_it_names_unknown_codes_and_keeps_what_was_typed(
    client_for: Callable[[User], Client], coordinator: User, customer: Customer
) -> None:
    make_point(customer, 7)
    response = client_for(coordinator).post(
        reverse("meters-office:round-create"),
        {
            "name": "Centre",
            "period_start": "2026-11-01",
            "period_end": "2026-11-30",
            "codes": "RO005E000000000007\nRO-NOPE",
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "No such supply point: RO-NOPE" in page
    assert "RO005E000000000007" in page and 'value="Centre"' in page
    assert not ReadingRound.objects.filter(name="Centre").exists()


def test_it_shows_progress_in_a_constant_number_of_queries(
    client_for: Callable[[User], Client],
    coordinator: User,
    courier: User,
    the_round: ReadingRound,
    django_assert_num_queries: Any,
) -> None:
    client = client_for(coordinator)
    url = reverse("meters-office:round-progress", args=[the_round.public_id])
    client.get(url)
    # the round, the progress aggregate (stops read, flagged readings)
    with django_assert_num_queries(OFFICE_OVERHEAD + 2):
        before = client.get(url, HTTP_HX_REQUEST="true")
    assert "0 of 3 stops read" in before.content.decode()

    stops = list(the_round.stops.select_related("supply_point").order_by("position"))
    for stop, status in zip(
        stops[:2], [ReadingStatus.ACCEPTED, ReadingStatus.FLAGGED], strict=True
    ):
        register = Register.objects.get(meter__supply_point=stop.supply_point)
        Reading.objects.create(
            register=register,
            value=2200,
            read_at=timezone.now(),
            read_on=timezone.localdate(),
            source=ReadingSource.COURIER,
            status=status,
            round_stop=stop,
        )
    with django_assert_num_queries(OFFICE_OVERHEAD + 2):
        after = client.get(url, HTTP_HX_REQUEST="true")
    text = after.content.decode()
    assert "2 of 3 stops read" in text
    assert "1 reading waiting for review" in text
    assert 'hx-trigger="every 10s"' in text


def test_it_polls_progress_from_the_round_page(
    client_for: Callable[[User], Client], coordinator: User, the_round: ReadingRound
) -> None:
    page = (
        client_for(coordinator)
        .get(reverse("meters-office:round-detail", args=[the_round.public_id]))
        .content.decode()
    )
    assert reverse("meters-office:round-progress", args=[the_round.public_id]) in page
    assert "every 10s" in page


def test_it_prints_a_tally_sheet_with_every_stop(
    client_for: Callable[[User], Client],
    coordinator: User,
    the_round: ReadingRound,
    tmp_path: Any,
) -> None:
    response = client_for(coordinator).get(
        reverse("meters-office:round-sheet", args=[the_round.public_id])
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    pdf = tmp_path / "sheet.pdf"
    pdf.write_bytes(response.content)
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    for n in (1, 2, 3):
        assert f"RO005E{n:012d}" in text
        assert f"E-9{n:06d}" in text
    assert text.index("RO005E000000000003") < text.index("RO005E000000000001")
    assert "1900" in text and "New index" in text and "signature" in text


def test_it_stores_readings_typed_from_a_paper_sheet(
    client_for: Callable[[User], Client], coordinator: User, the_round: ReadingRound
) -> None:
    registers = list(
        Register.objects.filter(meter__supply_point__round_stops__round=the_round).order_by(
            "meter__serial_number"
        )
    )
    today = timezone.localdate().isoformat()
    response = client_for(coordinator).post(
        reverse("meters-office:round-detail", args=[the_round.public_id]),
        {
            "read_on": today,
            f"value-{registers[0].public_id}": "2210",
            f"value-{registers[1].public_id}": "2190",
        },
    )
    assert response.status_code == 302
    readings = Reading.objects.filter(round_stop__round=the_round)
    assert sorted(r.value for r in readings) == [2190, 2210]
    assert {r.source for r in readings} == {ReadingSource.COURIER}
    assert {r.entered_by for r in readings} == {coordinator}
    assert rounds.progress(the_round).read == 2


def test_it_explains_typed_readings_it_cannot_store_and_keeps_them(
    client_for: Callable[[User], Client], coordinator: User, the_round: ReadingRound
) -> None:
    registers = list(
        Register.objects.filter(meter__supply_point__round_stops__round=the_round).order_by(
            "meter__serial_number"
        )
    )
    url = reverse("meters-office:round-detail", args=[the_round.public_id])
    data = {
        "read_on": timezone.localdate().isoformat(),
        f"value-{registers[0].public_id}": "12x",
        f"value-{registers[1].public_id}": "9000",
        f"value-{registers[2].public_id}": "2200",
    }
    client = client_for(coordinator)
    response = client.post(url, data)
    assert response.status_code == 422
    page = response.content.decode()
    assert "Enter the index as a number." in page and 'value="12x"' in page
    assert 'value="9000"' in page and f'name="confirm-{registers[1].public_id}"' in page
    assert list(
        Reading.objects.filter(round_stop__round=the_round).values_list("value", flat=True)
    ) == [2200]

    data[f"confirm-{registers[1].public_id}"] = "on"
    data.pop(f"value-{registers[0].public_id}")
    assert client.post(url, data).status_code == 302
    assert Reading.objects.get(register=registers[1], value=9000).status == ReadingStatus.FLAGGED


def test_it_assigns_a_round_to_another_courier(
    client_for: Callable[[User], Client], coordinator: User, the_round: ReadingRound
) -> None:
    paula = make_user("paula@staff.example.com")
    paula.groups.add(Group.objects.get(name=Role.COURIER.value))
    url = reverse("meters-office:round-detail", args=[the_round.public_id])
    client = client_for(coordinator)
    assert client.post(url, {"assign": "1", "courier": paula.pk}).status_code == 302
    the_round.refresh_from_db()
    assert the_round.courier == paula

    refused = client.post(url, {"assign": "1", "courier": coordinator.pk})
    assert refused.status_code == 422
    assert "Select a valid choice" in refused.content.decode()
    the_round.refresh_from_db()
    assert the_round.courier == paula


def test_it_shows_a_round_in_the_same_number_of_queries_whatever_its_size(
    client_for: Callable[[User], Client],
    coordinator: User,
    courier: User,
    customer: Customer,
    the_round: ReadingRound,
    add_history: Any,
) -> None:
    small = rounds.create_round(
        name="One stop",
        period_start=the_round.period_start,
        period_end=the_round.period_end,
        supply_points=[make_point(customer, 9, history=add_history).meter.supply_point],
        created_by=coordinator,
        courier=courier,
    )
    client = client_for(coordinator)

    def count(reading_round: ReadingRound) -> int:
        url = reverse("meters-office:round-detail", args=[reading_round.public_id])
        client.get(url)
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx.captured_queries)

    assert count(small) == count(the_round)
