from __future__ import annotations

import re
from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from playwright.sync_api import Page, expect

from portal.models import User
from portal.roles import Role
from tests.conftest import TOTP_SECRET
from tests.e2e.conftest import log_in, totp_now

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_it_logs_a_customer_in_and_turns_on_mfa(page: Page, live_server: Any, alice: User) -> None:
    log_in(page, live_server.url, alice.email)
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_text("Popescu").first).to_be_visible()

    page.goto(f"{live_server.url}/accounts/2fa/totp/activate/")
    if "/accounts/reauthenticate/" in page.url:
        page.get_by_label(re.compile("password", re.I)).fill("correct-horse-battery")
        page.get_by_role("button", name=re.compile("confirm", re.I)).click()
    secret = page.locator("#authenticator_secret, input[name=secret]").first
    secret_value = secret.input_value() if secret.count() else ""
    if not secret_value:
        secret_value = re.search(r"[A-Z2-7]{16,}", page.content()).group(0)  # type: ignore[union-attr]
    page.get_by_label(re.compile("code", re.I)).fill(totp_now(secret_value))
    page.get_by_role("button", name=re.compile("activate", re.I)).click()
    expect(page.get_by_text(re.compile("recovery codes", re.I)).first).to_be_visible()
    assert Authenticator.objects.filter(user=alice, type=Authenticator.Type.TOTP).exists()

    # From now on the login asks for the code.
    page.context.clear_cookies()
    log_in(page, live_server.url, alice.email)
    page.get_by_label(re.compile("code", re.I)).fill(totp_now(secret_value))
    page.get_by_role("button", name=re.compile("sign in|log in", re.I)).click()
    expect(page).to_have_url(f"{live_server.url}/")


def test_it_requires_staff_to_give_their_code(
    page: Page, live_server: Any, make_staff: Any
) -> None:
    staff = make_staff(Role.CUSTOMER_SERVICE)
    log_in(page, live_server.url, staff.email)
    page.get_by_label(re.compile("code", re.I)).fill(totp_now(TOTP_SECRET))
    page.get_by_role("button", name=re.compile("sign in|log in", re.I)).click()
    expect(page).to_have_url(f"{live_server.url}/office/")
