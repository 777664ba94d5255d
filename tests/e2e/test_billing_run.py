"""A billing clerk runs last month's billing in the office: price, review, issue, see it sent."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from billing.models import BillingRun, BillingRunStatus, InvoiceStatus, PriceList, TariffAssignment
from meters.models import Meter, Reading, ReadingSource, Register, Service, SupplyPoint
from portal.models import Customer, User
from portal.roles import Role
from tests.billing import conftest as billing
from tests.e2e.conftest import log_in_staff

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The billing tests' fixtures: a supply point of `customer`, VAT, series and a price list.
supply_point, vat, series, price_list = (
    billing.supply_point, billing.vat, billing.series, billing.price_list
)

# The pages wait for WeasyPrint: the run renders every invoice and a print batch.
SLOW = 60_000


def _last_month() -> tuple[date, date]:
    end = timezone.localdate().replace(day=1) - timedelta(days=1)
    return end.replace(day=1), end


def _point(customer: Customer, code: str, price_list: PriceList) -> SupplyPoint:
    point = SupplyPoint.objects.create(
        customer=customer, code=code, service=Service.ELECTRICITY, street="ul. Długa 1",
        postal_code="31-147", city="Kraków",
    )
    TariffAssignment.objects.create(supply_point=point, price_list=price_list,
                                    valid_from=date(2024, 1, 1))
    return point


def _meter(point: SupplyPoint, serial: str, readings: list[tuple[date, str]]) -> None:
    meter = Meter.objects.create(supply_point=point, serial_number=serial,
                                 installed_on=date(2024, 1, 1))
    register = Register.objects.create(meter=meter, code="1.8.0", name="Total")
    for on, value in readings:
        Reading.objects.create(
            register=register, value=Decimal(value), read_on=on, source=ReadingSource.COURIER,
            read_at=timezone.make_aware(datetime(on.year, on.month, on.day, 10)),
        )


@pytest.fixture
def clerk(
    customer: Customer, other_customer: Customer, supply_point: SupplyPoint,
    price_list: PriceList, series: Any, make_staff: Callable[[Role], User],
) -> User:
    """Last month, three electricity points:

    RO005E000000000001  the customer's (e-billing): 1300 → 1420, 120 kWh → 133.10
    RO005E000000000002  the company's (paper): 500 → 560, 60 kWh → 72.60
    RO005E000000000003  the company's: a meter never read, no estimate possible
    """
    start, end = _last_month()
    customer.consent_ebilling = True
    customer.save()
    _meter(supply_point, "M-1", [(start - timedelta(days=1), "1300"), (end, "1420")])
    paper = _point(other_customer, "RO005E000000000002", price_list)
    _meter(paper, "M-2", [(start - timedelta(days=1), "500"), (end, "560")])
    unread = _point(other_customer, "RO005E000000000003", price_list)
    _meter(unread, "M-3", [])
    return make_staff(Role.BILLING)


def _price_run(page: Page, name: str) -> None:
    """From any office page: Billing runs → New billing run for last month's electricity."""
    start, end = _last_month()
    page.get_by_role("link", name="Billing runs", exact=True).click()
    expect(page.get_by_role("heading", name="Billing runs")).to_be_visible()
    page.get_by_role("link", name="New billing run").click()
    page.get_by_label(re.compile(r"^Name\b")).fill(name)
    page.get_by_label("Period from").fill(start.isoformat())
    page.get_by_label("Period to").fill(end.isoformat())
    page.get_by_label("Service").select_option(label="Electricity")
    page.get_by_role("button", name="Price the run").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    # Priced (the page polls while pricing and shows the review once it is done).
    expect(page.locator(".badge-review")).to_have_text("Ready for review", timeout=SLOW)


def test_a_clerk_prices_reviews_and_issues_a_run(
    page: Page, live_server: Any, clerk: User
) -> None:
    log_in_staff(page, live_server.url, clerk.email)
    _price_run(page, "Last month")

    expect(page.get_by_text("205.70")).to_be_visible()  # 133.10 + 72.60
    problem = page.get_by_role("row").filter(has_text="RO005E000000000003")
    expect(problem).to_contain_text("Missing reading, no estimate possible")
    expect(page.get_by_text("Price again or leave out 1 supply point")).to_be_visible()
    expect(page.get_by_role("button", name="Issue and send all invoices")).to_have_count(0)

    # Pricing it again changes nothing while the meter has no reading.
    problem.get_by_role("button", name="Price again").click()
    expect(page.get_by_text("RO005E000000000003 still has a problem.")).to_be_visible()
    problem.get_by_role("button", name="Leave out").click()
    expect(page.get_by_text("RO005E000000000003 is left out of the run.")).to_be_visible()
    expect(problem).to_contain_text("Left out of the run")

    page.get_by_role("button", name="Issue and send all invoices").click()
    progress = page.locator("#run-progress")
    expect(progress).to_contain_text("2 issued, 2 rendered, 2 sent of 2 invoices", timeout=SLOW)
    expect(page.locator(".badge-done")).to_have_text("Done")
    year = timezone.localdate().year
    for number, code in ((1, "RO005E000000000001"), (2, "RO005E000000000002")):
        row = page.get_by_role("row").filter(has_text=f"FV-{year}-{number:06d}")
        expect(row).to_contain_text(code)
        expect(row).to_contain_text("Issued")
    expect(page.get_by_text(re.compile(r"Batch 1: 1 letters, \d+ pages"))).to_be_visible()
    expect(page.get_by_role("link", name="Letters (PDF)")).to_be_visible()

    run = BillingRun.objects.get()
    assert run.status == BillingRunStatus.DONE
    assert sorted(run.invoices.values_list("status", flat=True)) == [InvoiceStatus.ISSUED] * 2


def test_a_clerk_cancels_a_run_and_the_next_one_prices_its_points(
    page: Page, live_server: Any, clerk: User
) -> None:
    log_in_staff(page, live_server.url, clerk.email)
    _price_run(page, "Last month")

    page.get_by_text("Cancel the run", exact=True).click()  # opens the form
    page.get_by_role("button", name="Cancel the run and delete its drafts").click()
    expect(page.get_by_text("This field is required.")).to_be_visible()
    page.get_by_label("Why is the run cancelled?").fill("The price list changes this month.")
    page.get_by_role("button", name="Cancel the run and delete its drafts").click()
    expect(page.get_by_text("The run is cancelled; its draft invoices are deleted.")) \
        .to_be_visible()
    expect(page.locator(".badge-cancelled")).to_have_text("Cancelled")
    expect(page.get_by_text("The price list changes this month.")).to_be_visible()
    expect(page.get_by_text("Cancelled before issuing")).to_be_visible()

    _price_run(page, "Last month, again")
    expect(page.get_by_text("205.70")).to_be_visible()
    expect(page.get_by_text("Already invoiced")).to_have_count(0)
