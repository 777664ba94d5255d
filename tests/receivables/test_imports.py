"""Payment files through the real path: upload → check (Celery task) → post (Celery task).

Celery runs eagerly in tests, so stage_file() has checked the file by the time
it returns, and request_post() has posted it.
"""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, close_old_connections, connection, transaction

from billing.models import InvoiceStatus
from portal.models import Customer, Task, User
from portal.services import ServiceError
from receivables import imports, ledger
from receivables.models import (
    Allocation,
    Collector,
    CollectorSettlement,
    ImportStatus,
    LedgerEntry,
    MatchMethod,
    PayerAccount,
    Payment,
    PaymentImport,
    SettlementStatus,
    Suggestion,
)
from tests.receivables.conftest import Issue
from tests.receivables.statements import Tx, camt053

D = Decimal


@pytest.fixture
def clerk(make_staff) -> User:  # type: ignore[no-untyped-def]
    from portal.roles import Role

    return make_staff(Role.COLLECTIONS)


@pytest.fixture(autouse=True)
def _tasks_run(django_capture_on_commit_callbacks: Any) -> None:
    """Celery is eager; the tasks queued on commit run when the helpers below say so."""
    global _capture
    _capture = django_capture_on_commit_callbacks


_capture: Any = None


def upload(
    collector: Collector, data: bytes, by: User, name: str = "statement.xml"
) -> PaymentImport:
    if connection.in_atomic_block:
        with _capture(execute=True):
            imp = imports.stage_file(
                collector=collector, upload=SimpleUploadedFile(name, data), uploaded_by=by
            )
    else:
        imp = imports.stage_file(
            collector=collector, upload=SimpleUploadedFile(name, data), uploaded_by=by
        )
    imp.refresh_from_db()
    return imp


def post_file(imp: PaymentImport, by: User) -> PaymentImport:
    assert imp.status == ImportStatus.CHECKED, imp.problem
    with _capture(execute=True):
        imports.request_post(imp=imp, by=by)
    imp.refresh_from_db()
    return imp


def test_it_pays_an_invoice_by_its_rf_reference(
    customer: Customer, issue: Issue, bank: Collector, clerk: User
) -> None:
    invoice = issue(customer, "121.00")
    data = camt053([Tx("121.00", ref=invoice.payment_reference)])
    imp = post_file(upload(bank, data, clerk), clerk)

    assert imp.status == ImportStatus.POSTED
    assert (imp.line_count, imp.matched_count, imp.unmatched_count) == (1, 1, 0)
    payment = Payment.objects.get()
    assert payment.customer == customer
    assert payment.match_method == MatchMethod.REFERENCE
    assert payment.unallocated == D("0.00")
    assert Allocation.objects.get().invoice == invoice
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert ledger.balance(customer) == D("0.00")
    assert list(LedgerEntry.objects.order_by("id").values_list("kind", "amount")) == [
        ("invoice", D("121.00")), ("payment", D("-121.00")),
    ]


def test_it_keeps_a_partial_payment_open_and_an_overpayment_as_credit(
    customer: Customer, issue: Issue, bank: Collector, clerk: User
) -> None:
    first = issue(customer, "121.00")
    second = issue(customer, "242.00")
    data = camt053([
        Tx("100.00", ref=first.payment_reference),
        Tx("300.00", ref=second.payment_reference),
    ])
    post_file(upload(bank, data, clerk), clerk)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == InvoiceStatus.PARTLY_PAID
    assert second.status == InvoiceStatus.PAID
    over = Payment.objects.get(amount=D("300.00"))
    assert over.unallocated == D("58.00")
    open_now = [(i.pk, i.open_amount) for i in ledger.open_items(customer)]  # type: ignore[attr-defined]
    assert open_now == [(first.pk, D("21.00"))]
    # 121 + 242 − 100 − 300: the customer has 37.00 of credit.
    assert ledger.balance(customer) == D("-37.00")


def test_it_finds_an_invoice_number_in_the_text(
    customer: Customer, issue: Issue, bank: Collector, clerk: User
) -> None:
    invoice = issue(customer, "60.50")
    number = invoice.document_number  # FV-2026-000001
    text = f"Plata factura {number.replace('-', ' ')} multumesc"
    post_file(upload(bank, camt053([Tx("60.50", text=text)]), clerk), clerk)

    payment = Payment.objects.get()
    assert payment.match_method == MatchMethod.INVOICE_NUMBER
    assert Allocation.objects.get().invoice == invoice


def test_it_learns_the_payer_account_and_pays_oldest_first_next_time(
    customer: Customer, issue: Issue, bank: Collector, clerk: User
) -> None:
    paid = issue(customer, "12.10", due=date(2026, 8, 1))
    older = issue(customer, "121.00", due=date(2026, 9, 1))
    newer = issue(customer, "121.00", due=date(2026, 10, 1))
    iban = "RO09BCYP0000001234567890"
    post_file(upload(bank, camt053([Tx("12.10", ref=paid.payment_reference, iban=iban)],
                              statement="S1"), clerk), clerk)
    assert PayerAccount.objects.get().customer == customer

    # No reference at all: the account says who pays; 150 covers the older and 29 of the newer.
    post_file(upload(bank, camt053([Tx("150.00", text="energie", iban=iban, bank_ref="B2")],
                              statement="S2"), clerk), clerk)

    payment = Payment.objects.get(amount=D("150.00"))
    assert payment.match_method == MatchMethod.CUSTOMER
    assert sorted(payment.allocations.values_list("invoice_id", "amount")) == sorted(
        [(older.pk, D("121.00")), (newer.pk, D("29.00"))]
    )
    older.refresh_from_db()
    newer.refresh_from_db()
    assert (older.status, newer.status) == (InvoiceStatus.PAID, InvoiceStatus.PARTLY_PAID)


def test_it_spreads_several_customer_payments_of_one_file_over_the_items(
    customer: Customer, issue: Issue, bank: Collector, clerk: User
) -> None:
    a = issue(customer, "121.00", due=date(2026, 9, 1))
    b = issue(customer, "121.00", due=date(2026, 10, 1))
    c = issue(customer, "121.00", due=date(2026, 11, 1))
    PayerAccount.objects.create(account="RO09BCYP0000001234567890", customer=customer)
    iban = "RO09BCYP0000001234567890"
    post_file(upload(bank, camt053([
        Tx("150.00", iban=iban), Tx("120.00", iban=iban), Tx("100.00", iban=iban),
    ]), clerk), clerk)

    # Items end to end: a [0, 121), b [121, 242), c [242, 363); payments [0, 150),
    # [150, 270), [270, 370): each pays where it overlaps, 7.00 is left as credit.
    rows = sorted(Allocation.objects.values_list("payment__amount", "invoice_id", "amount"))
    assert rows == sorted([
        (D("150.00"), a.pk, D("121.00")), (D("150.00"), b.pk, D("29.00")),
        (D("120.00"), b.pk, D("92.00")), (D("120.00"), c.pk, D("28.00")),
        (D("100.00"), c.pk, D("93.00")),
    ])
    assert Payment.objects.get(amount=D("100.00")).unallocated == D("7.00")
    assert ledger.balance(customer) == D("-7.00")


def test_it_leaves_an_unknown_payment_in_suspense_with_a_suggestion(
    customer: Customer, issue: Issue, bank: Collector, clerk: User
) -> None:
    invoice = issue(customer, "48.40", due=date(2026, 10, 20))
    imp = post_file(
        upload(bank, camt053([Tx("48.40", text="for the flat", name="J. Doe")]), clerk), clerk
    )

    assert (imp.matched_count, imp.unmatched_count) == (0, 1)
    payment = Payment.objects.get()
    assert payment.customer is None and payment.unallocated == D("48.40")
    assert Suggestion.objects.get(payment=payment).invoice == invoice
    assert not LedgerEntry.objects.filter(payment=payment).exists()
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ISSUED


def test_it_refuses_the_same_file_twice_even_renamed(
    customer: Customer, issue: Issue, bank: Collector, clerk: User
) -> None:
    invoice = issue(customer, "121.00")
    data = camt053([Tx("121.00", ref=invoice.payment_reference)])
    post_file(upload(bank, data, clerk), clerk)

    for name in ("statement.xml", "copy of statement.xml"):
        with pytest.raises(ServiceError, match="already posted"):
            upload(bank, data, clerk, name=name)
    assert Payment.objects.count() == 1


def test_it_skips_lines_an_overlapping_file_already_posted(
    customer: Customer, issue: Issue, bank: Collector, clerk: User
) -> None:
    first = issue(customer, "121.00")
    second = issue(customer, "60.50")
    one = Tx("121.00", ref=first.payment_reference, bank_ref="B-1")
    two = Tx("60.50", ref=second.payment_reference, bank_ref="B-2")
    post_file(upload(bank, camt053([one], statement="S1"), clerk), clerk)
    imp = post_file(upload(bank, camt053([one, two], statement="S2"), clerk), clerk)

    assert imp.duplicate_count == 1
    assert Payment.objects.count() == 2
    assert sum(Payment.objects.values_list("amount", flat=True)) == D("181.50")
    assert ledger.balance(customer) == D("0.00")


def test_it_undoes_a_reversed_payment(
    customer: Customer, issue: Issue, bank: Collector, clerk: User
) -> None:
    invoice = issue(customer, "121.00")
    post_file(upload(bank, camt053([Tx("121.00", ref=invoice.payment_reference, bank_ref="B-9")],
                              statement="S1"), clerk), clerk)
    reversal = Tx("121.00", ref=invoice.payment_reference, bank_ref="B-9", reversal=True)
    post_file(upload(bank, camt053([reversal], statement="S2"), clerk), clerk)

    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ISSUED
    assert sum(Allocation.objects.values_list("amount", flat=True)) == D("0.00")
    assert ledger.balance(customer) == D("121.00")
    undo = Payment.objects.get(kind="reversal")
    assert undo.reverses is not None and undo.reverses.amount == D("121.00")


def test_it_posts_only_booked_entries(
    customer: Customer, issue: Issue, bank: Collector, clerk: User
) -> None:
    invoice = issue(customer, "121.00")
    data = camt053([
        Tx("121.00", ref=invoice.payment_reference),
        Tx("5.00", text="pending", booked=False, bank_ref="P-1"),
    ])
    imp = post_file(upload(bank, data, clerk), clerk)
    assert imp.line_count == 1
    assert Payment.objects.count() == 1


def test_it_fails_a_broken_file_with_a_reason_and_posts_nothing(
    bank: Collector, clerk: User
) -> None:
    imp = upload(bank, b"<Document><BkToCstmrStmt>", clerk)
    assert imp.status == ImportStatus.FAILED
    assert imp.problem
    with pytest.raises(ServiceError):
        imports.request_post(imp=imp, by=clerk)
    assert not Payment.objects.exists()


def test_it_refuses_a_statement_of_another_account(
    customer: Customer, issue: Issue, bank: Collector, clerk: User
) -> None:
    data = camt053([Tx("1.00")], account="RO12BTRL0000009876543210")
    imp = upload(bank, data, clerk)
    assert imp.status == ImportStatus.FAILED
    assert "RO12BTRL0000009876543210" in imp.problem


def test_it_never_changes_ledger_entries_or_allocations(
    customer: Customer, issue: Issue, bank: Collector, clerk: User
) -> None:
    invoice = issue(customer, "121.00")
    post_file(upload(bank, camt053([Tx("121.00", ref=invoice.payment_reference)]), clerk), clerk)
    for model in (LedgerEntry, Allocation):
        with pytest.raises(IntegrityError), transaction.atomic():
            model.objects.update(amount=D("1.00"))
        with pytest.raises(IntegrityError), transaction.atomic():
            model.objects.all().delete()
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.update(amount=D("1.00"))


def test_a_file_arriving_after_its_deadline_raises_a_task(
    customer: Customer, issue: Issue, bank: Collector, clerk: User
) -> None:
    # Booked on Monday 2026-11-02, due by Z+1 = Tuesday; uploaded today (later).
    imp = upload(bank, camt053([Tx("1.00", day="2026-11-02")]), clerk)
    assert imp.business_date == date(2026, 11, 2)
    assert imp.deadline == date(2026, 11, 3)
    assert imp.late
    assert Task.objects.filter(subject__contains="after its deadline").exists()


def test_a_missing_daily_file_raises_one_task(post: Collector) -> None:
    Collector.objects.filter(pk=post.pk).update(
        expects_daily_files=True, created_at="2026-11-01T00:00:00Z"
    )
    assert imports.check_missing_files(today=date(2026, 11, 6)) == 3  # Mon, Tue, Wed
    assert imports.check_missing_files(today=date(2026, 11, 6)) == 0  # once each


def test_working_days_skip_the_weekend() -> None:
    assert imports.add_working_days(date(2026, 11, 6), 1) == date(2026, 11, 9)
    assert imports.add_working_days(date(2026, 11, 5), 4) == date(2026, 11, 11)


@pytest.mark.django_db(transaction=True)
def test_ten_uploads_of_one_file_at_once_give_one_import(
    customer: Customer, bank: Collector, clerk: User
) -> None:
    data = camt053([Tx("10.00", text="x")])
    barrier = threading.Barrier(10)
    results: list[str] = []

    def attempt(n: int) -> None:
        try:
            barrier.wait()
            imports.stage_file(
                collector=bank, upload=SimpleUploadedFile(f"s{n}.xml", data), uploaded_by=clerk
            )
            results.append("ok")
        except ServiceError:
            results.append("refused")
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["ok"] + ["refused"] * 9
    assert PaymentImport.objects.exclude(status=ImportStatus.DISCARDED).count() == 1


def counter_file(rows: list[tuple[str, str, str, str]], settlement: str = "DEC-20261102") -> bytes:
    """A post-office counter file (semicolon layout): (txn id, reference, amount, fee) rows."""
    lines = ["type;txn_id;date;office;reference;payer;amount;fee;settlement"]
    for txn, ref, amount, fee in rows:
        lines.append(f"P;{txn};02.11.2026;010203;{ref};Payer;{amount};{fee};{settlement}")
    total = sum(D(amount.replace(",", ".")) for _t, _r, amount, _f in rows)
    lines.append(f"S;{len(rows)};{str(total).replace('.', ',')}")
    return ("\r\n".join(lines) + "\r\n").encode()


def test_counter_payments_are_posted_and_the_collectors_credit_reconciles(
    customer: Customer, issue: Issue, post: Collector, bank: Collector, clerk: User
) -> None:
    first = issue(customer, "121.00")
    second = issue(customer, "60.50")
    data = counter_file([
        ("PR-1", first.payment_reference, "121,00", "1,20"),
        ("PR-2", second.payment_reference, "60,50", "0,80"),
    ])
    imp = post_file(upload(post, data, clerk, name="posta.csv"), clerk)
    assert (imp.matched_count, imp.fees) == (2, D("2.00"))
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (InvoiceStatus.PAID, InvoiceStatus.PAID)
    settlement = CollectorSettlement.objects.get()
    assert (settlement.gross, settlement.fees, settlement.expected) == (
        D("181.50"), D("2.00"), D("179.50")
    )

    # Days later the post office pays the day's total, net of its fees, into our account.
    credit = Tx("179.50", text="DEC-20261102 incasari", iban=post.account, bank_ref="SETT-1")
    post_file(upload(bank, camt053([credit], statement="S9"), clerk), clerk)
    settlement.refresh_from_db()
    assert settlement.status == SettlementStatus.RECONCILED
    assert settlement.bank_payment is not None
    assert settlement.bank_payment.kind == "settlement"
    # The settlement is not a customer's money: nothing more allocated, balance unchanged.
    assert ledger.balance(customer) == D("0.00")
    assert Allocation.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_overlapping_files_posted_at_once_never_post_a_payment_twice(
    customer: Customer, issue: Issue, bank: Collector, clerk: User
) -> None:
    invoices = [issue(customer, "121.00") for _ in range(3)]
    txs = [
        Tx("121.00", ref=invoice.payment_reference, bank_ref=f"B-{n}")
        for n, invoice in enumerate(invoices)
    ]
    files = [
        upload(bank, camt053(txs[:2], statement="A"), clerk, name="a.xml"),
        upload(bank, camt053(txs[1:], statement="B"), clerk, name="b.xml"),
    ]
    for imp in files:
        PaymentImport.objects.filter(pk=imp.pk).update(status=ImportStatus.POSTING)
    barrier = threading.Barrier(2)

    def run(imp: PaymentImport) -> None:
        try:
            barrier.wait()
            imports.post_file(imp, by=clerk)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(imp,)) for imp in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(PaymentImport.objects.values_list("status", flat=True)) == ["posted", "posted"]
    assert Payment.objects.count() == 3
    assert sum(Payment.objects.values_list("amount", flat=True)) == D("363.00")
    assert sum(Allocation.objects.values_list("amount", flat=True)) == D("363.00")
    assert ledger.balance(customer) == D("0.00")


def test_a_collector_layout_that_cannot_be_read_is_refused_when_saved(post: Collector) -> None:
    from django.core.exceptions import ValidationError

    post.clean()  # the ready-made layout is fine
    post.layout = {"code": "x", "kind": "csv", "fields": {"amount": 1}, "currency": "EUR"}
    with pytest.raises(ValidationError) as error:
        post.clean()
    assert "layout" in error.value.message_dict
