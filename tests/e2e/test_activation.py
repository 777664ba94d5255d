"""Two-part activation in the browser: the office grants access, the person activates."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from notifications.models import OutboxMessage
from portal.models import Customer, Membership, MembershipRole, Representative
from portal.roles import Role
from tests.e2e.conftest import log_in_staff

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LETTER_CODE = re.compile(r"\b[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}\b")
EMAIL_CODE = re.compile(r"\b[A-Z2-9]{4}-[A-Z2-9]{4}\b")


def pdf_text(path: str) -> str:
    result = subprocess.run(["pdftotext", "-layout", path, "-"], capture_output=True, text=True,
                            check=True, timeout=30)
    return result.stdout


def test_it_grants_access_and_the_person_activates_with_both_parts(
    page: Page, new_page: Callable[..., Page], live_server: Any, customer: Customer,
    make_staff: Any,
) -> None:
    base = live_server.url
    Representative.objects.create(customer=customer, first_name="Dan", last_name="Ionescu",
                                  email="dan@example.com")
    staff = make_staff(Role.CUSTOMER_SERVICE)

    # The office: customer page → grant access → the letter to print.
    log_in_staff(page, base, staff.email)
    page.goto(f"{base}/office/customers/{customer.public_id}/")
    page.get_by_role("link", name="Grant portal access").click()
    expect(page).to_have_url(f"{base}/office/customers/{customer.public_id}/access/")
    page.get_by_label("Representative").select_option(label="Dan Ionescu <dan@example.com>")
    page.get_by_label("Role in the portal").select_option(label="Manager")
    page.get_by_role("button", name="Create letter and e-mail").click()
    granted = page.get_by_text("Access granted to Dan Ionescu")
    expect(granted).to_have_count(1)  # once, not again under the table of letters
    expect(granted).to_be_visible()
    letter_link = page.get_by_role("link", name="Letter (PDF)")
    expect(letter_link).to_have_count(1)
    with page.expect_download() as download_info:
        letter_link.click()
    download = download_info.value
    assert download.suggested_filename == f"activation-letter-{customer.number}.pdf"
    letter = LETTER_CODE.search(pdf_text(str(download.path())))
    assert letter is not None, "no XXXX-XXXX-XXXX code in the letter"
    letter_code = letter.group(0)

    email = OutboxMessage.objects.filter(to="dan@example.com", kind="activation").latest(
        "created_at"
    )
    email_match = EMAIL_CODE.search(email.body_text.split("part 2:", 1)[1])
    assert email_match is not None, "no XXXX-XXXX code in the e-mail"
    email_code = email_match.group(0)

    # The person, at home, not logged in.
    home = new_page()
    home.goto(f"{base}/accounts/activate/")
    part1 = home.get_by_label("Code from the letter (part 1)")
    part2 = home.get_by_label("Code from the e-mail (part 2)")
    activate = home.get_by_role("button", name="Activate and log in")
    wrong = "ABCD-EFGH" if email_code != "ABCD-EFGH" else "HGFE-DCBA"

    part1.fill(letter_code.lower())  # typed off paper, in any case
    part2.fill(wrong)
    home.get_by_label("New password", exact=True).fill("Lalele-de-primavara-7")
    home.get_by_label("New password again").fill("Lalele-de-primavara-7")
    activate.click()
    expect(home.get_by_text("These codes are not valid")).to_be_visible()
    expect(home.get_by_text("4 tries are left")).to_be_visible()
    expect(part1).to_have_value(letter_code.lower())
    assert not Membership.objects.filter(user__email="dan@example.com").exists()

    part2.fill(email_code)
    home.get_by_label("New password", exact=True).fill("Lalele-de-primavara-7")
    home.get_by_label("New password again").fill("Lalele-de-primavara-7")
    activate.click()
    expect(home).to_have_url(f"{base}/")
    expect(home.get_by_text("Your portal account is active")).to_be_visible()
    expect(home.get_by_role("heading", name="Hello, Dan")).to_be_visible()
    card = home.locator("section", has=home.get_by_role("heading", name="Your customer account"))
    expect(card).to_contain_text(customer.number)
    expect(card).to_contain_text("Ana Popescu")
    expect(card).to_contain_text("Manager")
    membership = Membership.objects.get(user__email="dan@example.com", customer=customer)
    assert membership.role == MembershipRole.MANAGER
