"""Phone-sized screens (390×844): pages fit the width and keep their navigation."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from portal.models import User
from tests.e2e.conftest import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {
        **browser_context_args,
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 3,
        "is_mobile": True,
        "has_touch": True,
    }


def assert_fits_the_width(page: Page) -> None:
    scroll_width, inner_width = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert inner_width == 390
    assert scroll_width <= inner_width, f"{page.url} scrolls sideways: {scroll_width}px wide"


def test_it_fits_the_dashboard_and_the_account_on_a_phone(
    page: Page, live_server: Any, alice: User
) -> None:
    base = live_server.url
    log_in(page, base, alice.email)
    expect(page).to_have_url(f"{base}/")
    nav = page.get_by_role("navigation", name="Main")
    for name in ("Overview", "Account", "Representatives"):
        expect(nav.get_by_role("link", name=name)).to_be_visible()
    expect(page.get_by_role("heading", name="Your customer account")).to_be_visible()
    assert_fits_the_width(page)

    nav.get_by_role("link", name="Account").click()
    expect(page).to_have_url(f"{base}/account/")
    expect(page.get_by_role("heading", name="Billing data", exact=True)).to_be_visible()
    expect(nav).to_be_visible()
    assert_fits_the_width(page)


def test_it_fits_the_courier_login_on_a_phone(page: Page, live_server: Any) -> None:
    page.goto(f"{live_server.url}/courier/login/")
    expect(page.get_by_role("heading", name="Courier login")).to_be_visible()
    expect(page.get_by_role("button", name="Log in").last).to_be_visible()
    assert_fits_the_width(page)
