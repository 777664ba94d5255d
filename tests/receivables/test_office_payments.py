"""Office pages of receivables: manual payment entry, payment detail (reversal, refund),
the suspense queue, a customer's ledger and statement, the customer-page section."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from time_machine import TimeMachineFixture

from billing.models import Invoice, InvoiceStatus
from portal.models import Customer, User
from portal.roles import Role
from receivables import payments
from receivables.models import Channel, PayerAccount, Payment, PaymentKind, Suggestion
from receivables.office import office_section_data
from tests.conftest import make_customer
from tests.receivables.conftest import Issue

D = Decimal
pytestmark = pytest.mark.django_db
ClientFor = Callable[[User], Client]
NumQueries = Callable[..., Any]
TODAY = date(2026, 11, 20)
# Every office page pays for: the session (1), the user (1), their role groups (1),
# their own and their groups' permissions (2) and saving the session (3: savepoint,
# UPDATE, release); see tests/billing/test_office.py.
OFFICE_OVERHEAD = 8


@pytest.fixture(autouse=True)
def frozen(time_machine: TimeMachineFixture) -> None:
    time_machine.move_to(datetime(2026, 11, 20, 10, 0, tzinfo=UTC), tick=False)


@pytest.fixture
def clerk(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.COLLECTIONS)


@pytest.fixture
def desk(make_staff: Callable[[Role], User]) -> User:
    """Customer service: may look at payments and ledgers, not change them."""
    return make_staff(Role.CUSTOMER_SERVICE)


@pytest.fixture
def reader(make_staff: Callable[[Role], User]) -> User:
    """Meter reading: nothing to do with money."""
    return make_staff(Role.METER_READING)


@pytest.fixture
def invoice(customer: Customer, issue: Issue) -> Invoice:
    return issue(customer, "121.00", due=date(2026, 11, 15))


@pytest.fixture
def paid(customer: Customer, invoice: Invoice, clerk: User) -> Payment:
    """150.00 taken at the desk: pays the invoice, 29.00 credit."""
    return payments.record_manual_payment(
        customer=customer, amount=D("150.00"), booking_date=TODAY, by=clerk, reference="DESK-1"
    ).payment


@pytest.fixture
def stranger(db: None) -> Payment:
    """A bank payment nobody could match."""
    return Payment.objects.create(
        channel=Channel.BANK, source="bank", txn_id="B-1", booking_date=TODAY,
        amount=D("121.00"), currency="EUR", unallocated=D("121.00"),
        payer_name="POPESCU ANA", payer_account="RO12BANK00001111", text="energy november",
    )


def urls(customer: Customer, payment: Payment) -> dict[str, list[tuple[str, str]]]:
    """Every office URL of receivables: (method, url) by the permission it needs."""
    pid = payment.public_id
    return {
        "view": [
            ("get", reverse("receivables-office:suspense")),
            ("get", reverse("receivables-office:payment", args=[pid])),
            ("get", reverse("receivables-office:ledger", args=[customer.public_id])),
            ("get", reverse("receivables-office:statement-pdf", args=[customer.public_id])),
        ],
        "change": [
            ("get", reverse("receivables-office:payment-create")),
            ("post", reverse("receivables-office:payment-create")),
            ("post", reverse("receivables-office:suspense-suggest")),
            ("post", reverse("receivables-office:payment-reverse", args=[pid])),
            ("post", reverse("receivables-office:payment-refund", args=[pid])),
            ("post", reverse("receivables-office:payment-match", args=[pid])),
        ],
    }


# --- Outsiders ----------------------------------------------------------------------------


def test_it_answers_404_to_customers_on_every_office_url(
    client_for: ClientFor, alice: User, customer: Customer, paid: Payment
) -> None:
    client = client_for(alice)
    for method, url in sum(urls(customer, paid).values(), []):
        assert getattr(client, method)(url).status_code == 404, url
    paid.refresh_from_db()
    assert not paid.reversals.exists()


def test_it_answers_403_to_staff_of_a_role_without_money(
    client_for: ClientFor, reader: User, customer: Customer, paid: Payment
) -> None:
    client = client_for(reader)
    for method, url in sum(urls(customer, paid).values(), []):
        assert getattr(client, method)(url).status_code == 403, url


def test_it_lets_customer_service_look_but_not_change(
    client_for: ClientFor, desk: User, customer: Customer, paid: Payment
) -> None:
    client = client_for(desk)
    found = urls(customer, paid)
    for method, url in found["view"]:
        assert getattr(client, method)(url).status_code == 200, url
    for method, url in found["change"]:
        assert getattr(client, method)(url, {"reason": "x", "amount": "1"}).status_code == 403, url
    paid.refresh_from_db()
    assert paid.unallocated == D("29.00")


def test_it_answers_404_for_an_unknown_payment_or_customer(
    client_for: ClientFor, clerk: User
) -> None:
    client = client_for(clerk)
    unknown = uuid.uuid4()
    assert client.get(reverse("receivables-office:payment", args=[unknown])).status_code == 404
    assert client.get(reverse("receivables-office:ledger", args=[unknown])).status_code == 404


def test_it_sends_anonymous_visitors_to_the_login_page(
    customer: Customer, paid: Payment
) -> None:
    for method, url in sum(urls(customer, paid).values(), []):
        response = getattr(Client(), method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("account_login")), url


# --- Manual payment entry ---------------------------------------------------------------------


def _entry(**extra: str) -> dict[str, str]:
    data = {
        "customer": "C0100001", "amount": "50.00", "currency": "", "booking_date": "2026-11-19",
        "invoice": "", "receipt_number": "", "reference": "cash desk", "text": "",
        "entry_id": uuid.uuid4().hex,
    }
    data.update(extra)
    return data


def test_it_records_a_payment_taken_at_the_desk(
    client_for: ClientFor, clerk: User, customer: Customer, invoice: Invoice
) -> None:
    client = client_for(clerk)
    form = client.get(reverse("receivables-office:payment-create"), {"customer": "C0100001"})
    assert 'value="C0100001"' in form.content.decode()

    response = client.post(
        reverse("receivables-office:payment-create"),
        _entry(amount="121.00", invoice=invoice.document_number.lower(), receipt_number="R-9"),
    )

    payment = Payment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("receivables-office:payment", args=[payment.public_id])
    assert (payment.amount, payment.txn_id, payment.created_by) == (D("121.00"), "R-9", clerk)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    detail = client.get(response["Location"]).content.decode()
    assert "Payment of 121.00 EUR recorded for C0100001." in detail
    assert invoice.document_number in detail


@pytest.mark.parametrize(
    ("field", "typed", "message"),
    [
        ("amount", "12x", "Enter a number."),
        ("amount", "0", "greater than or equal to 0.01"),
        ("amount", "1.234", "no more than 2 decimal places"),
        ("booking_date", "2026-11-21", "cannot be in the future"),
        ("booking_date", "31.02.2026", "Enter a valid date."),
        ("customer", "C0999999", "No customer has this number or name."),
        ("invoice", "FV-2099-000001", "No issued document has this number."),
    ],
)
def test_it_keeps_what_was_typed_and_says_what_is_wrong(
    client_for: ClientFor, clerk: User, invoice: Invoice, field: str, typed: str, message: str
) -> None:
    response = client_for(clerk).post(
        reverse("receivables-office:payment-create"), _entry(**{field: typed, "reference": "kept"})
    )

    assert response.status_code == 422
    form = response.context["form"]
    assert any(message in error for error in form.errors[field]), form.errors
    page = response.content.decode()
    assert f'value="{typed}"' in page
    assert 'value="kept"' in page
    assert not Payment.objects.exists()


def test_it_refuses_a_document_of_another_customer_at_the_field(
    client_for: ClientFor, clerk: User, other_customer: Customer, issue: Issue, invoice: Invoice
) -> None:
    theirs = issue(other_customer, "50.00")

    response = client_for(clerk).post(
        reverse("receivables-office:payment-create"), _entry(invoice=theirs.document_number)
    )

    assert response.status_code == 422
    assert "belongs to customer C0200002" in response.context["form"].errors["invoice"][0]
    assert not Payment.objects.exists()


def test_it_finds_the_customer_by_name_and_lists_namesakes(
    client_for: ClientFor, clerk: User, customer: Customer, invoice: Invoice
) -> None:
    client = client_for(clerk)
    assert client.post(
        reverse("receivables-office:payment-create"), _entry(customer="Popescu")
    ).status_code == 302
    make_customer("C0100002")  # another Ana Popescu

    response = client.post(reverse("receivables-office:payment-create"), _entry(customer="Popescu"))

    assert response.status_code == 422
    error = response.context["form"].errors["customer"][0]
    assert "C0100001" in error and "C0100002" in error
    assert Payment.objects.count() == 1


def test_it_posts_a_form_sent_twice_once(
    client_for: ClientFor, clerk: User, invoice: Invoice
) -> None:
    client = client_for(clerk)
    data = _entry()

    first = client.post(reverse("receivables-office:payment-create"), data)
    second = client.post(reverse("receivables-office:payment-create"), data, follow=True)

    assert first.status_code == 302
    assert Payment.objects.count() == 1
    assert "This payment was already recorded." in second.content.decode()


def test_it_says_at_the_field_that_a_receipt_number_is_used(
    client_for: ClientFor, clerk: User, customer: Customer, invoice: Invoice
) -> None:
    payments.record_manual_payment(
        customer=customer, amount=D("10.00"), booking_date=TODAY, by=clerk, receipt_number="R-1"
    )

    response = client_for(clerk).post(
        reverse("receivables-office:payment-create"), _entry(receipt_number="R-1")
    )

    assert response.status_code == 422
    assert "R-1 is already used" in response.context["form"].errors["receipt_number"][0]
    assert Payment.objects.count() == 1


# --- Payment detail: reversal and refund --------------------------------------------------------


def test_it_shows_a_payment_with_its_allocations_and_ledger_entry(
    client_for: ClientFor, desk: User, paid: Payment, invoice: Invoice
) -> None:
    response = client_for(desk).get(reverse("receivables-office:payment", args=[paid.public_id]))

    page = response.content.decode()
    assert invoice.document_number in page
    assert "DESK-1" in page
    assert response.context["can_reverse"] and response.context["can_refund"]
    # Customer service may look, and is not offered what it may not do.
    assert reverse("receivables-office:payment-reverse", args=[paid.public_id]) not in page


def test_it_reverses_a_payment_from_its_page(
    client_for: ClientFor, clerk: User, paid: Payment, invoice: Invoice
) -> None:
    url = reverse("receivables-office:payment-reverse", args=[paid.public_id])
    client = client_for(clerk)

    missing = client.post(url, {"reason": ""})
    assert missing.status_code == 422
    assert missing.context["reverse_form"].errors["reason"]

    response = client.post(url, {"reason": "Returned by the bank"})

    assert response.status_code == 302
    reversal = paid.reversals.get()
    assert (reversal.kind, reversal.amount) == (PaymentKind.REVERSAL, D("-150.00"))
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ISSUED
    page = client.get(response["Location"]).content.decode()
    assert "Returned by the bank" in page
    assert url not in page  # reversed once


def test_it_refunds_credit_with_htmx_and_answers_with_the_fragment(
    client_for: ClientFor, clerk: User, paid: Payment
) -> None:
    url = reverse("receivables-office:payment-refund", args=[paid.public_id])
    client = client_for(clerk)

    too_much = client.post(url, {"amount": "30.00"}, HTTP_HX_REQUEST="true")
    assert "Only 29.00 EUR of this payment is credit." in too_much.content.decode()

    response = client.post(
        url, {"amount": "29.00", "note": "IBAN transfer"}, HTTP_HX_REQUEST="true"
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert page.lstrip().startswith('<div id="payment-detail">')
    assert "29.00 EUR of credit refunded." in page
    paid.refresh_from_db()
    assert paid.unallocated == D("0.00")
    assert paid.customer is not None
    assert payments.balance_by_currency(paid.customer) == [("EUR", D("0.00"))]


# --- Suspense queue -------------------------------------------------------------------------------


def test_it_lists_unmatched_payments_with_suggestions(
    client_for: ClientFor, clerk: User, stranger: Payment, customer: Customer, issue: Issue,
    invoice: Invoice,
) -> None:
    payments.record_manual_payment(
        customer=customer, amount=D("121.00"), booking_date=TODAY, by=clerk, reference="DESK-1"
    )
    open_one = issue(customer, "121.00", due=date(2026, 11, 30))
    client = client_for(clerk)
    assert client.post(reverse("receivables-office:suspense-suggest")).status_code == 302

    response = client.get(reverse("receivables-office:suspense"))

    assert list(response.context["page"].object_list) == [stranger]
    page = response.content.decode()
    assert "POPESCU ANA" in page
    assert "DESK-1" not in page  # matched payments are not waiting
    assert f"Pays {open_one.document_number} of C0100001" in page
    assert f"Pays {invoice.document_number} " not in page  # paid already


def test_it_matches_a_suggestion_in_one_click_with_htmx(
    client_for: ClientFor, clerk: User, stranger: Payment, customer: Customer, issue: Issue
) -> None:
    invoice = issue(customer, "121.00", due=date(2026, 11, 18))
    payments.compute_suggestions(payment=stranger)

    response = client_for(clerk).post(
        reverse("receivables-office:payment-match", args=[stranger.public_id]),
        {"invoice": str(invoice.public_id)},
        HTTP_HX_REQUEST="true",
    )

    page = response.content.decode()
    assert page.lstrip().startswith(f'<tr id="payment-{stranger.public_id}">')
    assert f"Matched to {invoice.document_number} of C0100001." in page
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert PayerAccount.objects.get(account="RO12BANK00001111").customer == customer
    assert not Suggestion.objects.exists()


def test_it_matches_to_a_customer_number_typed(
    client_for: ClientFor, clerk: User, stranger: Payment, customer: Customer, invoice: Invoice
) -> None:
    url = reverse("receivables-office:payment-match", args=[stranger.public_id])
    client = client_for(clerk)

    unknown = client.post(url, {"target": "C0999999"}, HTTP_HX_REQUEST="true")
    assert "No document or customer has this number." in unknown.content.decode()
    assert 'value="C0999999"' in unknown.content.decode()

    response = client.post(url, {"target": "c0100001"})

    assert response.status_code == 302
    stranger.refresh_from_db()
    assert stranger.customer == customer
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


@pytest.mark.parametrize("count", [3, 30])
def test_it_lists_the_suspense_queue_in_constant_queries(
    client_for: ClientFor, clerk: User, invoice: Invoice,
    django_assert_num_queries: NumQueries, count: int,
) -> None:
    for n in range(count):
        payment = Payment.objects.create(
            channel=Channel.BANK, source="bank", txn_id=f"S{n}", booking_date=TODAY,
            amount=D("121.00"), currency="EUR", unallocated=D("121.00"), payer_name="Ana Popescu",
        )
        Suggestion.objects.create(payment=payment, invoice=invoice, score=80, reason="same amount")
    client = client_for(clerk)
    url = reverse("receivables-office:suspense")
    client.get(url)  # warm the session and permission caches

    # the paginator's count, the page of payments with their files, their suggestions with
    # the documents and customers
    with django_assert_num_queries(OFFICE_OVERHEAD + 3):
        response = client.get(url)

    assert len(response.context["page"].object_list) == count


# --- Ledger and the customer page ---------------------------------------------------------


def test_it_shows_the_ledger_and_prints_the_statement(
    client_for: ClientFor, desk: User, customer: Customer, paid: Payment, invoice: Invoice
) -> None:
    client = client_for(desk)
    url = reverse("receivables-office:ledger", args=[customer.public_id])

    response = client.get(url, {"from": "2026-10-01"})

    stmt = response.context["statement"]
    assert [line.running for line in stmt.lines] == [D("121.00"), D("-29.00")]
    page = response.content.decode()
    assert reverse("receivables-office:payment", args=[paid.public_id]) in page
    pdf = client.get(
        reverse("receivables-office:statement-pdf", args=[customer.public_id]),
        {"from": "2026-10-01"},
    )
    assert pdf["Content-Type"] == "application/pdf"
    bad = client.get(url, {"from": "2026-10-01", "to": "2026-09-01"})
    assert bad.status_code == 200
    assert bad.context["form"].errors["to"]


def test_it_shows_the_account_on_the_customer_page(
    client_for: ClientFor, clerk: User, reader: User, customer: Customer, paid: Payment
) -> None:
    response = client_for(clerk).get(reverse("office:customer", args=[customer.public_id]))

    page = response.content.decode()
    assert "Account and payments" in page
    assert "29.00" in page
    assert reverse("receivables-office:ledger", args=[customer.public_id]) in page
    assert reverse("receivables-office:payment-create") + "?customer=C0100001" in page

    hidden = client_for(reader).get(reverse("office:customer", args=[customer.public_id]))
    assert "Account and payments" not in hidden.content.decode()


@pytest.mark.parametrize("count", [3, 30])
def test_it_loads_the_customer_section_in_four_queries(
    customer: Customer, issue: Issue, clerk: User, rf: Any,
    django_assert_num_queries: NumQueries, count: int,
) -> None:
    for n in range(count):
        issue(customer, "10.00", due=date(2026, 10, 1 + n % 28))
    Payment.objects.bulk_create(
        Payment(channel=Channel.BANK, source="bank", txn_id=f"P{n}", customer=customer,
                booking_date=TODAY, amount=D("1.00"), currency="EUR", unallocated=D("1.00"))
        for n in range(count)
    )

    # balance per currency, open items (LIMIT 21), latest payments (LIMIT 10), credit
    with django_assert_num_queries(4):
        data = office_section_data(rf.get("/"), customer)

    assert len(data["account"].items) == min(count, 20)
    assert data["account"].more_items == (count > 20)


@pytest.mark.parametrize("count", [3, 30])
def test_it_shows_the_ledger_in_constant_queries(
    client_for: ClientFor, desk: User, customer: Customer, issue: Issue,
    django_assert_num_queries: NumQueries, count: int,
) -> None:
    for n in range(count):
        issue(customer, "10.00", due=date(2026, 10, 1 + n % 28))
    client = client_for(desk)
    url = reverse("receivables-office:ledger", args=[customer.public_id])
    client.get(url)  # warm the session and permission caches

    # the customer, the balance per currency, the credit per currency, the opening balance,
    # the entries of the period with their documents and payments
    with django_assert_num_queries(OFFICE_OVERHEAD + 5):
        response = client.get(url)

    assert len(response.context["statement"].lines) == count
