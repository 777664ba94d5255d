"""Customer pages of receivables: /balance/ and /balance/statement/ (HTML and PDF),
and the dashboard card."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from time_machine import TimeMachineFixture

from billing.models import Invoice, InvoiceSeries, InvoiceStatus, SeriesKind
from portal.models import Customer, User
from portal.roles import Role
from receivables import payments
from receivables.models import Channel, EntryKind, LedgerEntry, Payment
from tests.receivables.conftest import Issue

D = Decimal
pytestmark = pytest.mark.django_db
ClientFor = Callable[[User], Client]
NumQueries = Callable[..., Any]
TODAY = date(2026, 11, 20)
# Every portal page: session, user, staff groups, membership with customer, and the
# session save (savepoint, update, release); see tests/portal/test_views.py.
BASE_QUERIES = 7
URLS = ["receivables:balance", "receivables:statement", "receivables:statement-pdf"]


@pytest.fixture(autouse=True)
def frozen(time_machine: TimeMachineFixture) -> None:
    time_machine.move_to(datetime(2026, 11, 20, 10, 0, tzinfo=UTC), tick=False)


@pytest.fixture
def clerk(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.COLLECTIONS)


@pytest.fixture
def account(customer: Customer, issue: Issue, clerk: User) -> dict[str, Any]:
    """An overdue invoice paid in part, a later one open, a payment with credit left."""
    overdue = issue(customer, "121.00", issued=date(2026, 10, 1), due=date(2026, 10, 15))
    upcoming = issue(customer, "60.50", issued=date(2026, 11, 10), due=date(2026, 11, 30))
    paid = payments.record_manual_payment(
        customer=customer, amount=D("21.00"), booking_date=date(2026, 10, 20), by=clerk,
        reference="DESK-21",
    ).payment
    return {"overdue": overdue, "upcoming": upcoming, "payment": paid}


def fill(customer: Customer, series: InvoiceSeries, count: int) -> None:
    """``count`` open invoices, ``count`` payments with credit, their ledger entries."""
    invoices = Invoice.objects.bulk_create(
        Invoice(
            series=series, number=1000 + n, document_number=f"FV-BULK-{n:06d}",
            customer=customer, issue_date=TODAY - timedelta(days=n % 300),
            due_date=TODAY - timedelta(days=n % 300) + timedelta(days=14),
            status=InvoiceStatus.ISSUED, currency="EUR", net_total=D("100.00"),
            vat_total=D("21.00"), gross_total=D("121.00"), amount_due=D("121.00"),
        )
        for n in range(count)
    )
    paid = Payment.objects.bulk_create(
        Payment(
            channel=Channel.BANK, source="bank", txn_id=f"BULK{n}", customer=customer,
            booking_date=TODAY - timedelta(days=n % 300), amount=D("5.00"), currency="EUR",
            unallocated=D("5.00"),
        )
        for n in range(count)
    )
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(
                customer=customer, kind=EntryKind.INVOICE, entry_date=i.issue_date or TODAY,
                amount=i.amount_due, currency="EUR", invoice=i, description=i.document_number,
            )
            for i in invoices
        ]
        + [
            LedgerEntry(
                customer=customer, kind=EntryKind.PAYMENT, entry_date=p.booking_date,
                amount=-p.amount, currency="EUR", payment=p,
            )
            for p in paid
        ]
    )


# --- Every URL: outsiders see nothing of another customer, anonymous visitors log in -----


def test_it_shows_an_outsider_nothing_of_another_customers_account(
    client_for: ClientFor, charlie: User, account: dict[str, Any]
) -> None:
    client = client_for(charlie)
    for name in URLS[:2]:
        response = client.get(reverse(name), {"from": "2026-01-01"})
        page = response.content.decode()
        assert response.status_code == 200, name
        assert account["overdue"].document_number not in page, name
        assert "DESK-21" not in page, name
    assert client.get(reverse("receivables:balance")).context["account"].items == []
    response = client.get(reverse("receivables:statement-pdf"), {"from": "2026-01-01"})
    assert response.status_code == 200
    assert account["overdue"].document_number.encode() not in response.content


def test_it_sends_anonymous_visitors_to_the_login_page(db: None) -> None:
    for name in URLS:
        response = Client().get(reverse(name))
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("account_login")), name


def test_it_lets_every_role_read_the_account(
    client_for: ClientFor, alice: User, bob: User, viola: User, account: dict[str, Any]
) -> None:
    for user in (alice, bob, viola):
        response = client_for(user).get(reverse("receivables:balance"))
        assert response.status_code == 200, user.email
        assert account["overdue"].document_number in response.content.decode()


# --- Balance ------------------------------------------------------------------------------------


def test_it_shows_the_balance_open_items_payments_and_credit(
    client_for: ClientFor, alice: User, customer: Customer, account: dict[str, Any], clerk: User
) -> None:
    payments.record_manual_payment(
        customer=customer, amount=D("200.00"), booking_date=TODAY, by=clerk, currency="EUR",
        invoice=account["upcoming"],
    )

    response = client_for(alice).get(reverse("receivables:balance"))

    shown = response.context["account"]
    # 121 + 60.50 - 21 - 200: the second payment paid both, 39.50 is credit.
    assert [(row.currency, row.amount, row.state) for row in shown.balances] == [
        ("EUR", D("-39.50"), "credit")
    ]
    assert shown.items == []
    assert shown.credit == [("EUR", D("39.50"))]
    page = response.content.decode()
    assert "Credit" in page and "39.50" in page
    assert "DESK-21" in page
    assert "Nothing is open" in page


def test_it_marks_overdue_items_with_what_is_still_open(
    client_for: ClientFor, alice: User, account: dict[str, Any]
) -> None:
    response = client_for(alice).get(reverse("receivables:balance"))

    items = response.context["account"].items
    assert [(i.document_number, i.open_amount) for i in items] == [
        (account["overdue"].document_number, D("100.00")),
        (account["upcoming"].document_number, D("60.50")),
    ]
    assert response.context["account"].overdue == [items[0]]
    page = response.content.decode()
    assert page.count("badge-overdue") == 1
    assert "To pay" in page and "160.50" in page


@pytest.mark.parametrize("count", [3, 300])
def test_it_shows_the_balance_in_constant_queries(
    client_for: ClientFor, alice: User, customer: Customer, series: dict[str, InvoiceSeries],
    django_assert_num_queries: NumQueries, count: int,
) -> None:
    fill(customer, series[SeriesKind.INVOICE], count)
    client = client_for(alice)
    client.get(reverse("portal:home"))  # the first page stores the current customer

    # the 7 of every portal page
    # + the ledger's sum per currency
    # + the open items with what is paid on them and their supply points
    # + the latest payments (LIMIT 10)
    # + the credit per currency
    with django_assert_num_queries(BASE_QUERIES + 4):
        response = client.get(reverse("receivables:balance"))

    assert len(response.context["account"].items) == count
    assert len(response.context["account"].payments) == min(count, 10)


# --- Statement -----------------------------------------------------------------------------------


def test_it_shows_this_years_statement_by_default(
    client_for: ClientFor, alice: User, account: dict[str, Any]
) -> None:
    response = client_for(alice).get(reverse("receivables:statement"))

    stmt = response.context["statement"]
    assert (stmt.start, stmt.end) == (date(2026, 1, 1), TODAY)
    assert [line.running for line in stmt.lines] == [D("121.00"), D("100.00"), D("160.50")]
    page = response.content.decode()
    assert account["overdue"].document_number in page
    assert "Opening balance" in page and "Closing balance" in page
    assert f"{reverse('receivables:statement-pdf')}?from=2026-01-01&amp;to=2026-11-20" in page


def test_it_states_any_period_with_its_opening_balance(
    client_for: ClientFor, alice: User, account: dict[str, Any]
) -> None:
    response = client_for(alice).get(
        reverse("receivables:statement"), {"from": "2026-11-01", "to": "2026-11-30"}
    )

    stmt = response.context["statement"]
    assert stmt.opening == D("100.00")
    assert [line.entry.invoice_id for line in stmt.lines] == [account["upcoming"].pk]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"from": "2026-13-45"}, "from", "Enter a valid date."),
        ({"from": "yesterday", "to": "2026-01-01"}, "from", "Enter a valid date."),
        ({"from": "2026-05-01", "to": "2026-04-01"}, "to", "before its start"),
        ({"from": "2020-01-01", "to": "2026-11-20"}, "from", "at most 5 years"),
    ],
)
def test_it_explains_a_bad_period_next_to_the_field(
    client_for: ClientFor, alice: User, account: dict[str, Any],
    query: dict[str, str], field: str, message: str,
) -> None:
    client = client_for(alice)

    response = client.get(reverse("receivables:statement"), query)

    assert response.status_code == 200
    assert response.context["statement"] is None
    assert any(message in error for error in response.context["form"].errors[field])
    # What was typed stays in the field.
    assert f'value="{query[field]}"' in response.content.decode()
    pdf = client.get(reverse("receivables:statement-pdf"), query)
    assert pdf.status_code == 400
    assert pdf["Content-Type"].startswith("text/html")


def test_it_allows_exactly_five_years(
    client_for: ClientFor, alice: User, account: dict[str, Any]
) -> None:
    response = client_for(alice).get(
        reverse("receivables:statement"), {"from": "2021-11-20", "to": "2026-11-20"}
    )

    assert response.context["statement"].start == date(2021, 11, 20)


def test_it_answers_htmx_with_the_statement_fragment(
    client_for: ClientFor, alice: User, account: dict[str, Any]
) -> None:
    response = client_for(alice).get(
        reverse("receivables:statement"), {"from": "2026-11-01"}, HTTP_HX_REQUEST="true"
    )

    page = response.content.decode()
    assert page.lstrip().startswith('<div id="statement-results">')
    assert "<html" not in page
    assert account["upcoming"].document_number in page


def test_it_downloads_the_statement_as_a_pdf(
    client_for: ClientFor, alice: User, account: dict[str, Any]
) -> None:
    response = client_for(alice).get(
        reverse("receivables:statement-pdf"), {"from": "2026-10-01", "to": "2026-10-31"}
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert "statement-C0100001-2026-10-01-2026-10-31.pdf" in response["Content-Disposition"]


@pytest.mark.parametrize("count", [3, 300])
def test_it_states_the_account_in_constant_queries(
    client_for: ClientFor, alice: User, customer: Customer, series: dict[str, InvoiceSeries],
    django_assert_num_queries: NumQueries, count: int,
) -> None:
    fill(customer, series[SeriesKind.INVOICE], count)
    client = client_for(alice)
    client.get(reverse("portal:home"))

    # the 7 of every portal page
    # + the opening balance (sum of the entries before the period)
    # + the entries of the period with their documents and payments
    with django_assert_num_queries(BASE_QUERIES + 2):
        response = client.get(reverse("receivables:statement"), {"from": "2025-11-20"})

    assert len(response.context["statement"].lines) == 2 * count


# --- Dashboard card -----------------------------------------------------------------------------


def test_it_shows_the_balance_on_the_dashboard(
    client_for: ClientFor, alice: User, account: dict[str, Any]
) -> None:
    response = client_for(alice).get(reverse("portal:home"))

    page = response.content.decode()
    assert "Account balance" in page
    assert "160.50" in page
    assert "1 overdue document" in page
    assert reverse("receivables:balance") in page
