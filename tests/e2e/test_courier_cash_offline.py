"""The courier's cash page keeps entries made without network on the phone and sends each once."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from meters.models import Service, SupplyPoint
from portal.models import Customer, User
from portal.roles import Role
from receivables.models import Channel, Payment
from tests.conftest import TOTP_SECRET
from tests.e2e.conftest import log_in, totp_now
from tests.receivables.conftest import Issue, issue, series  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {
        **browser_context_args,
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "has_touch": True,
    }


def test_it_keeps_cash_entries_offline_and_sends_each_once(
    page: Page, context: BrowserContext, live_server: Any, customer: Customer, issue: Issue,  # noqa: F811
    make_staff: Callable[[Role], User],
) -> None:
    courier = make_staff(Role.COURIER)
    SupplyPoint.objects.create(
        customer=customer, code="RO005E000000000201", service=Service.ELECTRICITY,
        street="Str. Merilor 1", postal_code="010101", city="București",
    )
    issue(customer, "121.00")
    base = live_server.url
    log_in(page, base, courier.email)
    page.get_by_label(re.compile("code", re.I)).fill(totp_now(TOTP_SECRET))
    page.get_by_role("button", name=re.compile("sign in|log in", re.I)).click()
    expect(page).to_have_url(f"{base}/courier/")
    page.goto(f"{base}/courier/cash/")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")

    context.set_offline(True)
    for receipt, amount in (("C-1", "20.00"), ("C-2", "30.00")):
        page.get_by_label("Supply point code").fill("RO005E000000000201")
        page.get_by_label("Amount collected").fill(amount)
        page.get_by_label("Receipt number").fill(receipt)
        page.get_by_role("button", name="Record the cash").click()
        expect(page.get_by_label("Receipt number")).to_have_value("")
    expect(page.locator("#cash-queue .count")).to_have_text("2")
    assert not Payment.objects.exists()

    context.set_offline(False)
    page.evaluate("() => window.dispatchEvent(new Event('online'))")
    expect(page.get_by_text("Total to hand over")).to_be_visible()
    expect(page.locator("#cash-queue")).to_be_hidden()
    stored = Payment.objects.filter(channel=Channel.COURIER).order_by("reference")
    assert [(p.reference, str(p.amount)) for p in stored] == [("C-1", "20.00"), ("C-2", "30.00")]
    assert len({p.txn_id for p in stored}) == 2

    # Coming back sends nothing twice.
    page.reload()
    expect(page.locator("#cash-queue")).to_be_hidden()
    assert Payment.objects.count() == 2

    # Without network the page still opens, from the phone's cache.
    context.set_offline(True)
    page.reload()
    expect(page.get_by_role("heading", name="Cash collection")).to_be_visible()
