"""A billing data change in the browser: the owner asks, customer service decides."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from portal.models import Customer, User
from portal.roles import Role
from tests.e2e.conftest import log_in, log_in_staff

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

OLD_STREET = "Str. Lalelelor 5"


def request_new_street(page: Page, base: str, street: str) -> None:
    """The owner, logged in, asks from the account page for a new street."""
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Account").click()
    expect(page).to_have_url(f"{base}/account/")
    page.get_by_role("link", name="Request a change").click()
    page.get_by_label("Street and number").fill(street)
    page.get_by_label("Comment for customer service").fill("We moved.")
    page.get_by_role("button", name="Send the request").click()
    expect(page).to_have_url(f"{base}/account/")
    expect(page.get_by_text("Your request was sent")).to_be_visible()


def billing_card(page: Page) -> Locator:
    return page.locator("section", has=page.get_by_role("heading", name="Billing data", exact=True))


def change_row(page: Page, street: str) -> Locator:
    section = page.locator(
        "section", has=page.get_by_role("heading", name="Billing data change requests")
    )
    return section.get_by_role("row").filter(has_text=street)


def open_change_from_queue(page: Page, base: str, customer: Customer) -> None:
    """Customer service, logged in at /office/, goes from the team's queue to the request."""
    page.get_by_role("link", name="My team's tasks").click()
    expect(page).to_have_url(f"{base}/office/tasks/team/")
    page.get_by_role("link", name=f"Verify billing data change for {customer}").click()
    page.get_by_role("link", name="Billing data change request").click()
    expect(page.get_by_role("heading", name="Billing data change request")).to_be_visible()


def test_it_applies_an_approved_change_of_street(
    page: Page, new_page: Callable[..., Page], live_server: Any, customer: Customer,
    alice: User, make_staff: Any,
) -> None:
    base = live_server.url
    staff = make_staff(Role.CUSTOMER_SERVICE)
    log_in(page, base, alice.email)
    expect(page).to_have_url(f"{base}/")

    request_new_street(page, base, "Bd. Unirii 10")
    expect(change_row(page, "Bd. Unirii 10")).to_contain_text("Waiting for approval")
    expect(billing_card(page)).to_contain_text(OLD_STREET)

    office = new_page()
    log_in_staff(office, base, staff.email)
    open_change_from_queue(office, base, customer)
    street_row = office.get_by_role("row").filter(has_text="Street and number")
    expect(street_row).to_contain_text(OLD_STREET)
    expect(street_row).to_contain_text("Bd. Unirii 10")
    office.get_by_role("button", name="Approve and apply").click()
    decision = office.locator("#decision")
    expect(decision).to_contain_text("Approved")
    expect(decision.get_by_role("button")).to_have_count(0)

    # Decided requests leave the queue.
    office.get_by_role("navigation", name="Main").get_by_role("link", name="Work queue").click()
    office.get_by_role("link", name="My team's tasks").click()
    expect(office.get_by_text("Your teams have no open tasks.")).to_be_visible()

    page.reload()
    expect(billing_card(page)).to_contain_text("Bd. Unirii 10")
    expect(billing_card(page)).not_to_contain_text(OLD_STREET)
    expect(change_row(page, "Bd. Unirii 10")).to_contain_text("Approved")


def test_it_tells_the_owner_why_a_change_was_rejected(
    page: Page, new_page: Callable[..., Page], live_server: Any, customer: Customer,
    alice: User, make_staff: Any,
) -> None:
    base = live_server.url
    staff = make_staff(Role.CUSTOMER_SERVICE)
    log_in(page, base, alice.email)
    expect(page).to_have_url(f"{base}/")
    request_new_street(page, base, "Str. Inexistentă 99")

    office = new_page()
    log_in_staff(office, base, staff.email)
    open_change_from_queue(office, base, customer)
    reject = office.get_by_role("button", name="Reject")
    reject.click()
    expect(office.get_by_text("Give the customer a reason for the rejection.")).to_be_visible()
    office.get_by_label("Reason for the customer").fill("This street is not in the register.")
    reject.click()
    expect(office.locator("#decision")).to_contain_text("Rejected")

    page.reload()
    row = change_row(page, "Str. Inexistentă 99")
    expect(row).to_contain_text("Rejected")
    expect(row).to_contain_text("This street is not in the register.")
    expect(billing_card(page)).to_contain_text(OLD_STREET)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Overview").click()
    changes = page.locator("section", has=page.get_by_role("heading", name="Billing data changes"))
    expect(changes).to_contain_text("Rejected")
    expect(changes).to_contain_text("This street is not in the register.")
