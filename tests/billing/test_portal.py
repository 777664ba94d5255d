"""Customer pages of billing: invoices, invoice PDF, advances, balance due, price lists.

Also the dashboard card and the office customer-page section.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from time_machine import TimeMachineFixture

from billing import services
from billing.models import (
    AdvanceInstalment,
    ComponentKind,
    Frequency,
    Invoice,
    InvoiceKind,
    InvoiceSeries,
    InvoiceStatus,
    PriceComponent,
    PriceList,
    PriceListVersion,
    PriceTier,
    SeriesKind,
    TierMode,
)
from billing.views import PAGE_SIZE
from meters.models import Service, SupplyPoint
from portal.models import Customer, User
from portal.roles import Role
from tests.billing.conftest import MakeDraft

D = Decimal
pytestmark = pytest.mark.django_db
ClientFor = Callable[[User], Client]
NumQueries = Callable[..., Any]
NOW = datetime(2026, 3, 15, 9, 0, tzinfo=UTC)
TODAY = date(2026, 3, 15)
# Every portal page: session, user, staff groups, membership with customer, and the
# session save (savepoint, update, release); see tests/portal/test_views.py.
BASE_QUERIES = 7


@pytest.fixture(autouse=True)
def frozen(time_machine: TimeMachineFixture) -> None:
    time_machine.move_to(NOW, tick=False)


@pytest.fixture(autouse=True)
def media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path


def issue(
    customer: Customer,
    make_draft: MakeDraft,
    *,
    day: date,
    lines: tuple[tuple[str, str], ...] = (("100.00", "19"),),
    status: str = InvoiceStatus.ISSUED,
    supply_point: SupplyPoint | None = None,
) -> Invoice:
    """An invoice issued on ``day`` through the real service, then moved to ``status``."""
    draft = make_draft(customer, lines)
    if supply_point is not None:
        draft.supply_point = supply_point
        draft.save(update_fields=["supply_point"])
    invoice = services.issue_invoice(invoice=draft, issued_by=None, issue_date=day)
    if status != InvoiceStatus.ISSUED:
        invoice.status = status
        invoice.save(update_fields=["status", "updated_at"])
    return invoice


def bulk_issue(customer: Customer, series: InvoiceSeries, count: int, *, start: int = 1) -> None:
    """``count`` issued invoices, three per day going back from TODAY (ties on the date)."""
    Invoice.objects.bulk_create(
        Invoice(
            series=series,
            number=n,
            document_number=f"FV-BULK-{n:06d}",
            customer=customer,
            issue_date=TODAY - timedelta(days=n // 3),
            due_date=TODAY - timedelta(days=n // 3) + timedelta(days=14),
            status=InvoiceStatus.ISSUED,
            currency="EUR",
            net_total=D("100.00"),
            vat_total=D("19.00"),
            gross_total=D("119.00"),
            amount_due=D("119.00"),
        )
        for n in range(start, start + count)
    )


def numbers(response: Any) -> list[str]:
    return [invoice.document_number for invoice in response.context["page"].invoices]


def link(response: Any, rel: str) -> str | None:
    found = re.search(rf'rel="{rel}" href="([^"]+)"', response.content.decode())
    return found.group(1).replace("&amp;", "&") if found else None


# --- Every URL: outsiders get 404, anonymous users the login page ------------------------


@pytest.fixture
def alices_invoice(customer: Customer, make_draft: MakeDraft, supply_point: SupplyPoint) -> Invoice:
    invoice = issue(customer, make_draft, day=date(2026, 3, 1), supply_point=supply_point)
    invoice.pdf.save("alice.pdf", ContentFile(b"%PDF-1.7 alice"), save=False)
    invoice.save(update_fields=["pdf", "updated_at"])
    return invoice


def test_it_answers_404_to_an_outsider_for_another_customers_invoice(
    client_for: ClientFor, charlie: User, alices_invoice: Invoice
) -> None:
    client = client_for(charlie)
    for name in ["billing:invoice", "billing:invoice-pdf"]:
        response = client.get(reverse(name, args=[alices_invoice.public_id]))
        assert response.status_code == 404, name


def test_it_shows_an_outsider_none_of_another_customers_documents(
    client_for: ClientFor, charlie: User, alices_invoice: Invoice, supply_point: SupplyPoint
) -> None:
    services.create_advance_schedule(
        customer=alices_invoice.customer,
        supply_point=supply_point,
        frequency=Frequency.MONTHLY,
        amount=D("80.00"),
        currency="RON",
        first_due_date=date(2026, 4, 1),
        count=3,
        created_by=None,
    )
    client = client_for(charlie)
    for name in ["billing:invoice-list", "billing:balance", "billing:advances", "portal:home"]:
        response = client.get(reverse(name))
        page = response.content.decode()
        assert response.status_code == 200, name
        assert alices_invoice.document_number not in page, name
        assert supply_point.code not in page, name
    # Even naming Alice's supply point as a filter shows nothing of hers.
    response = client.get(
        reverse("billing:invoice-list"), {"supply_point": str(supply_point.public_id)}
    )
    assert response.context["page"].invoices == []
    assert supply_point.code not in response.content.decode()


def test_it_answers_404_for_a_malformed_or_unknown_invoice_id(
    client_for: ClientFor, alice: User
) -> None:
    client = client_for(alice)
    for name in ["billing:invoice", "billing:invoice-pdf"]:
        url = reverse(name, args=["00000000-0000-0000-0000-000000000000"])
        assert client.get(url).status_code == 404, name


def test_it_sends_anonymous_visitors_to_the_login_page(alices_invoice: Invoice) -> None:
    urls = [
        reverse("billing:invoice-list"),
        reverse("billing:balance"),
        reverse("billing:advances"),
        reverse("billing:invoice", args=[alices_invoice.public_id]),
        reverse("billing:invoice-pdf", args=[alices_invoice.public_id]),
        reverse("billing-prices:price-lists"),
        reverse("billing-prices:price-list", args=["RES-E"]),
        reverse("billing-prices:price-list-pdf", args=["RES-E"]),
    ]
    for url in urls:
        response = Client().get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("account_login")), url


def test_it_lets_every_role_read_the_invoices(
    client_for: ClientFor, alice: User, bob: User, viola: User, alices_invoice: Invoice
) -> None:
    for user in (alice, bob, viola):
        client = client_for(user)
        assert numbers(client.get(reverse("billing:invoice-list"))) == [
            alices_invoice.document_number
        ]
        response = client.get(reverse("billing:invoice-pdf", args=[alices_invoice.public_id]))
        assert response.status_code == 200, user.email


def test_it_never_shows_a_draft(
    client_for: ClientFor, alice: User, customer: Customer, make_draft: MakeDraft
) -> None:
    draft = make_draft(customer, [("10.00", "19")])
    client = client_for(alice)

    assert numbers(client.get(reverse("billing:invoice-list"))) == []
    assert client.get(reverse("billing:invoice", args=[draft.public_id])).status_code == 404
    assert client.get(reverse("billing:invoice-pdf", args=[draft.public_id])).status_code == 404


# --- Invoices list: filters ---------------------------------------------------------------


@pytest.fixture
def three_invoices(
    customer: Customer, make_draft: MakeDraft, supply_point: SupplyPoint
) -> list[Invoice]:
    second_point = SupplyPoint.objects.create(
        customer=customer,
        code="RO005E000000000002",
        service=Service.ELECTRICITY,
        street="Str. Morii 2",
        postal_code="010101",
        city="București",
    )
    return [
        issue(
            customer,
            make_draft,
            day=date(2026, 1, 10),
            supply_point=supply_point,
            status=InvoiceStatus.PAID,
        ),
        issue(customer, make_draft, day=date(2026, 2, 10), supply_point=second_point),
        issue(customer, make_draft, day=date(2026, 3, 10), supply_point=supply_point),
    ]


def test_it_lists_the_newest_documents_first_with_their_amounts(
    client_for: ClientFor, alice: User, three_invoices: list[Invoice]
) -> None:
    response = client_for(alice).get(reverse("billing:invoice-list"))

    assert numbers(response) == ["FV-2026-000003", "FV-2026-000002", "FV-2026-000001"]
    page = response.content.decode()
    assert "119.00" in page
    assert "RO005E000000000002" in page
    assert "Older documents" not in page and "Newer documents" not in page


def test_it_filters_by_period_status_and_supply_point(
    client_for: ClientFor, alice: User, three_invoices: list[Invoice], supply_point: SupplyPoint
) -> None:
    client = client_for(alice)
    url = reverse("billing:invoice-list")

    by_period = client.get(url, {"date_from": "2026-02-01", "date_to": "2026-03-10"})
    by_status = client.get(url, {"status": InvoiceStatus.PAID})
    by_point = client.get(url, {"supply_point": str(supply_point.public_id)})
    everything = client.get(url, {"status": "", "supply_point": ""})

    assert numbers(by_period) == ["FV-2026-000003", "FV-2026-000002"]
    assert numbers(by_status) == ["FV-2026-000001"]
    assert numbers(by_point) == ["FV-2026-000003", "FV-2026-000001"]
    assert len(numbers(everything)) == 3
    assert "Show all" in by_status.content.decode()
    assert by_status.context["form"]["status"].value() == InvoiceStatus.PAID


def test_it_says_when_no_document_matches(
    client_for: ClientFor, alice: User, three_invoices: list[Invoice]
) -> None:
    response = client_for(alice).get(reverse("billing:invoice-list"), {"date_from": "2027-01-01"})

    assert numbers(response) == []
    assert "No document matches these filters." in response.content.decode()


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"date_from": "yesterday"}, "date_from", "Enter a valid date."),
        ({"date_to": "2026-13-45"}, "date_to", "Enter a valid date."),
        ({"status": "draft"}, "status", "Select a valid choice."),
        ({"supply_point": "not-a-uuid"}, "supply_point", "Select a valid choice."),
        (
            {"date_from": "2026-03-01", "date_to": "2026-02-01"},
            "date_to",
            "The end of the period is before its start.",
        ),
    ],
)
def test_it_explains_a_bad_filter_and_keeps_what_was_typed(
    client_for: ClientFor,
    alice: User,
    three_invoices: list[Invoice],
    query: dict[str, str],
    field: str,
    message: str,
) -> None:
    response = client_for(alice).get(reverse("billing:invoice-list"), query)

    assert response.status_code == 200
    form = response.context["form"]
    assert any(message in error for error in form.errors[field])
    assert form[field].value() == query[field]
    page = response.content.decode()
    assert "Some filters could not be used" in page
    # The other filters still apply; a bad one is left out, not guessed.
    # (2026-03-01 on: only the March invoice)
    assert len(numbers(response)) == (1 if field == "date_to" and "date_from" in query else 3)


def test_it_answers_an_htmx_filter_with_the_results_fragment(
    client_for: ClientFor, alice: User, three_invoices: list[Invoice]
) -> None:
    response = client_for(alice).get(
        reverse("billing:invoice-list"), {"status": "paid"}, HTTP_HX_REQUEST="true"
    )

    page = response.content.decode()
    assert page.lstrip().startswith('<div id="invoice-results">')
    assert "<html" not in page
    assert "FV-2026-000001" in page and "FV-2026-000002" not in page
    assert "HX-Request" in response["Vary"]


# --- Invoices list: keyset pages and query counts ------------------------------------------


def test_it_pages_by_issue_date_and_id_back_and_forth(
    client_for: ClientFor, alice: User, customer: Customer, series: dict[str, InvoiceSeries]
) -> None:
    count = 2 * PAGE_SIZE + 10
    bulk_issue(customer, series[SeriesKind.INVOICE], count)
    newest_first = list(
        Invoice.objects.filter(customer=customer)
        .order_by("-issue_date", "-id")
        .values_list("document_number", flat=True)
    )
    client = client_for(alice)

    first = client.get(reverse("billing:invoice-list"))
    second_url = link(first, "next")
    assert second_url is not None and link(first, "prev") is None
    second = client.get(second_url)
    third_url = link(second, "next")
    assert third_url is not None
    third = client.get(third_url)
    back_url = link(third, "prev")
    assert back_url is not None
    back = client.get(back_url)

    assert numbers(first) == newest_first[:PAGE_SIZE]
    assert numbers(second) == newest_first[PAGE_SIZE : 2 * PAGE_SIZE]
    assert numbers(third) == newest_first[2 * PAGE_SIZE :]
    assert link(third, "next") is None
    assert numbers(back) == numbers(second)
    first_again_url = link(back, "prev")
    assert first_again_url is not None
    assert numbers(client.get(first_again_url)) == numbers(first)
    assert link(client.get(first_again_url), "prev") is None


def test_it_keeps_the_filters_on_the_page_links(
    client_for: ClientFor, alice: User, customer: Customer, series: dict[str, InvoiceSeries]
) -> None:
    bulk_issue(customer, series[SeriesKind.INVOICE], 2 * PAGE_SIZE)
    Invoice.objects.filter(customer=customer, number__gt=PAGE_SIZE + 5).update(
        status=InvoiceStatus.PAID
    )
    client = client_for(alice)

    first = client.get(reverse("billing:invoice-list"), {"status": "issued"})
    next_url = link(first, "next")
    assert next_url is not None and "status=issued" in next_url
    second = client.get(next_url)

    unpaid = list(
        Invoice.objects.filter(customer=customer, status=InvoiceStatus.ISSUED)
        .order_by("-issue_date", "-id")
        .values_list("document_number", flat=True)
    )
    assert len(unpaid) == PAGE_SIZE + 5
    assert numbers(first) == unpaid[:PAGE_SIZE]
    assert numbers(second) == unpaid[PAGE_SIZE:]


def test_it_shows_the_first_page_for_a_link_to_newer_documents_than_the_newest(
    client_for: ClientFor, alice: User, three_invoices: list[Invoice]
) -> None:
    newest = three_invoices[-1]

    response = client_for(alice).get(
        reverse("billing:invoice-list"), {"before": str(newest.public_id)}
    )

    assert numbers(response) == ["FV-2026-000003", "FV-2026-000002", "FV-2026-000001"]
    assert link(response, "prev") is None


def test_it_explains_a_page_link_that_is_not_ours(
    client_for: ClientFor,
    alice: User,
    charlie: User,
    other_customer: Customer,
    customer: Customer,
    make_draft: MakeDraft,
    three_invoices: list[Invoice],
) -> None:
    charlies = issue(other_customer, make_draft, day=date(2026, 3, 1))
    client = client_for(alice)

    for cursor in [str(charlies.public_id), "garbage", "00000000-0000-0000-0000-000000000000"]:
        response = client.get(reverse("billing:invoice-list"), {"after": cursor})
        assert response.status_code == 200
        assert "That page link is not valid" in response.content.decode()
        assert len(numbers(response)) == 3


@pytest.mark.parametrize("count", [10, 3 * PAGE_SIZE])
def test_it_lists_any_number_of_invoices_in_the_same_queries(
    client_for: ClientFor,
    alice: User,
    customer: Customer,
    series: dict[str, InvoiceSeries],
    django_assert_num_queries: NumQueries,
    count: int,
) -> None:
    bulk_issue(customer, series[SeriesKind.INVOICE], count)
    client = client_for(alice)
    client.get(reverse("portal:home"))  # the first page stores the current customer
    boundary = Invoice.objects.filter(customer=customer).order_by("-issue_date", "-id")[4]

    # the 7 of every portal page
    # + the customer's supply points (filter choices)
    # + one page of invoices with their supply points (LIMIT 26, no COUNT)
    with django_assert_num_queries(BASE_QUERIES + 2):
        first = client.get(reverse("billing:invoice-list"), {"status": "issued"})
    # ... and a later page also loads the document it starts after
    with django_assert_num_queries(BASE_QUERIES + 3):
        later = client.get(reverse("billing:invoice-list"), {"after": str(boundary.public_id)})

    assert len(numbers(first)) == min(count, PAGE_SIZE)
    assert len(numbers(later)) == min(count - 5, PAGE_SIZE)


# --- Invoice detail and PDF -----------------------------------------------------------------


def test_it_shows_the_invoice_with_lines_vat_summary_totals_and_reference(
    client_for: ClientFor,
    alice: User,
    customer: Customer,
    make_draft: MakeDraft,
    supply_point: SupplyPoint,
) -> None:
    invoice = issue(
        customer,
        make_draft,
        day=date(2026, 3, 1),
        supply_point=supply_point,
        lines=(("100.00", "19"), ("20.50", "9"), ("3.10", "19")),
    )
    invoice.payment_reference = "RF18539007547034"
    invoice.save(update_fields=["payment_reference", "updated_at"])

    response = client_for(alice).get(reverse("billing:invoice", args=[invoice.public_id]))

    page = response.content.decode()
    assert response.status_code == 200
    assert "FV-2026-000001" in page
    assert [row.line.description for row in response.context["rows"]] == [
        "Item 1",
        "Item 2",
        "Item 3",
    ]
    assert [(r.rate, r.net, r.vat) for r in response.context["vat_rows"]] == [
        (D("19"), D("103.10"), D("19.59")),
        (D("9"), D("20.50"), D("1.85")),
    ]
    assert "123.60" in page  # net
    assert "145.04" in page  # 123.60 + 19.59 + 1.85
    assert "RF18 5390 0754 7034" in page
    assert "Issued" in page
    assert supply_point.code in page


def test_it_shows_the_advances_deducted_and_a_refund(
    client_for: ClientFor,
    alice: User,
    customer: Customer,
    series: dict[str, InvoiceSeries],
) -> None:
    settlement = Invoice.objects.create(
        kind=InvoiceKind.SETTLEMENT,
        series=series[SeriesKind.INVOICE],
        number=7,
        document_number="FV-2026-000007",
        customer=customer,
        issue_date=date(2026, 3, 1),
        due_date=date(2026, 3, 15),
        status=InvoiceStatus.ISSUED,
        currency="RON",
        net_total=D("100.00"),
        vat_total=D("19.00"),
        gross_total=D("119.00"),
        prepaid_amount=D("160.00"),
        amount_due=D("-41.00"),
    )

    response = client_for(alice).get(reverse("billing:invoice", args=[settlement.public_id]))

    page = response.content.decode()
    assert "Advances deducted" in page and "160.00" in page
    assert "To be refunded to you" in page and "41.00" in page


def test_it_downloads_the_stored_pdf_named_after_the_document(
    client_for: ClientFor, viola: User, alices_invoice: Invoice
) -> None:
    client = client_for(viola)
    detail = client.get(reverse("billing:invoice", args=[alices_invoice.public_id]))
    pdf_url = reverse("billing:invoice-pdf", args=[alices_invoice.public_id])
    assert pdf_url in detail.content.decode()

    response = client.get(pdf_url)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="FV-2026-000001.pdf"'
    assert response.content == b"%PDF-1.7 alice"


def test_it_says_the_pdf_is_not_ready_and_answers_404_for_it(
    client_for: ClientFor, alice: User, customer: Customer, make_draft: MakeDraft
) -> None:
    invoice = issue(customer, make_draft, day=date(2026, 3, 1))
    client = client_for(alice)
    pdf_url = reverse("billing:invoice-pdf", args=[invoice.public_id])

    detail = client.get(reverse("billing:invoice", args=[invoice.public_id]))

    assert "The PDF of this document is being prepared" in detail.content.decode()
    assert pdf_url not in detail.content.decode()
    assert client.get(pdf_url).status_code == 404


def test_it_answers_404_when_the_stored_file_is_missing(
    client_for: ClientFor, alice: User, alices_invoice: Invoice
) -> None:
    Path(alices_invoice.pdf.path).unlink()

    response = client_for(alice).get(
        reverse("billing:invoice-pdf", args=[alices_invoice.public_id])
    )

    assert response.status_code == 404


def test_it_links_a_cancelled_invoice_and_its_credit_note(
    client_for: ClientFor,
    alice: User,
    customer: Customer,
    make_draft: MakeDraft,
    series: dict[str, InvoiceSeries],
) -> None:
    invoice = issue(customer, make_draft, day=date(2026, 3, 1))
    credit = services.cancel_by_credit_note(invoice=invoice, reason="Wrong reading", by=None)
    client = client_for(alice)

    original_page = client.get(reverse("billing:invoice", args=[invoice.public_id]))
    credit_page = client.get(reverse("billing:invoice", args=[credit.public_id]))

    assert credit.document_number in original_page.content.decode()
    assert "Cancelled" in original_page.content.decode()
    assert invoice.document_number in credit_page.content.decode()


# --- Advances ---------------------------------------------------------------------------------


def test_it_shows_the_schedule_with_paid_overdue_requested_and_upcoming_instalments(
    client_for: ClientFor,
    bob: User,
    customer: Customer,
    supply_point: SupplyPoint,
    series: dict[str, InvoiceSeries],
    django_assert_num_queries: NumQueries,
) -> None:
    schedule = services.create_advance_schedule(
        customer=customer,
        supply_point=supply_point,
        frequency=Frequency.MONTHLY,
        amount=D("80.00"),
        currency="RON",
        first_due_date=date(2026, 1, 10),
        count=4,
        created_by=None,
    )
    first, second, third, fourth = schedule.instalments.order_by("sequence")
    AdvanceInstalment.objects.filter(pk=first.pk).update(paid_amount=D("80.00"))
    AdvanceInstalment.objects.filter(pk=second.pk).update(paid_amount=D("30.00"))
    request = services.request_advance(instalment=fourth, issued_by=None)
    client = client_for(bob)
    client.get(reverse("portal:home"))

    # the 7 of every portal page + the schedules with supply points + their instalments
    # with the payment requests
    with django_assert_num_queries(BASE_QUERIES + 2):
        response = client.get(reverse("billing:advances"))

    ((shown_schedule, rows),) = response.context["active"]
    assert shown_schedule == schedule
    assert [row.state for row in rows] == ["paid", "partly_paid", "overdue", "requested"]
    assert third.due_date == date(2026, 3, 10)
    page = response.content.decode()
    assert request.document_number in page
    assert "80.00" in page and supply_point.code in page


def test_it_lists_replaced_schedules_apart(
    client_for: ClientFor, alice: User, customer: Customer, supply_point: SupplyPoint
) -> None:
    for amount in ("60.00", "90.00"):
        services.create_advance_schedule(
            customer=customer,
            supply_point=supply_point,
            frequency=Frequency.QUARTERLY,
            amount=D(amount),
            currency="RON",
            first_due_date=date(2026, 4, 1),
            count=2,
            created_by=None,
        )

    response = client_for(alice).get(reverse("billing:advances"))

    assert [s.amount for s, _ in response.context["active"]] == [D("90.00")]
    assert [s.amount for s in response.context["earlier"]] == [D("60.00")]
    assert "Earlier schedules" in response.content.decode()


# --- Balance due --------------------------------------------------------------------------------


def test_it_adds_up_the_open_documents_only(
    client_for: ClientFor,
    alice: User,
    customer: Customer,
    make_draft: MakeDraft,
    django_assert_num_queries: NumQueries,
) -> None:
    issue(customer, make_draft, day=date(2026, 1, 5))  # 119.00, overdue
    issue(
        customer,
        make_draft,
        day=date(2026, 3, 1),
        lines=(("50.00", "19"),),
        status=InvoiceStatus.PARTLY_PAID,
    )  # 59.50, counted in full until the ledger
    issue(customer, make_draft, day=date(2026, 2, 1), status=InvoiceStatus.PAID)
    cancelled = issue(customer, make_draft, day=date(2026, 2, 2))
    services.cancel_by_credit_note(invoice=cancelled, reason="Duplicate", by=None)
    make_draft(customer, [("999.00", "19")])
    client = client_for(alice)
    client.get(reverse("portal:home"))

    # the 7 of every portal page + the open documents with their supply points
    with django_assert_num_queries(BASE_QUERIES + 1):
        response = client.get(reverse("billing:balance"))

    balance = response.context["balance"]
    assert balance.totals == [("EUR", D("178.50"))]
    assert [d.document_number for d in balance.documents] == ["FV-2026-000001", "FV-2026-000002"]
    page = response.content.decode()
    assert "178.50" in page and "Overdue" in page
    assert cancelled.document_number not in page


def test_it_says_when_nothing_is_due(client_for: ClientFor, alice: User) -> None:
    response = client_for(alice).get(reverse("billing:balance"))

    assert "You have nothing to pay" in response.content.decode()


def test_it_shows_the_balance_and_next_advance_on_the_dashboard(
    client_for: ClientFor,
    alice: User,
    customer: Customer,
    make_draft: MakeDraft,
    supply_point: SupplyPoint,
) -> None:
    issue(customer, make_draft, day=date(2026, 3, 1))
    schedule = services.create_advance_schedule(
        customer=customer,
        supply_point=supply_point,
        frequency=Frequency.MONTHLY,
        amount=D("75.00"),
        currency="RON",
        first_due_date=date(2026, 3, 10),
        count=3,
        created_by=None,
    )
    first = schedule.instalments.get(sequence=1)
    AdvanceInstalment.objects.filter(pk=first.pk).update(paid_amount=D("75.00"))

    response = client_for(alice).get(reverse("portal:home"))

    (card,) = [
        c
        for c in response.context["dashboard_cards"]
        if c["template"] == "billing/_dashboard_card.html"
    ]
    assert card["data"]["next_instalment"].sequence == 2
    page = response.content.decode()
    assert "Balance due" in page and "119.00" in page
    assert "Next advance payment" in page
    assert "75.00" in page and supply_point.code in page
    assert reverse("billing:balance") in page
    assert reverse("billing:invoice-list") in page


# --- Price lists ----------------------------------------------------------------------------------


@pytest.fixture
def new_prices(price_list: PriceList) -> PriceListVersion:
    """A published version from 2026-05-01 and an unpublished one after it."""
    version = PriceListVersion.objects.create(price_list=price_list, valid_from=date(2026, 5, 1))
    PriceComponent.objects.create(
        version=version,
        position=1,
        code="energy",
        name="Energy",
        kind=ComponentKind.PER_UNIT,
        unit="kWh",
        unit_price=D("0.95"),
    )
    version.published_at = timezone.now()
    version.save()
    draft = PriceListVersion.objects.create(price_list=price_list, valid_from=date(2026, 9, 1))
    PriceComponent.objects.create(
        version=draft,
        position=1,
        code="energy",
        name="Secret energy",
        kind=ComponentKind.PER_UNIT,
        unit="kWh",
        unit_price=D("1.23"),
    )
    return version


def test_it_lists_the_public_price_lists_to_any_customer(
    client_for: ClientFor,
    charlie: User,
    price_list: PriceList,
    new_prices: PriceListVersion,
    django_assert_num_queries: NumQueries,
) -> None:
    PriceList.objects.create(
        code="VIP", name="Negotiated", service=Service.ELECTRICITY, is_public=False
    )
    client = client_for(charlie)
    client.get(reverse("portal:home"))

    # the 7 of every portal page + the public lists + their published versions
    with django_assert_num_queries(BASE_QUERIES + 2):
        response = client.get(reverse("billing-prices:price-lists"))

    page = response.content.decode()
    assert "Residential electricity" in page and "Negotiated" not in page
    (shown,) = response.context["price_lists"]
    assert shown.current.version.valid_from == date(2025, 1, 1)
    assert shown.upcoming.version == new_prices


def test_it_shows_the_prices_in_force_with_tiers_and_the_next_version(
    client_for: ClientFor, charlie: User, price_list: PriceList, new_prices: PriceListVersion
) -> None:
    response = client_for(charlie).get(reverse("billing-prices:price-list", args=["RES-E"]))

    page = response.content.decode()
    assert response.status_code == 200
    shown = response.context["shown"]
    assert [row.component.code for row in shown.current.rows] == [
        "energy",
        "standing",
        "reconnection",
    ]
    assert [
        (t.from_quantity, t.to_quantity, t.unit_price) for t in shown.current.rows[0].tiers
    ] == [("0", "100", "0.80"), ("100", "", "0.90")]
    assert shown.current.ends_on == date(2026, 4, 30)
    assert "0.80" in page and "0.90" in page and "12.00" in page and "50.00" in page
    assert "0.95" in page  # the next version, already published
    assert "Secret energy" not in page and "1.23" not in page


def test_it_answers_404_for_an_unknown_or_private_price_list(
    client_for: ClientFor, alice: User, price_list: PriceList
) -> None:
    PriceList.objects.create(
        code="VIP", name="Negotiated", service=Service.ELECTRICITY, is_public=False
    )
    client = client_for(alice)
    for code in ["VIP", "NOPE"]:
        for name in ["billing-prices:price-list", "billing-prices:price-list-pdf"]:
            assert client.get(reverse(name, args=[code])).status_code == 404, (code, name)


def test_it_downloads_the_price_list_as_pdf(
    client_for: ClientFor, alice: User, price_list: PriceList
) -> None:
    response = client_for(alice).get(reverse("billing-prices:price-list-pdf", args=["RES-E"]))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == (
        'attachment; filename="price-list-RES-E-2025-01-01.pdf"'
    )
    assert response.content.startswith(b"%PDF-")


def test_it_formats_tiers_that_start_above_zero_and_volume_tiers(
    client_for: ClientFor, alice: User, vat: None
) -> None:
    water = PriceList.objects.create(code="W1", name="Water", service=Service.WATER, currency="EUR")
    version = PriceListVersion.objects.create(price_list=water, valid_from=date(2026, 1, 1))
    component = PriceComponent.objects.create(
        version=version,
        position=1,
        code="water",
        name="Water",
        kind=ComponentKind.PER_UNIT,
        unit="m3",
        unit_price=D("2.125000"),
        tier_mode=TierMode.VOLUME,
    )
    PriceTier.objects.create(component=component, from_quantity=D("0"), unit_price=D("2.5"))
    PriceTier.objects.create(component=component, from_quantity=D("10.5"), unit_price=D("2"))
    version.published_at = timezone.now()
    version.save()

    response = client_for(alice).get(reverse("billing-prices:price-list", args=["W1"]))

    (row,) = response.context["shown"].current.rows
    assert row.unit_price == "2.125"
    assert [(t.from_quantity, t.to_quantity, t.unit_price) for t in row.tiers] == [
        ("0", "10.5", "2.50"),
        ("10.5", "", "2.00"),
    ]
    assert response.context["shown"].current.ends_on is None


# --- Office customer page ----------------------------------------------------------------------


@pytest.fixture
def clerk(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.CUSTOMER_SERVICE)


def test_it_lists_the_customers_invoices_on_the_office_customer_page(
    client_for: ClientFor,
    clerk: User,
    customer: Customer,
    make_draft: MakeDraft,
    alices_invoice: Invoice,
) -> None:
    make_draft(customer, [("5.00", "19")])

    response = client_for(clerk).get(reverse("office:customer", args=[customer.public_id]))

    page = response.content.decode()
    assert alices_invoice.document_number in page
    assert "Balance due" in page
    (section,) = [
        s
        for s in response.context["extra_sections"]
        if s["template"] == "billing/_office_customer_invoices.html"
    ]
    assert [d.status for d in section["data"]["documents"]] == ["draft", "issued"]
    assert section["data"]["balance"].totals == [("EUR", D("119.00"))]


def test_it_hides_the_invoices_section_from_staff_without_the_permission(
    client_for: ClientFor,
    make_staff: Callable[[Role], User],
    customer: Customer,
    alices_invoice: Invoice,
) -> None:
    reader = make_staff(Role.METER_READING)  # sees customers, not their invoices

    response = client_for(reader).get(reverse("office:customer", args=[customer.public_id]))

    assert response.status_code == 200
    templates = [s["template"] for s in response.context["extra_sections"]]
    assert "billing/_office_customer_invoices.html" not in templates
    assert "Balance due" not in response.content.decode()


def test_it_shows_the_office_section_in_the_same_queries_for_few_and_many(
    client_for: ClientFor, clerk: User, customer: Customer, series: dict[str, InvoiceSeries]
) -> None:
    ContentType.objects.get_for_model(Customer)
    client = client_for(clerk)
    url = reverse("office:customer", args=[customer.public_id])
    bulk_issue(customer, series[SeriesKind.INVOICE], 2)
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    bulk_issue(customer, series[SeriesKind.INVOICE], 40, start=3)
    with CaptureQueriesContext(connection) as many:
        response = client.get(url)

    assert len(many.captured_queries) == len(few.captured_queries)
    assert "Only the latest 20 documents are shown." in response.content.decode()
