"""Logging out of the courier page on a shared phone: nothing queued is lost, nothing is left."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from allauth.mfa.totp.internal.auth import TOTP
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from playwright.sync_api import BrowserContext, Page, expect

from meters.models import Reading, ReadingRound, Register
from portal.roles import Role
from tests.conftest import TOTP_SECRET, make_user
from tests.e2e import test_courier_offline as offline
from tests.e2e.test_courier_offline import log_in_courier

# The phone and the round of three stops of the offline tests.
browser_context_args = offline.browser_context_args
round_of_three = offline.round_of_three

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

KEPT_PAGES = """() => caches.keys().then(
    (names) => names.filter((n) => n.startsWith("guichet-courier-pages-")))"""

KEPT_URLS = """(async () => {
    const names = (await caches.keys()).filter((n) => n.startsWith("guichet-courier-pages-"));
    if (names.length !== 1) return [];
    return (await (await caches.open(names[0])).keys()).map((request) => request.url);
})()"""

QUEUE = """() => new Promise((resolve, reject) => {
    const open = indexedDB.open("guichet-courier", 1);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
        const read = open.result.transaction("readings").objectStore("readings").getAll();
        read.onsuccess = () => resolve(read.result.map((item) => item.state));
    };
})"""


def open_round(page: Page, base: str, reading_round: ReadingRound) -> None:
    page.goto(f"{base}/courier/rounds/{reading_round.public_id}/")
    expect(page.get_by_role("heading", name=reading_round.name)).to_be_visible()
    page.evaluate("() => navigator.serviceWorker.ready.then(() => null)")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    # The worker has kept this page and the courier's home (its requests are over: their
    # answers renew the session cookie, which would undo a test's clear_cookies()).
    page.wait_for_function("() => " + KEPT_URLS + ".then((urls) => urls.length >= 2)")


def first_register(reading_round: ReadingRound) -> Register:
    register = (
        Register.objects.filter(meter__supply_point__round_stops__round=reading_round)
        .order_by("meter__serial_number")
        .first()
    )
    assert register is not None
    return register


def wait_for_the_next_code() -> None:
    """An authenticator code is accepted once: the same courier logs in again with the next one."""
    from allauth.mfa import app_settings

    time.sleep(app_settings.TOTP_PERIOD - time.time() % app_settings.TOTP_PERIOD + 0.2)


def another_courier() -> str:
    paula = make_user("paula@staff.example.com", first_name="Paula", last_name="Post")
    paula.groups.add(Group.objects.get(name=Role.COURIER.value))
    TOTP.activate(paula, TOTP_SECRET)
    return paula.email


def test_it_warns_of_unsent_readings_and_sends_them_before_logging_out(
    page: Page, context: BrowserContext, live_server: Any, round_of_three: ReadingRound
) -> None:
    base = live_server.url
    assert round_of_three.courier is not None
    log_in_courier(page, base, round_of_three.courier.email)
    open_round(page, base, round_of_three)

    context.set_offline(True)
    form = page.locator(f"form[data-register='{first_register(round_of_three).public_id}']")
    form.get_by_label("New index").fill("2100")
    form.get_by_role("button", name="Save reading").click()
    expect(page.locator("#queued-count")).to_have_text("1")

    page.get_by_role("button", name="Log out").click()
    warning = page.get_by_role("alertdialog", name="Readings not sent yet")
    expect(warning).to_be_visible()
    expect(warning.locator(".unsent-count")).to_have_text("1")
    expect(warning).to_contain_text("You are offline")
    keep = warning.get_by_role("button", name="Log out and keep them on this phone")
    expect(keep).to_be_disabled()
    assert page.url.endswith(f"/courier/rounds/{round_of_three.public_id}/")
    assert page.evaluate(QUEUE) == ["queued"]
    assert not Reading.objects.filter(round_stop__round=round_of_three).exists()

    context.set_offline(False)
    warning.get_by_role("button", name="Send them and log out").click()
    expect(page).to_have_url(re.compile(r"/courier/login/"))
    assert Reading.objects.get(round_stop__round=round_of_three).value == 2100
    # The courier's kept pages and settled readings are gone from the phone.
    assert page.evaluate(KEPT_PAGES) == []
    assert page.evaluate(QUEUE) == []
    page.goto(f"{base}/courier/rounds/{round_of_three.public_id}/")
    expect(page.get_by_role("heading", name="Merilor")).to_have_count(0)


def test_it_keeps_unsent_readings_when_the_courier_says_so(
    page: Page, context: BrowserContext, live_server: Any, round_of_three: ReadingRound
) -> None:
    base = live_server.url
    courier = round_of_three.courier
    assert courier is not None
    log_in_courier(page, base, courier.email)
    open_round(page, base, round_of_three)
    # Sending fails (the server is unreachable for this request only): the reading stays queued.
    page.route("**/courier/readings/", lambda route: route.abort())
    form = page.locator(f"form[data-register='{first_register(round_of_three).public_id}']")
    form.get_by_label("New index").fill("2100")
    form.get_by_role("button", name="Save reading").click()
    expect(page.locator("#queued-count")).to_have_text("1")

    page.get_by_role("button", name="Log out").click()
    warning = page.get_by_role("alertdialog", name="Readings not sent yet")
    expect(warning).to_contain_text("not sent yet")
    warning.get_by_role("button", name="Log out and keep them on this phone").click()
    expect(page).to_have_url(re.compile(r"/courier/login/"))
    assert page.evaluate(QUEUE) == ["queued"]
    assert page.evaluate(KEPT_PAGES) == []

    # The same courier comes back: the kept reading is sent, once.
    page.unroute("**/courier/readings/")
    wait_for_the_next_code()
    log_in_courier(page, base, courier.email)
    page.goto(f"{base}/courier/rounds/{round_of_three.public_id}/")
    expect(page.locator("#sent-count")).to_have_text("1")
    assert Reading.objects.get(round_stop__round=round_of_three).value == 2100


def test_it_never_shows_the_previous_couriers_round_to_the_next_one(
    page: Page, context: BrowserContext, live_server: Any, round_of_three: ReadingRound
) -> None:
    base = live_server.url
    assert round_of_three.courier is not None
    paula = another_courier()
    log_in_courier(page, base, round_of_three.courier.email)
    open_round(page, base, round_of_three)

    # The first courier's session simply ends (idle, no logout); the next one logs in.
    Session.objects.all().delete()
    log_in_courier(page, base, paula)
    expect(page.get_by_text("No reading round is assigned to you.")).to_be_visible()
    page.wait_for_function(
        "() => caches.keys().then((n) => n.filter((k) => k.startsWith('guichet-courier-pages-'))"
        ".length === 1)"
    )
    assert page.get_by_role("link", name="Merilor").count() == 0

    # Offline, the phone has nothing of the first courier's round to show.
    context.set_offline(True)
    page.goto(f"{base}/courier/rounds/{round_of_three.public_id}/")
    expect(page.get_by_text("Gate 1")).to_have_count(0)
    expect(page.get_by_role("heading", name="Merilor")).to_have_count(0)
