"""Reading rounds in the office: made, assigned, followed live, printed and typed back."""

from __future__ import annotations

import json
import subprocess
import uuid
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
    RoundStop,
    Service,
    SkipReason,
    SupplyPoint,
)
from portal.models import AuditEvent, Customer, User
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
# their own and their groups' permissions (2) and saving the session (3: savepoint,
# UPDATE, release). The MFA check is remembered in the session after the first page.
OFFICE_OVERHEAD = 8


def office_urls(the_round: ReadingRound) -> list[str]:
    return [
        reverse("meters-office:round-list"),
        reverse("meters-office:round-create"),
        reverse("meters-office:round-detail", args=[the_round.public_id]),
        reverse("meters-office:round-progress", args=[the_round.public_id]),
        reverse("meters-office:round-sheet", args=[the_round.public_id]),
        reverse("meters-office:round-close", args=[the_round.public_id]),
        reverse("meters-office:round-reopen", args=[the_round.public_id]),
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


# --- Done rounds ------------------------------------------------------------------------------


def round_registers(reading_round: ReadingRound) -> list[Register]:
    """The registers of a round's stops, in visiting order."""
    return list(
        Register.objects.filter(meter__supply_point__round_stops__round=reading_round).order_by(
            "meter__supply_point__round_stops__position"
        )
    )


def send(client: Client, reading_round: ReadingRound, register: Register, value: str) -> Any:
    """A reading as the courier's phone sends it."""
    return client.post(
        reverse("courier:reading-sync"),
        json.dumps(
            {
                "client_id": str(uuid.uuid4()),
                "round": str(reading_round.public_id),
                "register": str(register.public_id),
                "value": value,
            }
        ),
        content_type="application/json",
    )


def on_courier_home(client: Client, reading_round: ReadingRound) -> bool:
    """Whether the courier's home page links to the round."""
    response = client.get(reverse("courier:home"))
    assert response.status_code == 200
    return reverse("courier:round", args=[reading_round.public_id]) in response.content.decode()


def test_it_marks_a_round_done_when_the_courier_reads_the_last_stop(
    client_for: Callable[[User], Client], courier: User, the_round: ReadingRound
) -> None:
    client = client_for(courier)
    registers = round_registers(the_round)
    for register, value in zip(registers[:2], ("2200", "2210"), strict=True):
        assert send(client, the_round, register, value).status_code == 200
    the_round.refresh_from_db()
    assert the_round.status == RoundStatus.ASSIGNED
    assert on_courier_home(client, the_round)

    assert send(client, the_round, registers[2], "2220").status_code == 200
    the_round.refresh_from_db()
    assert the_round.status == RoundStatus.DONE and the_round.done_at is not None
    assert not on_courier_home(client, the_round)
    event = AuditEvent.objects.get(action="meters.round_done")
    assert event.actor == courier and event.after["closed_by_hand"] is False


def test_it_does_not_count_a_reading_dated_outside_the_rounds_period(
    client_for: Callable[[User], Client],
    courier: User,
    coordinator: User,
    customer: Customer,
    add_history: Any,
) -> None:
    register = make_point(customer, 5, history=add_history)
    today = timezone.localdate()
    late = rounds.create_round(
        name="Last week",
        period_start=today - timedelta(days=9),
        period_end=today - timedelta(days=3),
        supply_points=[register.meter.supply_point],
        created_by=coordinator,
        courier=courier,
    )
    assert send(client_for(courier), late, register, "2200").status_code == 200
    late.refresh_from_db()
    assert late.status == RoundStatus.ASSIGNED
    assert rounds.progress(late).read == 0


def test_it_waits_for_every_register_of_a_stop(
    client_for: Callable[[User], Client],
    courier: User,
    coordinator: User,
    customer: Customer,
    add_history: Any,
) -> None:
    day = make_point(customer, 6, history=add_history)
    night = Register.objects.create(meter=day.meter, code="1.8.2", name="Night")
    today = timezone.localdate()
    add_history(night, [(today - timedelta(days=30), 500)])
    two_rates = rounds.create_round(
        name="Two rates",
        period_start=today,
        period_end=today,
        supply_points=[day.meter.supply_point],
        created_by=coordinator,
        courier=courier,
    )
    client = client_for(courier)
    assert send(client, two_rates, day, "2200").status_code == 200
    two_rates.refresh_from_db()
    assert two_rates.status == RoundStatus.ASSIGNED
    assert send(client, two_rates, night, "510").status_code == 200
    two_rates.refresh_from_db()
    assert two_rates.status == RoundStatus.DONE


def test_it_lets_the_courier_skip_a_stop_with_a_reason(
    client_for: Callable[[User], Client], courier: User, the_round: ReadingRound
) -> None:
    client = client_for(courier)
    registers = round_registers(the_round)
    round_page = reverse("courier:round", args=[the_round.public_id])
    assert "No access to the meter" in client.get(round_page).content.decode()
    for register in registers[1:]:
        assert send(client, the_round, register, "2200").status_code == 200

    skip = reverse("courier:stop-skip", args=[the_round.public_id, 1])
    refused = client.post(skip, {"reason": "other", "note": " "})
    assert refused.status_code == 422
    assert "Say what kept you from reading the meter." in refused.content.decode()
    the_round.refresh_from_db()
    assert the_round.status == RoundStatus.ASSIGNED

    response = client.post(skip, {"reason": SkipReason.NO_ACCESS, "note": "Gate locked"})
    assert response.status_code == 302
    assert response["Location"] == reverse("courier:home")
    stop = RoundStop.objects.get(round=the_round, position=1)
    assert stop.skip_reason == SkipReason.NO_ACCESS and stop.skip_note == "Gate locked"
    assert stop.skipped_by == courier
    the_round.refresh_from_db()
    assert the_round.status == RoundStatus.DONE
    assert not on_courier_home(client, the_round)
    assert AuditEvent.objects.filter(action="meters.stop_skipped").count() == 1


def test_it_marks_a_round_done_when_a_typed_back_sheet_completes_it(
    client_for: Callable[[User], Client], coordinator: User, the_round: ReadingRound
) -> None:
    registers = round_registers(the_round)
    url = reverse("meters-office:round-detail", args=[the_round.public_id])
    client = client_for(coordinator)
    data = {"read_on": timezone.localdate().isoformat()}
    data |= {f"value-{r.public_id}": v for r, v in zip(registers, ("2200", "2210"), strict=False)}
    assert client.post(url, data).status_code == 302
    the_round.refresh_from_db()
    assert the_round.status == RoundStatus.ASSIGNED

    data = {"read_on": timezone.localdate().isoformat(), f"value-{registers[2].public_id}": "2230"}
    response = client.post(url, data, follow=True)
    the_round.refresh_from_db()
    assert the_round.status == RoundStatus.DONE
    assert "the round is done" in response.content.decode()
    assert AuditEvent.objects.get(action="meters.round_done").actor == coordinator


def test_it_checks_for_a_done_round_in_the_same_queries_whatever_its_size(
    coordinator: User, courier: User, customer: Customer, the_round: ReadingRound
) -> None:
    small = rounds.create_round(
        name="One stop",
        period_start=the_round.period_start,
        period_end=the_round.period_end,
        supply_points=[make_point(customer, 9).meter.supply_point],
        created_by=coordinator,
        courier=courier,
    )

    def count(reading_round: ReadingRound) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert rounds.complete_if_done(reading_round=reading_round, by=courier) is False
        return len(ctx.captured_queries)

    # savepoint, the conditional UPDATE, release
    assert count(small) == count(the_round) == 3


def test_it_lets_the_coordinator_close_a_round_by_hand_and_reopen_it(
    client_for: Callable[[User], Client],
    coordinator: User,
    courier: User,
    the_round: ReadingRound,
) -> None:
    registers = round_registers(the_round)
    courier_client = client_for(courier)
    assert send(courier_client, the_round, registers[0], "2200").status_code == 200
    client = client_for(coordinator)
    detail = reverse("meters-office:round-detail", args=[the_round.public_id])
    page = client.get(detail).content.decode()
    assert "Closing now leaves 2 stops not read" in page
    assert "RO005E000000000001" in page and "RO005E000000000002" in page
    assert reverse("meters-office:round-close", args=[the_round.public_id]) in page

    response = client.post(
        reverse("meters-office:round-close", args=[the_round.public_id]),
        {"note": "Season over"},
        follow=True,
    )
    assert "Round closed with 2 stops not read." in response.content.decode()
    the_round.refresh_from_db()
    assert the_round.status == RoundStatus.DONE
    closed = AuditEvent.objects.get(action="meters.round_closed")
    assert closed.actor == coordinator and closed.note == "Season over"
    assert closed.after["open_stops"] == ["RO005E000000000001", "RO005E000000000002"]
    assert not on_courier_home(courier_client, the_round)
    # A reading still queued on the courier's phone arrives after closing: it is kept.
    assert send(courier_client, the_round, registers[1], "2210").status_code == 200
    assert Reading.objects.filter(round_stop__round=the_round).count() == 2
    assert reverse("meters-office:round-reopen", args=[the_round.public_id]) in (
        client.get(detail).content.decode()
    )

    response = client.post(reverse("meters-office:round-reopen", args=[the_round.public_id]))
    assert response.status_code == 302
    the_round.refresh_from_db()
    assert the_round.status == RoundStatus.ASSIGNED and the_round.done_at is None
    assert AuditEvent.objects.get(action="meters.round_reopened").actor == coordinator
    assert on_courier_home(courier_client, the_round)

    # Closing twice is refused with a message, not a second audit event.
    client.post(reverse("meters-office:round-close", args=[the_round.public_id]))
    again = client.post(reverse("meters-office:round-close", args=[the_round.public_id]),
                        follow=True)
    assert "This round is already done." in again.content.decode()
    assert AuditEvent.objects.filter(action="meters.round_closed").count() == 2


def test_it_shows_status_and_progress_in_the_round_list(
    client_for: Callable[[User], Client],
    coordinator: User,
    courier: User,
    the_round: ReadingRound,
) -> None:
    registers = round_registers(the_round)
    courier_client = client_for(courier)
    send(courier_client, the_round, registers[0], "2200")
    courier_client.post(
        reverse("courier:stop-skip", args=[the_round.public_id, 2]), {"reason": "nobody_home"}
    )
    page = client_for(coordinator).get(reverse("meters-office:round-list")).content.decode()
    assert "2 of 3 done" in page and "Assigned" in page
    detail = client_for(coordinator).get(
        reverse("meters-office:round-detail", args=[the_round.public_id])
    ).content.decode()
    assert "1 of 3 stops read" in detail and "1 stop not read (skipped)" in detail
    assert "Not read: Nobody at home" in detail
