"""The courier's round keeps working without network: readings queue on the phone and sync once."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import BrowserContext, Page, expect

from meters import rounds
from meters.models import Meter, Reading, ReadingRound, Register, Service, SupplyPoint
from portal.models import Customer, User
from portal.roles import Role
from tests.conftest import TOTP_SECRET
from tests.e2e.conftest import log_in, totp_now
from tests.meters.conftest import _add_history

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {
        **browser_context_args,
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "has_touch": True,
    }


@pytest.fixture
def round_of_three(customer: Customer, make_staff: Callable[[Role], User]) -> ReadingRound:
    courier = make_staff(Role.COURIER)
    coordinator = make_staff(Role.METER_READING)
    today = timezone.localdate()
    points = []
    for n in (1, 2, 3):
        point = SupplyPoint.objects.create(
            customer=customer,
            code=f"RO005E00000000010{n}",
            service=Service.ELECTRICITY,
            street=f"Str. Merilor {n}",
            postal_code="010101",
            city="București",
            access_notes=f"Gate {n}",
        )
        meter = Meter.objects.create(
            supply_point=point, serial_number=f"E-55{n}", installed_on=date(2024, 1, 1)
        )
        register = Register.objects.create(meter=meter, code="1.8.0", name="Total")
        _add_history(
            register,
            [
                (today - timedelta(days=d), v)
                for d, v in ((120, 1000), (90, 1300), (60, 1600), (30, 1900))
            ],
        )
        points.append(point)
    return rounds.create_round(
        name="Merilor",
        period_start=today,
        period_end=today + timedelta(days=5),
        supply_points=points,
        created_by=coordinator,
        courier=courier,
    )


def log_in_courier(page: Page, base: str, email: str) -> None:
    log_in(page, base, email)
    page.get_by_label(re.compile("code", re.I)).fill(totp_now(TOTP_SECRET))
    page.get_by_role("button", name=re.compile("sign in|log in", re.I)).click()
    expect(page).to_have_url(f"{base}/courier/")


def test_it_queues_readings_offline_and_sends_each_once(
    page: Page, context: BrowserContext, live_server: Any, round_of_three: ReadingRound
) -> None:
    base = live_server.url
    assert round_of_three.courier is not None
    log_in_courier(page, base, round_of_three.courier.email)
    page.get_by_role("link", name="Merilor").click()
    expect(page.get_by_role("heading", name="Merilor")).to_be_visible()
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the round page scrolls sideways: {width}"
    online = page.locator(".online-state")
    expect(online).to_have_text("Online")
    # The service worker is in charge before the network goes.
    page.evaluate("() => navigator.serviceWorker.ready.then(() => null)")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")

    context.set_offline(True)
    expect(online).to_have_text("Offline")
    registers = Register.objects.filter(
        meter__supply_point__round_stops__round=round_of_three
    ).order_by("meter__serial_number")
    for register, value in zip(registers, ("2100", "2150", "2200"), strict=True):
        form = page.locator(f"form[data-register='{register.public_id}']")
        form.get_by_label("New index").fill(value)
        form.get_by_role("button", name="Save reading").click()
        expect(form.locator(".queue-state")).to_contain_text("Saved on this phone")
    expect(page.locator("#queued-count")).to_have_text("3")
    expect(page.locator("#sent-count")).to_have_text("0")
    assert not Reading.objects.filter(round_stop__round=round_of_three).exists()

    context.set_offline(False)
    expect(page.locator("#sent-count")).to_have_text("3")
    expect(page.locator("#queued-count")).to_have_text("0")
    stored = Reading.objects.filter(round_stop__round=round_of_three)
    assert sorted(str(r.value) for r in stored) == ["2100.000", "2150.000", "2200.000"]
    assert len({r.client_id for r in stored}) == 3 and None not in {r.client_id for r in stored}

    # Coming back later sends nothing twice.
    page.reload()
    expect(page.locator("#sent-count")).to_have_text("3")
    expect(page.get_by_text("Read: 2100.000")).to_be_visible()
    assert Reading.objects.filter(round_stop__round=round_of_three).count() == 3

    # Without network the round page still opens, from the phone's cache.
    context.set_offline(True)
    page.reload()
    expect(page.get_by_role("heading", name="Merilor")).to_be_visible()
    expect(page.get_by_text("Gate 2")).to_be_visible()


def test_it_asks_to_confirm_an_index_outside_the_expected_range(
    page: Page, live_server: Any, round_of_three: ReadingRound
) -> None:
    base = live_server.url
    assert round_of_three.courier is not None
    log_in_courier(page, base, round_of_three.courier.email)
    page.goto(f"{base}/courier/rounds/{round_of_three.public_id}/")
    register = (
        Register.objects.filter(meter__supply_point__round_stops__round=round_of_three)
        .order_by("meter__serial_number")
        .first()
    )
    assert register is not None
    form = page.locator(f"form[data-register='{register.public_id}']")
    form.get_by_label("New index").fill("5000")
    form.get_by_role("button", name="Save reading").click()
    expect(form.get_by_text("outside the expected range 1960 – 2800")).to_be_visible()
    expect(page.locator("#queued-count")).to_have_text("0")
    assert not Reading.objects.filter(round_stop__round=round_of_three).exists()

    form.get_by_label("I checked the meter: this index is right").check()
    form.get_by_role("button", name="Save reading").click()
    expect(page.locator("#sent-count")).to_have_text("1")
    expect(form.locator(".queue-state")).to_contain_text("waiting for review")
    assert Reading.objects.get(round_stop__round=round_of_three).value == 5000
