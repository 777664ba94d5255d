"""The dunning run and what follows it: levels, texts, money, pauses, payments, outcomes, letters.

The policy and rates are described in tests/receivables/dunning_helpers.py.
Invoices are due on 15 Oct 2026 unless a test says otherwise.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone
from pypdf import PdfReader

from billing.models import Invoice
from notifications import services as outbox
from notifications.models import OutboxMessage, S10Range, Status
from notifications.s10 import allocate as allocate_s10
from notifications.s10 import validate_s10
from portal.models import AuditEvent, Customer, Task, TaskStatus, User
from receivables import dunning, dunning_letters
from receivables.allocation import allocate
from receivables.dunning_models import (
    CustomerDunning,
    DunningNotice,
    DunningNoticeItem,
    DunningPause,
    DunningPolicy,
    DunningText,
    LetterBatch,
    NoticeStatus,
    PauseReason,
)
from receivables.ledger import balance
from receivables.models import Channel, LedgerEntry, Payment
from tests.receivables.dunning_helpers import DUE, make_company, make_policy

D = Decimal
Issue = Callable[..., Invoice]
Capture = Callable[..., Any]


@pytest.fixture(autouse=True)
def _media_root(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def policy(db: None) -> DunningPolicy:
    return make_policy()


@pytest.fixture
def company(db: None) -> Customer:
    return make_company()


@pytest.fixture
def clerk(make_staff: Callable[..., User]) -> User:
    from portal.roles import Role

    return make_staff(Role.COLLECTIONS)


def after(days: int) -> date:
    return DUE + timedelta(days=days)


def pay(invoice: Invoice, amount: str, txn: str = "t1") -> None:
    payment = Payment.objects.create(
        channel=Channel.MANUAL, source="manual", txn_id=txn, customer=invoice.customer,
        booking_date=after(11), amount=D(amount), currency="EUR", unallocated=D(amount),
    )
    allocate(payment=payment, invoice=invoice, amount=D(amount))


def simple_interest(amount: str, *periods: tuple[str, int]) -> Decimal:
    """Σ rate × days × amount / 36500, rounded half up to the cent."""
    total = sum((D(rate) * days for rate, days in periods), D(0))
    return (D(amount) * total / D(36500)).quantize(D("0.01"), ROUND_HALF_UP)


def dunning_entries(customer: Customer) -> dict[str, Decimal]:
    return {
        entry.cause.rsplit(":", 1)[1]: entry.amount
        for entry in LedgerEntry.objects.filter(customer=customer, cause__startswith="dunning.")
    }


# --- selecting and noticing -------------------------------------------------------------------


def test_it_notices_an_overdue_item_once_however_often_it_runs(
    customer: Customer, issue: Issue, policy: DunningPolicy,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    invoice = issue(customer, "121.00")
    with django_capture_on_commit_callbacks(execute=True):
        run = dunning.run_dunning(day=after(10))

    notice = DunningNotice.objects.get()
    assert (run.notice_count, run.queued_count, notice.level.sequence) == (1, 1, 2)
    assert notice.status == NoticeStatus.SENT
    assert [item.invoice for item in notice.items.all()] == [invoice]
    (email,) = mail.outbox
    assert email.to == ["ana@example.com"]
    assert invoice.document_number in email.subject
    assert "121.00 EUR" in email.body
    assert invoice.payment_reference in email.body
    assert "http://localhost:8000/invoices/balance/" in email.body

    for day in (after(10), after(10), after(20)):
        with django_capture_on_commit_callbacks(execute=True):
            again = dunning.run_dunning(day=day)
        assert again.notice_count == 0
    assert DunningNotice.objects.count() == 1
    assert len(mail.outbox) == 1


def test_it_reminds_before_the_due_date_by_sms(
    customer: Customer, issue: Issue, policy: DunningPolicy,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    issue(customer, "121.00")
    assert dunning.run_dunning(day=after(-4)).notice_count == 0

    with django_capture_on_commit_callbacks(execute=False):
        dunning.run_dunning(day=after(-2))

    notice = DunningNotice.objects.get()
    assert (notice.level.sequence, notice.channel) == (1, "sms")
    assert notice.items.get().days_overdue == -2
    message = OutboxMessage.objects.get()
    assert (message.channel, message.to, message.status) == ("sms", "+40721000111", "queued")
    assert "121.00 EUR" in message.body_text


def test_it_falls_back_to_email_when_the_customer_has_no_mobile(
    customer: Customer, issue: Issue, policy: DunningPolicy,
) -> None:
    Customer.objects.filter(pk=customer.pk).update(mobile="")
    issue(customer, "121.00")
    dunning.run_dunning(day=after(-1))
    notice = DunningNotice.objects.get()
    assert notice.channel == "email"
    assert OutboxMessage.objects.get().to == "ana@example.com"


def test_it_notices_the_highest_level_reached_and_later_the_next(
    customer: Customer, company: Customer, issue: Issue, policy: DunningPolicy,
) -> None:
    first = issue(customer, "121.00")
    second = issue(company, "242.00")
    dunning.run_dunning(day=after(10))
    assert sorted(DunningNoticeItem.objects.values_list("level_sequence", flat=True)) == [2, 2]

    run = dunning.run_dunning(day=after(22))

    pending = DunningNotice.objects.filter(status=NoticeStatus.PENDING_APPROVAL)
    assert {n.items.get().invoice for n in pending} == {first, second}
    assert all(n.level.sequence == 3 and n.outbox_message is None for n in pending)
    (task,) = Task.objects.filter(source_id=run.pk)
    assert task.kind == "collections" and task.team is not None
    assert task.team.name == "collections"
    assert task.source == run


def test_it_groups_a_customers_items_of_one_level_into_one_notice(
    customer: Customer, issue: Issue, policy: DunningPolicy,
) -> None:
    issue(customer, "121.00")
    issue(customer, "60.50")
    issue(customer, "12.10", due=after(5))  # only 5 days overdue: level 1 reached

    dunning.run_dunning(day=after(10))

    by_level = {n.level.sequence: n for n in DunningNotice.objects.all()}
    assert by_level[2].open_total == D("181.50") and by_level[2].item_count == 2
    assert by_level[1].open_total == D("12.10") and by_level[1].item_count == 1


def test_it_dunns_only_what_is_still_open(
    customer: Customer, issue: Issue, policy: DunningPolicy,
) -> None:
    invoice = issue(customer, "121.00")
    paid = issue(customer, "50.00")
    pay(invoice, "100.00")
    pay(paid, "50.00", txn="t2")

    dunning.run_dunning(day=after(10))

    notice = DunningNotice.objects.get()
    assert (notice.open_total, notice.items.get().invoice) == (D("21.00"), invoice)


def test_it_respects_the_minimum_amounts(
    customer: Customer, issue: Issue, policy: DunningPolicy,
) -> None:
    policy.levels.filter(sequence=2).update(minimum_amount=D("50.00"))
    small = issue(customer, "30.00")
    assert dunning.run_dunning(day=after(10)).notice_count == 0

    issue(customer, "30.00")  # together 60.00: now the notice is worth sending
    dunning.run_dunning(day=after(10))
    assert DunningNotice.objects.get().item_count == 2

    DunningPolicy.objects.filter(pk=policy.pk).update(minimum_amount=D("1000.00"))
    issue(customer, "30.00", due=after(-8))
    assert dunning.run_dunning(day=after(10)).notice_count == 0
    assert small.dunning_items.count() == 1


# --- never dun the excluded, the paused, the disputed ---------------------------------------


def test_it_does_not_dun_excluded_or_paused_customers(
    customer: Customer, company: Customer, issue: Issue, policy: DunningPolicy,
) -> None:
    CustomerDunning.objects.create(customer=customer, excluded=True)
    CustomerDunning.objects.create(customer=company, paused_until=after(30),
                                   pause_reason=PauseReason.PAYMENT_PLAN)
    issue(customer, "121.00")
    issue(company, "121.00")

    assert dunning.run_dunning(day=after(10)).notice_count == 0

    # The payment plan ends; the excluded customer stays excluded.
    dunning.run_dunning(day=after(31))
    assert list(DunningNotice.objects.values_list("customer", flat=True)) == [company.pk]


def test_it_never_duns_a_disputed_item_but_still_the_others(
    customer: Customer, issue: Issue, policy: DunningPolicy,
) -> None:
    disputed = issue(customer, "121.00")
    other = issue(customer, "60.50")
    pause = DunningPause.objects.create(customer=customer, invoice=disputed,
                                        reason=PauseReason.COMPLAINT)

    dunning.run_dunning(day=after(10))
    assert [item.invoice for item in DunningNoticeItem.objects.all()] == [other]

    pause.lifted_at = timezone.now()
    pause.save()
    dunning.run_dunning(day=after(11))
    assert disputed.dunning_items.count() == 1


def test_a_pause_without_an_invoice_pauses_the_whole_customer(
    customer: Customer, issue: Issue, policy: DunningPolicy,
) -> None:
    issue(customer, "121.00")
    DunningPause.objects.create(customer=customer, reason=PauseReason.COMPLAINT,
                                until=after(20))
    assert dunning.run_dunning(day=after(10)).notice_count == 0
    assert dunning.run_dunning(day=after(21)).notice_count == 1


# --- money ----------------------------------------------------------------------------------


def test_it_charges_a_company_statutory_interest_fee_and_compensation_exactly(
    customer: Customer, company: Customer, issue: Issue, policy: DunningPolicy,
) -> None:
    issue(company, "1000.00")
    issue(customer, "1000.00")

    dunning.run_dunning(day=after(35))

    b2b = DunningNotice.objects.get(customer=company)
    # 16 days (16–31 Oct) at 12.00 %, 19 days (1–19 Nov) at 11.50 %.
    expected = simple_interest("1000.00", ("12.00", 16), ("11.50", 19))
    assert expected == D("11.25")
    assert (b2b.level.sequence, b2b.status) == (4, NoticeStatus.PENDING_APPROVAL)
    assert (b2b.open_total, b2b.fee, b2b.interest, b2b.compensation) == (
        D("1000.00"), D("10.00"), expected, D("40.00"),
    )
    assert b2b.total == D("1061.25")
    item = b2b.items.get()
    assert (item.days_overdue, item.interest_from, item.interest_to) == (
        35, date(2026, 10, 16), date(2026, 11, 19),
    )
    # Consumers owe no statutory interest and no fixed compensation; the fee they do.
    consumer = DunningNotice.objects.get(customer=customer)
    assert (consumer.fee, consumer.interest, consumer.compensation) == (
        D("10.00"), D("0.00"), D("0.00"),
    )


def test_it_charges_interest_and_compensation_once_across_levels(
    company: Customer, issue: Issue, policy: DunningPolicy,
) -> None:
    issue(company, "1000.00")

    dunning.run_dunning(day=after(21))
    dunning.run_dunning(day=after(35))

    second, final = DunningNotice.objects.order_by("level__sequence")
    assert second.interest == simple_interest("1000.00", ("12.00", 16), ("11.50", 5))
    assert second.interest == D("6.84")
    # From 6 Nov on: the days the second reminder charged are not charged again.
    assert final.interest == simple_interest("1000.00", ("11.50", 14)) == D("4.41")
    assert (second.compensation, final.compensation) == (D("40.00"), D("0.00"))


def test_charges_enter_the_ledger_when_the_notice_is_sent_not_before(
    company: Customer, issue: Issue, policy: DunningPolicy, clerk: User,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    issue(company, "1000.00")
    dunning.run_dunning(day=after(21))
    notice = DunningNotice.objects.get()
    before = balance(company)
    assert dunning_entries(company) == {}

    with django_capture_on_commit_callbacks(execute=True):
        dunning.decide_notices(notice_ids=[notice.public_id], approve=True, by=clerk)

    notice.refresh_from_db()
    assert notice.status == NoticeStatus.SENT
    assert dunning_entries(company) == {
        "fee": D("5.00"), "interest": D("6.84"), "compensation": D("40.00"),
    }
    assert balance(company) == before + D("51.84")
    # Following the outcome again changes nothing.
    dunning.sync_outcomes()
    dunning.post_charges([notice.pk])
    assert LedgerEntry.objects.filter(cause__startswith="dunning.").count() == 3


# --- texts -------------------------------------------------------------------------------


def test_texts_are_in_the_customers_language_and_editable(
    customer: Customer, issue: Issue, policy: DunningPolicy,
) -> None:
    Customer.objects.filter(pk=customer.pk).update(language="ro")
    issue(customer, "1210.00")
    dunning.run_dunning(day=after(10))

    message = OutboxMessage.objects.get()
    assert "1.210,00 EUR" in message.body_text
    text = DunningText.objects.get(level__sequence=2, language="ro")
    text.subject = "Plată restantă {documents}"
    text.body = "Aveți de plată {amount} {currency}. Referința: {references}. {portal_url}"
    text.save()

    issue(customer, "60.50")
    dunning.run_dunning(day=after(10))
    latest = OutboxMessage.objects.latest("pk")
    assert latest.subject.startswith("Plată restantă FV-")
    assert latest.body_text.startswith("Aveți de plată 60,50 EUR. Referința: RF")


def test_texts_keep_tabs_backslashes_and_markup_exactly(
    customer: Customer, issue: Issue, policy: DunningPolicy,
) -> None:
    """The outbox rows are COPYed: what needs escaping there arrives as written."""
    Customer.objects.filter(pk=customer.pk).update(first_name="Ana\\Maria", last_name="<b>")
    issue(customer, "121.00")
    level = policy.levels.get(sequence=2)
    DunningText.objects.create(level=level, language="en", subject="Due:\t{documents}",
                               body="Dear {customer_name},\n\tpay {amount}\r\n\\o/")

    dunning.run_dunning(day=after(10))

    message = OutboxMessage.objects.get()
    assert message.subject.startswith("Due: FV-")
    assert message.body_text == "Dear Ana\\Maria <b>,\n\tpay 121.00\r\n\\o/"
    assert message.body_html == "<p>Dear Ana\\Maria &lt;b&gt;,<br>\tpay 121.00\r<br>\\o/</p>"


# --- a payment before the send ---------------------------------------------------------------


def test_a_payment_before_the_send_cancels_the_notice_and_its_message_never_goes(
    customer: Customer, issue: Issue, policy: DunningPolicy,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    invoice = issue(customer, "121.00")
    with django_capture_on_commit_callbacks(execute=False) as dispatch:
        dunning.run_dunning(day=after(10))
    notice = DunningNotice.objects.get()

    pay(invoice, "121.00")

    notice.refresh_from_db()
    assert notice.status == NoticeStatus.CANCELLED
    assert OutboxMessage.objects.get().status == Status.CANCELLED
    for callback in dispatch:  # the delivery task the run queued comes anyway
        callback()
    outbox.dispatch_due()
    assert mail.outbox == []
    assert OutboxMessage.objects.get().status == Status.CANCELLED
    assert dunning_entries(customer) == {}


def test_a_partial_payment_cancels_only_below_the_levels_minimum(
    customer: Customer, issue: Issue, policy: DunningPolicy,
) -> None:
    policy.levels.filter(sequence=2).update(minimum_amount=D("50.00"))
    invoice = issue(customer, "121.00")
    dunning.run_dunning(day=after(10))
    notice = DunningNotice.objects.get()

    pay(invoice, "10.00")
    notice.refresh_from_db()
    assert notice.status == NoticeStatus.QUEUED

    pay(invoice, "80.00", txn="t2")  # 31.00 left: under 50.00
    notice.refresh_from_db()
    assert notice.status == NoticeStatus.CANCELLED


def test_a_payment_cancels_a_notice_waiting_for_approval_and_closes_its_task(
    customer: Customer, issue: Issue, policy: DunningPolicy,
) -> None:
    invoice = issue(customer, "121.00")
    run = dunning.run_dunning(day=after(25))
    task = Task.objects.get(source_id=run.pk)

    pay(invoice, "121.00")

    assert DunningNotice.objects.get().status == NoticeStatus.CANCELLED
    task.refresh_from_db()
    assert task.status == TaskStatus.DONE


def test_a_message_already_being_sent_is_not_withdrawn(
    customer: Customer, issue: Issue, policy: DunningPolicy,
) -> None:
    invoice = issue(customer, "121.00")
    dunning.run_dunning(day=after(10))
    message = OutboxMessage.objects.get()
    assert outbox.claim(message.pk)

    pay(invoice, "121.00")

    message.refresh_from_db()
    assert DunningNotice.objects.get().status == NoticeStatus.QUEUED
    assert message.status == Status.SENDING


# --- unknown outcomes --------------------------------------------------------------------


def test_an_unknown_outcome_goes_to_the_reconciliation_list_and_is_never_resent(
    customer: Customer, issue: Issue, policy: DunningPolicy, clerk: User,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    issue(customer, "121.00")
    dunning.run_dunning(day=after(10))
    notice = DunningNotice.objects.get()
    message = OutboxMessage.objects.get()
    # A worker claimed the message and was killed while sending.
    assert outbox.claim(message.pk)
    OutboxMessage.objects.filter(pk=message.pk).update(
        claimed_at=timezone.now() - timedelta(hours=2)
    )

    outbox.dispatch_due()
    dunning.sync_outcomes()
    outbox.dispatch_due()
    dunning.run_dunning(day=after(12))

    notice.refresh_from_db()
    message.refresh_from_db()
    assert notice.status == NoticeStatus.UNKNOWN
    assert "Outcome unknown" in notice.reason
    assert message.status == Status.FAILED
    assert mail.outbox == []
    assert DunningNotice.objects.count() == 1

    # Staff decide to send it again, deliberately: a new message, the old one stays failed.
    with django_capture_on_commit_callbacks(execute=True):
        assert dunning.send_again(notice_ids=[notice.public_id], by=clerk, note="phoned") == 1
    notice.refresh_from_db()
    assert notice.status == NoticeStatus.SENT
    assert notice.outbox_message_id != message.pk
    assert len(mail.outbox) == 1
    assert OutboxMessage.objects.get(pk=message.pk).status == Status.FAILED
    assert AuditEvent.objects.filter(action="dunning.notice.sent_again").count() == 1


def test_staff_can_mark_an_unknown_notice_sent_and_its_charges_follow(
    company: Customer, issue: Issue, policy: DunningPolicy, clerk: User,
) -> None:
    issue(company, "1000.00")
    dunning.run_dunning(day=after(21))
    notice = DunningNotice.objects.get()
    dunning.decide_notices(notice_ids=[notice.public_id], approve=True, by=clerk)
    OutboxMessage.objects.update(
        status=Status.FAILED, error="Mail server answered 550 mailbox unavailable"
    )
    dunning.sync_outcomes()
    notice.refresh_from_db()
    assert notice.status == NoticeStatus.UNKNOWN
    assert "550" in notice.reason

    assert dunning.mark_sent(notice_ids=[notice.public_id], by=clerk, note="Delivered by hand") == 1

    notice.refresh_from_db()
    assert (notice.status, notice.decided_by) == (NoticeStatus.SENT, clerk)
    assert dunning_entries(company) == {
        "fee": D("5.00"), "interest": D("6.84"), "compensation": D("40.00"),
    }


# --- letters ------------------------------------------------------------------------------


@pytest.fixture
def s10_range(db: None) -> S10Range:
    return S10Range.objects.create(prefix="RR", country="RO", product="Registered letter",
                                   first_serial=12345678, last_serial=12349999,
                                   alarm_remaining=10)


def test_a_registered_letter_gets_an_s10_number_and_lands_in_a_batch(
    company: Customer, issue: Issue, policy: DunningPolicy, clerk: User, s10_range: S10Range,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    issue(company, "1000.00")
    dunning.run_dunning(day=after(35))
    notice = DunningNotice.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        dunning.decide_notices(notice_ids=[notice.public_id], approve=True, by=clerk)

    notice.refresh_from_db()
    assert notice.status == NoticeStatus.APPROVED
    assert notice.s10_number == "RR123456785RO"
    assert validate_s10(notice.s10_number) == notice.s10_number
    with notice.letter_pdf.open("rb") as fh:
        pdf = fh.read()
    assert hashlib.sha256(pdf).hexdigest() == notice.letter_sha256
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "RR123456785RO" in text and "Acme Energie SRL" in text
    assert "1,061.25" in text  # the total with fee, interest and compensation
    assert dunning_entries(company) == {}

    batch = dunning_letters.make_letter_batch(by=clerk)

    assert batch is not None
    assert (batch.letter_count, batch.registered_count) == (1, 1)
    assert len(PdfReader(batch.merged_pdf.open("rb")).pages) % 2 == 0
    with batch.list_csv.open("rb") as fh:
        (row,) = list(csv.DictReader(io.StringIO(fh.read().decode())))
    assert (row["s10_number"], row["registered"], row["name"]) == (
        "RR123456785RO", "yes", "Acme Energie SRL",
    )
    assert row["street"] == company.street
    notice.refresh_from_db()
    assert (notice.status, notice.letter_batch) == (NoticeStatus.SENT, batch)
    assert dunning_entries(company) == {
        "fee": D("10.00"), "interest": D("11.25"), "compensation": D("40.00"),
    }
    # Nothing is left for a second batch, and the letter keeps its number.
    assert dunning_letters.make_letter_batch(by=clerk) is None
    assert dunning_letters.prepare_letter(notice_id=notice.pk) is False
    assert DunningNotice.objects.get().s10_number == "RR123456785RO"


def test_registered_letters_wait_with_a_task_when_no_s10_numbers_are_left(
    company: Customer, issue: Issue, policy: DunningPolicy, clerk: User,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    issue(company, "1000.00")
    dunning.run_dunning(day=after(35))
    notice = DunningNotice.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        dunning.decide_notices(notice_ids=[notice.public_id], approve=True, by=clerk)

    notice.refresh_from_db()
    assert (notice.status, notice.s10_number, notice.letter_pdf.name) == (
        NoticeStatus.APPROVED, "", "",
    )
    assert dunning_letters.make_letter_batch() is None
    (task,) = Task.objects.filter(subject__startswith="No S10 numbers left")
    assert task.priority == 40
    assert LetterBatch.objects.count() == 0


def test_a_running_out_s10_range_raises_a_staff_task(s10_range: S10Range) -> None:
    allocate_s10(prefix="RR", country="RO", count=s10_range.remaining - 10)
    (task,) = Task.objects.filter(subject__startswith="S10 range running out")
    assert task.source == s10_range
    assert task.team is not None and task.team.name == "collections"


def test_an_ordinary_letter_needs_no_s10_number(
    customer: Customer, issue: Issue, policy: DunningPolicy,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    Customer.objects.filter(pk=customer.pk).update(email="", mobile="")
    issue(customer, "121.00")
    with django_capture_on_commit_callbacks(execute=True):
        dunning.run_dunning(day=after(10))

    notice = DunningNotice.objects.get()
    assert (notice.channel, notice.status, notice.s10_number) == ("letter", "approved", "")
    assert notice.letter_pdf.name
    batch = dunning_letters.make_letter_batch()
    assert batch is not None and (batch.letter_count, batch.registered_count) == (1, 0)


# --- the command ----------------------------------------------------------------------------


def test_the_command_runs_the_dunning_of_a_day(
    customer: Customer, issue: Issue, policy: DunningPolicy,
) -> None:
    issue(customer, "121.00")
    out = io.StringIO()
    call_command("dunning_run", "--date", after(10).isoformat(), stdout=out)
    assert "1 notices (1 items): 1 queued" in out.getvalue()
    out = io.StringIO()
    call_command("dunning_run", "--date", after(10).isoformat(), stdout=out)
    assert "0 notices" in out.getvalue()
