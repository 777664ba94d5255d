"""The customer ledger as staff and customers read it: balance, statement, statement PDF.

Every document and every movement of money is an entry; the balance is
their sum and a statement shows any period with its opening and running
balance.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pypdf import PdfReader
from time_machine import TimeMachineFixture

from billing import services as billing
from portal.models import Customer, User
from portal.roles import Role
from receivables import ledger, payments
from receivables.models import EntryKind, LedgerEntry
from receivables.views import statement_pdf_response
from tests.receivables.conftest import Issue

D = Decimal
pytestmark = pytest.mark.django_db
TODAY = date(2026, 11, 20)


@pytest.fixture(autouse=True)
def frozen(time_machine: TimeMachineFixture) -> None:
    time_machine.move_to(datetime(2026, 11, 20, 10, 0, tzinfo=UTC), tick=False)


@pytest.fixture
def clerk(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.COLLECTIONS)


def test_it_states_a_period_with_opening_running_and_closing_balance(
    customer: Customer, issue: Issue, clerk: User
) -> None:
    issue(customer, "121.00", issued=date(2026, 9, 1), due=date(2026, 9, 15))
    payments.record_manual_payment(
        customer=customer, amount=D("121.00"), booking_date=date(2026, 9, 10), by=clerk
    )
    second = issue(customer, "60.50", issued=date(2026, 10, 1), due=date(2026, 10, 15))
    payment = payments.record_manual_payment(
        customer=customer, amount=D("80.00"), booking_date=date(2026, 10, 20), by=clerk,
        reference="desk 7",
    ).payment
    payments.refund(payment=payment, amount=D("19.50"), by=clerk, note="transfer back")

    stmt = ledger.statement(customer, date(2026, 10, 1), TODAY)

    assert stmt.opening == D("0.00")
    assert [(line.entry.kind, line.entry.amount, line.running) for line in stmt.lines] == [
        (EntryKind.INVOICE, D("60.50"), D("60.50")),
        (EntryKind.PAYMENT, D("-80.00"), D("-19.50")),
        (EntryKind.REFUND, D("19.50"), D("0.00")),
    ]
    assert stmt.lines[0].entry.invoice_id == second.pk
    assert (stmt.debits, stmt.credits, stmt.closing) == (D("80.00"), D("80.00"), D("0.00"))
    assert ledger.statement(customer, date(2026, 9, 1), date(2026, 9, 30)).closing == D("0.00")
    assert ledger.statement(customer, date(2026, 9, 1), date(2026, 9, 5)).closing == D("121.00")


def test_it_sums_the_balance_per_currency(
    customer: Customer, issue: Issue, clerk: User
) -> None:
    issue(customer, "121.00")
    payments.record_manual_payment(
        customer=customer, amount=D("30.00"), booking_date=TODAY, by=clerk, currency="RON"
    )

    assert payments.balance_by_currency(customer) == [("EUR", D("121.00")), ("RON", D("-30.00"))]
    assert payments.credit_of(customer) == [("RON", D("30.00"))]


def test_it_enters_a_credit_note_that_cancels_an_invoice(
    customer: Customer, issue: Issue
) -> None:
    invoice = issue(customer, "121.00")

    billing.cancel_by_credit_note(invoice=invoice, reason="Wrong meter", by=None)

    kinds = list(
        LedgerEntry.objects.filter(customer=customer).order_by("id").values_list("kind", "amount")
    )
    assert kinds == [(EntryKind.INVOICE, D("121.00")), (EntryKind.CREDIT_NOTE, D("-121.00"))]
    assert ledger.balance(customer) == D("0.00")
    assert not ledger.open_items(customer).exists()


def test_it_keeps_other_customers_out_of_a_statement(
    customer: Customer, other_customer: Customer, issue: Issue
) -> None:
    issue(other_customer, "999.00")
    issue(customer, "121.00")

    stmt = ledger.statement(customer, date(2026, 1, 1), TODAY)

    assert [line.entry.amount for line in stmt.lines] == [D("121.00")]


def test_it_prints_the_statement_as_a_pdf(customer: Customer, issue: Issue, clerk: User) -> None:
    invoice = issue(customer, "121.00")
    payments.record_manual_payment(
        customer=customer, amount=D("21.00"), booking_date=TODAY, by=clerk
    )

    response = statement_pdf_response(ledger.statement(customer, date(2026, 1, 1), TODAY))

    assert response["Content-Type"] == "application/pdf"
    assert "statement-C0100001-2026-01-01-2026-11-20.pdf" in response["Content-Disposition"]
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    assert "Statement of account" in text
    assert invoice.document_number in text
    assert "Ana Popescu" in text
    assert "100.00" in text  # the closing balance
