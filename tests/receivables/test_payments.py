"""Payments taken by hand and what staff do with them: receivables.payments.

Manual entry and courier cash (allocation to the named document, oldest
first, credit), credit used by the next document issued, refunds,
reversals, the suspense queue (suggestions, matching, learned payer accounts).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from time_machine import TimeMachineFixture

from billing.models import Invoice, InvoiceStatus
from meters.models import Service, SupplyPoint
from portal.models import AuditEvent, Customer, User
from portal.roles import Role
from portal.services import ServiceError
from receivables import ledger, payments
from receivables.models import (
    Allocation,
    Channel,
    EntryKind,
    LedgerEntry,
    MatchMethod,
    PayerAccount,
    Payment,
    PaymentKind,
    Suggestion,
)
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


@pytest.fixture
def courier(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.COURIER)


@pytest.fixture
def point(customer: Customer) -> SupplyPoint:
    return SupplyPoint.objects.create(
        customer=customer, code="RO005E000000000001", service=Service.ELECTRICITY,
        street="Str. Lalelelor 5", postal_code="010101", city="București",
    )


def open_amounts(customer: Customer) -> dict[str, Decimal]:
    items = ledger.open_items(customer)
    return {i.document_number: i.open_amount for i in items}  # type: ignore[attr-defined]


def status(invoice: Invoice) -> str:
    invoice.refresh_from_db()
    return invoice.status


def unmatched(amount: str, *, payer: str = "", account: str = "", day: date = TODAY) -> Payment:
    """A bank payment nobody could match (as the import leaves it)."""
    return Payment.objects.create(
        channel=Channel.BANK, source="bank", txn_id=uuid.uuid4().hex, booking_date=day,
        amount=D(amount), currency="EUR", unallocated=D(amount), payer_name=payer,
        payer_account=account,
    )


# --- Manual payments ---------------------------------------------------------------------


def test_it_pays_the_oldest_documents_first_and_keeps_the_rest_as_credit(
    customer: Customer, issue: Issue, clerk: User
) -> None:
    later = issue(customer, "121.00", due=date(2026, 11, 15))
    older = issue(customer, "60.50", due=date(2026, 10, 15))

    posted = payments.record_manual_payment(
        customer=customer, amount=D("200.00"), booking_date=TODAY, by=clerk, reference="desk"
    )

    assert posted.created
    assert [a.invoice_id for a in posted.allocations] == [older.pk, later.pk]
    assert status(older) == status(later) == InvoiceStatus.PAID
    assert posted.payment.unallocated == D("18.50")
    assert payments.credit_of(customer) == [("EUR", D("18.50"))]
    assert ledger.balance(customer) == D("-18.50")
    assert posted.payment.channel == Channel.MANUAL
    assert posted.payment.source == "manual"
    assert AuditEvent.objects.filter(action="receivables.manual_payment", actor=clerk).exists()


def test_it_pays_the_named_document_first(
    customer: Customer, issue: Issue, clerk: User
) -> None:
    older = issue(customer, "60.50", due=date(2026, 10, 15))
    named = issue(customer, "121.00", due=date(2026, 11, 15))

    payments.record_manual_payment(
        customer=customer, amount=D("150.00"), booking_date=TODAY, by=clerk, invoice=named
    )

    assert status(named) == InvoiceStatus.PAID
    assert status(older) == InvoiceStatus.PARTLY_PAID
    assert open_amounts(customer) == {older.document_number: D("31.50")}


def test_it_keeps_a_partial_payment_open(customer: Customer, issue: Issue, clerk: User) -> None:
    invoice = issue(customer, "121.00")

    payments.record_manual_payment(
        customer=customer, amount=D("21.00"), booking_date=TODAY, by=clerk
    )

    assert status(invoice) == InvoiceStatus.PARTLY_PAID
    assert open_amounts(customer) == {invoice.document_number: D("100.00")}
    assert ledger.balance(customer) == D("100.00")


def test_it_posts_the_same_form_once(customer: Customer, issue: Issue, clerk: User) -> None:
    issue(customer, "121.00")
    entry = uuid.uuid4().hex

    first = payments.record_manual_payment(
        customer=customer, amount=D("50.00"), booking_date=TODAY, by=clerk, entry_id=entry
    )
    again = payments.record_manual_payment(
        customer=customer, amount=D("50.00"), booking_date=TODAY, by=clerk, entry_id=entry
    )

    assert first.created and not again.created
    assert again.payment.pk == first.payment.pk
    assert Payment.objects.count() == 1
    assert ledger.balance(customer) == D("71.00")


def test_it_uses_a_receipt_number_once(
    customer: Customer, other_customer: Customer, issue: Issue, clerk: User
) -> None:
    issue(customer, "121.00")
    issue(other_customer, "121.00")
    payments.record_manual_payment(
        customer=customer, amount=D("50.00"), booking_date=TODAY, by=clerk,
        receipt_number="R-0001",
    )

    with pytest.raises(payments.DuplicateReceipt, match="R-0001"):
        payments.record_manual_payment(
            customer=other_customer, amount=D("50.00"), booking_date=TODAY, by=clerk,
            receipt_number="R-0001",
        )
    assert Payment.objects.count() == 1


@pytest.mark.parametrize(
    ("amount", "message"),
    [("0.00", "more than zero"), ("-5.00", "more than zero"), ("1.234", "at most 2 decimals")],
)
def test_it_refuses_impossible_amounts(
    customer: Customer, issue: Issue, clerk: User, amount: str, message: str
) -> None:
    issue(customer, "121.00")

    with pytest.raises(ServiceError, match=message):
        payments.record_manual_payment(
            customer=customer, amount=D(amount), booking_date=TODAY, by=clerk
        )
    assert not Payment.objects.exists()


def test_it_refuses_a_payment_dated_in_the_future(
    customer: Customer, issue: Issue, clerk: User
) -> None:
    issue(customer, "121.00")

    with pytest.raises(ServiceError, match="future"):
        payments.record_manual_payment(
            customer=customer, amount=D("10.00"), booking_date=date(2026, 11, 21), by=clerk
        )


def test_it_refuses_another_customers_document(
    customer: Customer, other_customer: Customer, issue: Issue, clerk: User
) -> None:
    theirs = issue(other_customer, "121.00")

    with pytest.raises(ServiceError, match="another customer"):
        payments.record_manual_payment(
            customer=customer, amount=D("121.00"), booking_date=TODAY, by=clerk, invoice=theirs
        )
    assert status(theirs) == InvoiceStatus.ISSUED


def test_it_asks_the_currency_of_a_customer_without_documents(
    customer: Customer, clerk: User, series: object
) -> None:
    with pytest.raises(ServiceError, match="currency"):
        payments.record_manual_payment(
            customer=customer, amount=D("10.00"), booking_date=TODAY, by=clerk
        )

    posted = payments.record_manual_payment(
        customer=customer, amount=D("10.00"), booking_date=TODAY, by=clerk, currency="RON"
    )
    assert posted.payment.currency == "RON"
    assert payments.credit_of(customer) == [("RON", D("10.00"))]


# --- Credit used by the next document ---------------------------------------------------------


def test_it_pays_a_new_document_from_credit_when_it_is_issued(
    customer: Customer, issue: Issue, clerk: User
) -> None:
    payments.record_manual_payment(
        customer=customer, amount=D("100.00"), booking_date=TODAY, by=clerk, currency="EUR"
    )

    invoice = issue(customer, "121.00")

    assert status(invoice) == InvoiceStatus.PARTLY_PAID
    assert open_amounts(customer) == {invoice.document_number: D("21.00")}
    assert payments.credit_of(customer) == []
    assert Allocation.objects.get(invoice=invoice).method == MatchMethod.CUSTOMER
    assert ledger.balance(customer) == D("21.00")


def test_it_applies_credit_to_open_items_on_request(
    customer: Customer, issue: Issue, clerk: User
) -> None:
    invoice = issue(customer, "121.00")
    # Credit that exists next to an open item (posted before this function existed).
    Payment.objects.create(
        channel=Channel.BANK, source="bank", txn_id="old", customer=customer,
        booking_date=TODAY, amount=D("200.00"), currency="EUR", unallocated=D("200.00"),
    )

    done = payments.apply_credit(customer=customer, by=clerk)

    assert [a.amount for a in done] == [D("121.00")]
    assert status(invoice) == InvoiceStatus.PAID
    assert payments.credit_of(customer) == [("EUR", D("79.00"))]


# --- Refunds ---------------------------------------------------------------------------------


def test_it_refunds_credit_with_a_ledger_entry_per_refund(
    customer: Customer, issue: Issue, clerk: User
) -> None:
    issue(customer, "121.00")
    payment = payments.record_manual_payment(
        customer=customer, amount=D("150.00"), booking_date=TODAY, by=clerk
    ).payment

    first = payments.refund(payment=payment, amount=D("20.00"), by=clerk, note="transfer 1")
    second = payments.refund(payment=payment, amount=D("9.00"), by=clerk)

    assert (first.kind, first.amount, first.cause) == (
        EntryKind.REFUND, D("20.00"), f"refund:{payment.pk}:1"
    )
    assert second.cause == f"refund:{payment.pk}:2"
    payment.refresh_from_db()
    assert payment.unallocated == D("0.00")
    assert ledger.balance(customer) == D("0.00")
    with pytest.raises(ServiceError, match="credit"):
        payments.refund(payment=payment, amount=D("0.01"), by=clerk)


def test_it_refunds_no_more_than_the_credit(customer: Customer, issue: Issue, clerk: User) -> None:
    issue(customer, "121.00")
    payment = payments.record_manual_payment(
        customer=customer, amount=D("130.00"), booking_date=TODAY, by=clerk
    ).payment

    with pytest.raises(ServiceError, match="Only 9.00 EUR"):
        payments.refund(payment=payment, amount=D("10.00"), by=clerk)
    assert not LedgerEntry.objects.filter(kind=EntryKind.REFUND).exists()


# --- Reversals --------------------------------------------------------------------------------


def test_it_reverses_a_payment_and_reopens_what_it_paid(
    customer: Customer, issue: Issue, clerk: User
) -> None:
    first = issue(customer, "60.50", due=date(2026, 10, 15))
    second = issue(customer, "121.00", due=date(2026, 11, 15))
    payment = payments.record_manual_payment(
        customer=customer, amount=D("200.00"), booking_date=TODAY, by=clerk
    ).payment

    reversal = payments.reverse_payment(payment=payment, reason="Bounced cheque", by=clerk)

    assert (reversal.kind, reversal.amount, reversal.source) == (
        PaymentKind.REVERSAL, D("-200.00"), "manual-reversal"
    )
    assert reversal.reverses_id == payment.pk
    assert sorted(a.amount for a in reversal.allocations.all()) == [D("-121.00"), D("-60.50")]
    assert status(first) == status(second) == InvoiceStatus.ISSUED
    payment.refresh_from_db()
    assert payment.unallocated == D("0.00")
    assert ledger.balance(customer) == D("181.50")
    assert LedgerEntry.objects.get(payment=reversal).kind == EntryKind.REVERSAL
    with pytest.raises(ServiceError, match="already reversed"):
        payments.reverse_payment(payment=payment, reason="again", by=clerk)
    assert AuditEvent.objects.filter(action="receivables.payment_reversed").count() == 1


def test_it_needs_a_reason_to_reverse(customer: Customer, issue: Issue, clerk: User) -> None:
    issue(customer, "121.00")
    payment = payments.record_manual_payment(
        customer=customer, amount=D("121.00"), booking_date=TODAY, by=clerk
    ).payment

    with pytest.raises(ServiceError, match="why"):
        payments.reverse_payment(payment=payment, reason="  ", by=clerk)
    assert not payment.reversals.exists()


def test_it_reverses_an_unmatched_payment_without_a_ledger_entry(clerk: User, db: None) -> None:
    payment = unmatched("42.00")

    reversal = payments.reverse_payment(payment=payment, reason="Not ours", by=clerk)

    assert reversal.customer_id is None
    assert not LedgerEntry.objects.exists()
    assert not payments.suspense_queue().exists()


# --- The suspense queue ------------------------------------------------------------------------


def test_it_suggests_documents_of_the_same_amount_due_near_the_payment(
    customer: Customer, other_customer: Customer, issue: Issue
) -> None:
    near = issue(customer, "121.00", due=date(2026, 11, 18))
    other = issue(other_customer, "121.00", due=date(2026, 11, 10))
    issue(customer, "121.00", due=date(2026, 9, 1))  # too long before
    issue(customer, "99.00", due=date(2026, 11, 18))  # another amount
    payment = unmatched("121.00", payer="POPESCU ANA")

    found = payments.compute_suggestions(payment=payment)

    assert [s.invoice_id for s in found] == [near.pk, other.pk]
    assert found[0].score > found[1].score
    assert "payer name" in found[0].reason
    # Computed again: replaced, not added.
    payments.compute_suggestions(payment=payment)
    assert Suggestion.objects.filter(payment=payment).count() == 2


def test_it_matches_a_payment_to_a_suggested_document_and_learns_the_account(
    customer: Customer, issue: Issue, clerk: User
) -> None:
    invoice = issue(customer, "121.00", due=date(2026, 11, 18))
    payment = unmatched("121.00", payer="Ana Popescu", account="RO12 BANK 0000 1111")
    payments.compute_suggestions(payment=payment)

    payments.match_to_invoice(payment=payment, invoice=invoice, by=clerk)

    payment.refresh_from_db()
    assert payment.customer_id == customer.pk
    assert payment.match_method == MatchMethod.MANUAL
    assert status(invoice) == InvoiceStatus.PAID
    assert ledger.balance(customer) == D("0.00")
    assert PayerAccount.objects.get(account="RO12BANK00001111").customer_id == customer.pk
    assert not Suggestion.objects.filter(payment=payment).exists()
    assert not payments.suspense_queue().exists()


def test_it_matches_a_payment_to_a_customer_oldest_first(
    customer: Customer, issue: Issue, clerk: User
) -> None:
    older = issue(customer, "60.50", due=date(2026, 10, 15))
    later = issue(customer, "121.00", due=date(2026, 11, 15))
    payment = unmatched("100.00")

    payments.match_to_customer(payment=payment, customer=customer, by=clerk)

    assert status(older) == InvoiceStatus.PAID
    assert status(later) == InvoiceStatus.PARTLY_PAID
    assert LedgerEntry.objects.get(payment=payment).amount == D("-100.00")
    assert ledger.balance(customer) == D("81.50")
    with pytest.raises(ServiceError):
        payments.match_to_customer(payment=payment, customer=customer, by=clerk)


def test_it_forgets_an_account_two_customers_pay_from(
    customer: Customer, other_customer: Customer, issue: Issue, clerk: User
) -> None:
    issue(customer, "121.00")
    PayerAccount.objects.create(account="RO12BANK00001111", customer=other_customer)
    payment = unmatched("121.00", account="RO12BANK00001111")

    payments.match_to_customer(payment=payment, customer=customer, by=clerk)

    assert not PayerAccount.objects.filter(account="RO12BANK00001111").exists()


def test_it_refuses_to_match_to_a_document_in_another_currency(
    customer: Customer, issue: Issue, clerk: User
) -> None:
    invoice = issue(customer, "121.00")
    payment = Payment.objects.create(
        channel=Channel.BANK, source="bank", txn_id="ron", booking_date=TODAY,
        amount=D("121.00"), currency="RON", unallocated=D("121.00"),
    )

    with pytest.raises(ServiceError, match="EUR"):
        payments.match_to_invoice(payment=payment, invoice=invoice, by=clerk)
    assert status(invoice) == InvoiceStatus.ISSUED


# --- Courier cash --------------------------------------------------------------------------------


def test_it_records_courier_cash_once_per_client_id(
    customer: Customer, issue: Issue, courier: User, point: SupplyPoint
) -> None:
    invoice = issue(customer, "121.00")
    client_id = str(uuid.uuid4())

    first = payments.record_courier_cash(
        courier=courier, supply_point=point, amount=D("121.00"), receipt_number="c-77",
        client_id=client_id,
    )
    replay = payments.record_courier_cash(
        courier=courier, supply_point=point, amount=D("121.00"), receipt_number="C-77",
        client_id=client_id,
    )

    assert first.created and not replay.created
    assert Payment.objects.count() == 1
    payment = first.payment
    assert (payment.channel, payment.reference, payment.created_by_id) == (
        Channel.COURIER, "C-77", courier.pk
    )
    assert status(invoice) == InvoiceStatus.PAID


def test_it_refuses_a_receipt_number_entered_before(
    customer: Customer, issue: Issue, courier: User, point: SupplyPoint
) -> None:
    issue(customer, "121.00")
    payments.record_courier_cash(
        courier=courier, supply_point=point, amount=D("50.00"), receipt_number="C-77",
        client_id=str(uuid.uuid4()),
    )

    with pytest.raises(payments.DuplicateReceipt, match="C-77"):
        payments.record_courier_cash(
            courier=courier, supply_point=point, amount=D("20.00"), receipt_number="c-77",
            client_id=str(uuid.uuid4()),
        )
    assert Payment.objects.count() == 1
