"""Money taken in by hand and what staff do with payments afterwards.

Staff enter payments at the desk (``record_manual_payment``), couriers enter
the cash they collect (``record_courier_cash``); both post the payment, enter
it in the ledger and allocate it to the named document or oldest first. What
is left is the customer's credit: the next document issued uses it
(``apply_credit``, run on billing's ``document_issued``), or staff refund it.
Payments nobody could match wait in the suspense queue with suggestions
until staff match them to a document or a customer; a payment that bounced is
reversed by a new negative payment that undoes its allocations.

Every function here locks the payment row it changes, works in Decimal and
writes an audit event.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.models import Invoice, InvoiceKind
from billing.pricing import CURRENCY_EXPONENTS
from meters.models import SupplyPoint
from portal.models import Customer, User
from portal.services import ServiceError, record, snapshot
from receivables.allocation import allocate, enter_payment, lock_allocations, settle_invoices
from receivables.ledger import open_items
from receivables.models import (
    ZERO,
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

MANUAL_SOURCE = "manual"
COURIER_SOURCE = "courier"
REVERSAL_SOURCE = "manual-reversal"
# Suggestions: an open item whose open amount equals the payment, due this close to its booking.
SUGGESTION_WINDOW = timedelta(days=30)
SUGGESTION_CANDIDATES = 50
SUGGESTIONS_KEPT = 5
AUDIT_FIELDS = (
    "channel", "kind", "source", "txn_id", "amount", "currency", "booking_date", "reference",
    "unallocated", "match_method",
)


class DuplicateReceipt(ServiceError):
    """The receipt number is already on another payment (the form shows it at the field)."""


@dataclass(frozen=True)
class Posted:
    payment: Payment
    # False when the same entry came again (a double click, an offline replay).
    created: bool
    allocations: tuple[Allocation, ...] = ()


# --- Queries ------------------------------------------------------------------------


def oldest_first(items: QuerySet[Invoice]) -> QuerySet[Invoice]:
    """Open items in the order money is applied to them: due date, then id."""
    return items.order_by(F("due_date").asc(nulls_last=True), "id")


def credit_payments(customer: Customer | int) -> QuerySet[Payment]:
    """The customer's payments with money not allocated to any document."""
    return Payment.objects.filter(
        customer=customer, kind=PaymentKind.PAYMENT, unallocated__gt=0
    )


def credit_of(customer: Customer) -> list[tuple[str, Decimal]]:
    """The customer's credit per currency, e.g. [("RON", Decimal("20.00"))] (one query)."""
    rows = (
        credit_payments(customer).order_by().values("currency")
        .annotate(total=Sum("unallocated")).order_by("currency")
    )
    return [(row["currency"], row["total"]) for row in rows]


def balance_by_currency(customer: Customer) -> list[tuple[str, Decimal]]:
    """What the customer owes per currency, the ledger's sum (negative: credit; one query)."""
    rows = (
        LedgerEntry.objects.filter(customer=customer).order_by().values("currency")
        .annotate(total=Sum("amount")).order_by("currency")
    )
    return [(row["currency"], row["total"]) for row in rows]


def suspense_queue() -> QuerySet[Payment]:
    """Payments nobody could match to a customer, with money still to place."""
    return Payment.objects.filter(
        customer=None, kind=PaymentKind.PAYMENT, unallocated__gt=0
    ).order_by("-booking_date", "-id")


def is_reversed(payment: Payment) -> bool:
    return Payment.objects.filter(reverses=payment).exists()


# --- Checks -------------------------------------------------------------------------


def _check_amount(amount: Decimal, currency: str) -> Decimal:
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ServiceError(_("Enter the amount as a number."))
    if amount <= ZERO:
        raise ServiceError(_("The amount must be more than zero."))
    places = CURRENCY_EXPONENTS.get(currency)
    if places is None:
        raise ServiceError(_("%(code)s is not a currency we take.") % {"code": currency})
    if amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise ServiceError(
            _("%(code)s amounts have at most %(places)d decimals.")
            % {"code": currency, "places": places}
        )
    return amount


def _check_day(day: date) -> date:
    if day > timezone.localdate():
        raise ServiceError(_("The payment date cannot be in the future."))
    return day


def _currency_for(customer: Customer, invoice: Invoice | None, currency: str) -> str:
    """The currency named, else the document's, else the customer's oldest open item's or
    last ledger entry's."""
    currency = currency.strip().upper()
    if invoice is not None:
        if currency and currency != invoice.currency:
            raise ServiceError(
                _("%(number)s is in %(code)s.")
                % {"number": invoice.document_number, "code": invoice.currency}
            )
        return invoice.currency
    if currency:
        return currency
    oldest = oldest_first(open_items(customer)).first()
    if oldest is not None:
        return oldest.currency
    last = (
        LedgerEntry.objects.filter(customer=customer).order_by("-id")
        .values_list("currency", flat=True).first()
    )
    if last:
        return last
    raise ServiceError(_("This customer has no documents yet; say the currency."))


def _lock(payment: Payment) -> Payment:
    return Payment.objects.select_for_update().get(pk=payment.pk)


# --- Allocating -----------------------------------------------------------------------


def _apply(
    payment: Payment,
    *,
    by: User | None,
    method: str,
    first: Invoice | None = None,
    first_amount: Decimal | None = None,
    only: Iterable[int] | None = None,
) -> list[Allocation]:
    """Allocate a (locked) payment of a customer: to ``first`` if named, the rest oldest first.

    ``first_amount`` is what goes to ``first`` (default: as much as is open on
    it). ``only`` limits the oldest-first part to these documents. What is
    left stays unallocated: the customer's credit.
    """
    done: list[Allocation] = []
    if first is not None:
        done.append(
            allocate(payment=payment, invoice=first, amount=first_amount, method=method, by=by)
        )
    payment.refresh_from_db(fields=["customer", "unallocated", "match_method"])
    if payment.unallocated <= ZERO or payment.customer_id is None:
        return done
    items = open_items([payment.customer_id]).filter(currency=payment.currency)
    if only is not None:
        items = items.filter(pk__in=list(only))
    remaining = payment.unallocated
    for item in oldest_first(items):
        if remaining <= ZERO:
            break
        try:
            allocation = allocate(payment=payment, invoice=item, method=method, by=by)
        except ServiceError:
            continue  # paid in the meantime by someone else's transaction
        remaining -= allocation.amount
        done.append(allocation)
    payment.refresh_from_db(fields=["unallocated"])
    return done


def _allocation_notes(allocations: Iterable[Allocation]) -> list[dict[str, str]]:
    return [{"invoice": str(a.invoice_id), "amount": str(a.amount)} for a in allocations]


def _replay_of(
    source: str,
    txn_id: str,
    *,
    customer: Customer,
    amount: Decimal,
    by: User | None,
    conflict: str = "",
) -> Posted | None:
    """The stored payment when this entry came before (same customer, amount and person).

    The same id with other values is refused with ``conflict`` (default: the
    receipt number is taken).
    """
    existing = Payment.objects.filter(source=source, txn_id=txn_id).first()
    if existing is None:
        return None
    same = (
        existing.customer_id == customer.pk
        and existing.amount == amount
        and existing.created_by_id == getattr(by, "pk", None)
    )
    if same:
        return Posted(payment=existing, created=False)
    raise DuplicateReceipt(
        conflict
        or _("Receipt number %(number)s is already used by another payment (%(date)s).")
        % {"number": txn_id, "date": existing.booking_date.isoformat()}
    )


def _post(
    *,
    customer: Customer,
    channel: str,
    source: str,
    txn_id: str,
    amount: Decimal,
    currency: str,
    booking_date: date,
    reference: str,
    text: str,
    method: str,
    by: User | None,
    invoice: Invoice | None,
    action: str,
    conflict: str = "",
) -> Posted:
    def replay_of() -> Posted | None:
        return _replay_of(
            source, txn_id, customer=customer, amount=amount, by=by, conflict=conflict
        )

    replay = replay_of()
    if replay is not None:
        return replay
    try:
        with transaction.atomic():  # a savepoint: a concurrent twin hits (source, txn_id)
            payment = Payment.objects.create(
                channel=channel,
                source=source,
                txn_id=txn_id,
                customer=customer,
                booking_date=booking_date,
                value_date=booking_date,
                amount=amount,
                currency=currency,
                reference=reference[:60],
                text=text[:500],
                match_method=method,
                unallocated=amount,
                created_by=by if getattr(by, "pk", None) else None,
            )
    except IntegrityError:
        replay = replay_of()
        if replay is None:
            raise
        return replay
    payment = _lock(payment)
    enter_payment(payment)
    allocations = _apply(payment, by=by, method=method, first=invoice)
    record(
        action=action,
        actor=by,
        customer=customer,
        obj=payment,
        after={**snapshot(payment, AUDIT_FIELDS), "allocations": _allocation_notes(allocations)},
    )
    return Posted(payment=payment, created=True, allocations=tuple(allocations))


@transaction.atomic
def record_manual_payment(
    *,
    customer: Customer,
    amount: Decimal,
    booking_date: date,
    by: User,
    currency: str = "",
    reference: str = "",
    text: str = "",
    invoice: Invoice | None = None,
    receipt_number: str = "",
    entry_id: str = "",
) -> Posted:
    """A payment taken by staff: posted, entered in the ledger and allocated.

    To ``invoice`` first if named (it must be the customer's and open), then
    oldest first; the rest is credit. ``receipt_number`` (the clerk's, unique)
    or else ``entry_id`` (made when the form was shown) identifies the entry:
    the same form sent twice posts once.
    """
    if invoice is not None and invoice.customer_id != customer.pk:
        raise ServiceError(_("That document belongs to another customer."))
    currency = _currency_for(customer, invoice, currency)
    amount = _check_amount(amount, currency)
    _check_day(booking_date)
    receipt = receipt_number.strip()
    txn_id = receipt or entry_id.strip() or uuid.uuid4().hex
    return _post(
        customer=customer,
        channel=Channel.MANUAL,
        source=MANUAL_SOURCE,
        txn_id=txn_id[:120],
        amount=amount,
        currency=currency,
        booking_date=booking_date,
        reference=reference.strip(),
        text=text.strip(),
        method=MatchMethod.MANUAL,
        by=by,
        invoice=invoice,
        action="receivables.manual_payment",
        conflict="" if receipt else _("This form was sent before; open a new one."),
    )


@transaction.atomic
def record_courier_cash(
    *,
    courier: User,
    supply_point: SupplyPoint,
    amount: Decimal,
    receipt_number: str,
    client_id: str,
    collected_on: date | None = None,
) -> Posted:
    """Cash a courier collected from a supply point's customer, against a paper receipt.

    ``client_id`` is made where the entry was typed (the form, or the phone
    while offline): the same entry sent again is stored once. A receipt
    number is used once across all couriers.
    """
    customer = supply_point.customer
    receipt = receipt_number.strip().upper()
    if not receipt:
        raise DuplicateReceipt(_("Write the number printed on the receipt."))
    try:
        client_key = str(uuid.UUID(str(client_id)))
    except ValueError:
        raise ServiceError(_("This entry has no valid id; reload the page.")) from None
    currency = _currency_for(customer, None, "")
    amount = _check_amount(amount, currency)
    day = _check_day(collected_on or timezone.localdate())
    conflict = _("This entry was stored before with other values; reload the page.")
    replay = _replay_of(
        COURIER_SOURCE, client_key, customer=customer, amount=amount, by=courier,
        conflict=conflict,
    )
    if replay is not None:
        return replay
    # One receipt number once: serialise entries of the same number.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"receipt:{receipt}"])
    earlier = (
        Payment.objects.filter(source=COURIER_SOURCE, reference=receipt)
        .exclude(txn_id=client_key).first()
    )
    if earlier is not None:
        raise DuplicateReceipt(
            _("Receipt %(number)s was already entered on %(date)s.")
            % {"number": receipt, "date": earlier.booking_date.isoformat()}
        )
    return _post(
        customer=customer,
        channel=Channel.COURIER,
        source=COURIER_SOURCE,
        txn_id=client_key,
        amount=amount,
        currency=currency,
        booking_date=day,
        reference=receipt,
        text=supply_point.code,
        method=MatchMethod.CUSTOMER,
        by=courier,
        invoice=None,
        action="receivables.courier_cash",
        conflict=conflict,
    )


@transaction.atomic
def apply_credit(
    *, customer: Customer, invoices: Iterable[int] | None = None, by: User | None = None
) -> list[Allocation]:
    """Use the customer's unallocated money on open items, oldest payment and item first.

    ``invoices`` limits it to these documents (a document just issued).
    """
    only = list(invoices) if invoices is not None else None
    done: list[Allocation] = []
    for payment in credit_payments(customer).select_for_update().order_by("booking_date", "id"):
        done += _apply(payment, by=by, method=MatchMethod.CUSTOMER, only=only)
    if done:
        record(
            action="receivables.credit_applied",
            actor=by,
            customer=customer,
            after={"allocations": _allocation_notes(done)},
        )
    return done


def connect_signals() -> None:
    from billing.signals import document_issued

    document_issued.connect(on_document_issued, dispatch_uid="receivables.payments.credit")


def on_document_issued(sender: Any, invoice: Invoice, **kwargs: Any) -> None:
    """A new document is paid from the customer's credit at once, in the issuing transaction."""
    if invoice.kind == InvoiceKind.CREDIT_NOTE or invoice.amount_due <= ZERO:
        return
    if not credit_payments(invoice.customer_id).filter(currency=invoice.currency).exists():
        return
    apply_credit(customer=invoice.customer, invoices=[invoice.pk])


# --- Refunds and reversals -------------------------------------------------------------


@transaction.atomic
def refund(*, payment: Payment, amount: Decimal, by: User, note: str = "") -> LedgerEntry:
    """Pay back (part of) a payment's credit: a ledger entry that raises the balance."""
    locked = _lock(payment)
    if locked.kind != PaymentKind.PAYMENT or locked.customer_id is None:
        raise ServiceError(_("Only credit of a matched payment can be refunded."))
    amount = _check_amount(amount, locked.currency)
    if amount > locked.unallocated:
        raise ServiceError(
            _("Only %(credit)s %(code)s of this payment is credit.")
            % {"credit": locked.unallocated, "code": locked.currency}
        )
    prefix = f"refund:{locked.pk}:"
    count = LedgerEntry.objects.filter(cause__startswith=prefix).count()
    entry = LedgerEntry.objects.create(
        customer_id=locked.customer_id,
        kind=EntryKind.REFUND,
        entry_date=timezone.localdate(),
        amount=amount,
        currency=locked.currency,
        description=(note.strip() or locked.reference or locked.txn_id)[:200],
        cause=f"{prefix}{count + 1}",
    )
    before = snapshot(locked, ("unallocated",))
    locked.unallocated -= amount
    locked.save(update_fields=["unallocated"])
    record(
        action="receivables.refund",
        actor=by,
        customer=locked.customer,
        obj=locked,
        before=before,
        after={"unallocated": str(locked.unallocated), "refunded": str(amount)},
        note=note.strip(),
    )
    return entry


@transaction.atomic
def reverse_payment(*, payment: Payment, reason: str, by: User) -> Payment:
    """Undo a payment (returned, bounced, posted in error) with a negative reversal payment.

    The reversal's negative allocations undo the original's, the documents go
    back to open, the ledger gets the reversal entry and the original keeps
    no credit. A payment is reversed once.
    """
    locked = _lock(payment)
    reason = reason.strip()
    if not reason:
        raise ServiceError(_("Say why the payment is reversed."))
    if locked.kind != PaymentKind.PAYMENT:
        raise ServiceError(_("Only a payment can be reversed."))
    if is_reversed(locked):
        raise ServiceError(_("This payment is already reversed."))
    per_invoice = [
        (row["invoice"], row["total"])
        for row in locked.allocations.order_by("invoice").values("invoice")
        .annotate(total=Sum("amount"))
        if row["total"] != ZERO
    ]
    invoice_ids = [invoice_id for invoice_id, _total in per_invoice]
    lock_allocations()
    list(Invoice.objects.select_for_update().filter(pk__in=invoice_ids).values_list("pk"))
    actor = by if getattr(by, "pk", None) else None
    reversal = Payment.objects.create(
        channel=locked.channel,
        kind=PaymentKind.REVERSAL,
        source=REVERSAL_SOURCE,
        txn_id=str(locked.public_id),
        customer_id=locked.customer_id,
        booking_date=timezone.localdate(),
        amount=-locked.amount,
        currency=locked.currency,
        payer_name=locked.payer_name,
        payer_account=locked.payer_account,
        reference=locked.reference,
        text=reason[:500],
        reverses=locked,
        match_method=MatchMethod.MANUAL,
        unallocated=ZERO,
        created_by=actor,
    )
    Allocation.objects.bulk_create(
        Allocation(
            payment=reversal, invoice_id=invoice_id, amount=-total,
            method=MatchMethod.MANUAL, created_by=actor,
        )
        for invoice_id, total in per_invoice
    )
    before = snapshot(locked, ("unallocated",))
    locked.unallocated = ZERO
    locked.save(update_fields=["unallocated"])
    Suggestion.objects.filter(payment=locked).delete()
    if reversal.customer_id is not None:
        enter_payment(reversal)
    settle_invoices(invoice_ids)
    record(
        action="receivables.payment_reversed",
        actor=by,
        customer=locked.customer,
        obj=locked,
        before=before,
        after={"reversal": str(reversal.public_id), "amount": str(reversal.amount)},
        note=reason,
    )
    return reversal


# --- The suspense queue -------------------------------------------------------------------


def _learn_payer(payment: Payment, by: User | None) -> None:
    """Remember the account a matched payment came from as a key to its customer.

    An account already known for another customer is forgotten instead: a
    shared account must not match anyone automatically.
    """
    account = re.sub(r"\s+", "", payment.payer_account).upper()
    if not account or payment.customer_id is None:
        return
    known = PayerAccount.objects.select_for_update().filter(account=account).first()
    if known is None:
        with transaction.atomic():
            PayerAccount.objects.get_or_create(
                account=account, defaults={"customer_id": payment.customer_id}
            )
        return
    if known.customer_id != payment.customer_id:
        record(
            action="receivables.payer_account_forgotten",
            actor=by,
            customer=payment.customer,
            obj=known,
            before={"account": account, "customer": known.customer_id},
        )
        known.delete()


def _check_unmatched(payment: Payment) -> None:
    if payment.kind != PaymentKind.PAYMENT or is_reversed(payment):
        raise ServiceError(_("This payment cannot be matched any more."))
    if payment.unallocated <= ZERO:
        raise ServiceError(_("The payment has no money left to allocate."))


@transaction.atomic
def match_to_invoice(
    *, payment: Payment, invoice: Invoice, by: User, amount: Decimal | None = None
) -> list[Allocation]:
    """Staff confirm a payment pays this document (``amount``: only that much of it).

    What is left goes to the customer's other open items oldest first, then is credit.
    """
    locked = _lock(payment)
    _check_unmatched(locked)
    if invoice.currency != locked.currency:
        raise ServiceError(
            _("%(number)s is in %(code)s.")
            % {"number": invoice.document_number, "code": invoice.currency}
        )
    newly_matched = locked.customer_id is None
    done = _apply(locked, by=by, method=MatchMethod.MANUAL, first=invoice, first_amount=amount)
    if newly_matched:
        _learn_payer(locked, by)
        Suggestion.objects.filter(payment=locked).delete()
    record(
        action="receivables.payment_matched",
        actor=by,
        customer=invoice.customer,
        obj=locked,
        after={"invoice": invoice.document_number, "allocations": _allocation_notes(done)},
    )
    return done


@transaction.atomic
def match_to_customer(*, payment: Payment, customer: Customer, by: User) -> list[Allocation]:
    """Staff say whose an unmatched payment is: allocated oldest first, the rest is credit."""
    locked = _lock(payment)
    _check_unmatched(locked)
    if locked.customer_id is not None:
        raise ServiceError(_("This payment is already matched to a customer."))
    locked.customer = customer
    locked.match_method = MatchMethod.MANUAL
    locked.save(update_fields=["customer", "match_method"])
    enter_payment(locked)
    done = _apply(locked, by=by, method=MatchMethod.MANUAL)
    _learn_payer(locked, by)
    Suggestion.objects.filter(payment=locked).delete()
    record(
        action="receivables.payment_matched",
        actor=by,
        customer=customer,
        obj=locked,
        after={"customer": customer.number, "allocations": _allocation_notes(done)},
    )
    return done


_LEGAL_FORMS = {"sc", "srl", "sa", "sp", "zoo", "spa", "sro", "as", "ltd", "gmbh"}


def _name_words(text: str) -> list[str]:
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in plain if not unicodedata.combining(c)).casefold()
    plain = plain.replace("z o.o.", "zoo").replace("z o o", "zoo").replace("s.r.l", "srl")
    words = re.findall(r"[a-z0-9]+", plain)
    return sorted(w for w in words if w not in _LEGAL_FORMS)


def name_similarity(payer: str, customer: str) -> float:
    """0..1: how alike two names are, whatever the word order, accents and legal form."""
    left, right = _name_words(payer), _name_words(customer)
    if not left or not right:
        return 0.0
    return difflib.SequenceMatcher(None, " ".join(left), " ".join(right)).ratio()


@transaction.atomic
def compute_suggestions(*, payment: Payment) -> list[Suggestion]:
    """Store the likeliest documents an unmatched payment pays, for staff to confirm.

    Candidates: open items in the payment's currency whose open amount is
    the payment's and whose due date is within 30 days of its booking. The
    score (0–100) rises as the due date is closer and the payer's name is more
    like the customer's.
    """
    Suggestion.objects.filter(payment=payment).delete()
    if payment.customer_id is not None or payment.kind != PaymentKind.PAYMENT:
        return []
    if payment.unallocated <= ZERO:
        return []
    day = payment.booking_date
    candidates = (
        open_items()
        .filter(Q(open_amount=payment.unallocated), currency=payment.currency)
        .filter(due_date__gte=day - SUGGESTION_WINDOW, due_date__lte=day + SUGGESTION_WINDOW)
        .select_related("customer")
        .order_by("due_date", "id")[:SUGGESTION_CANDIDATES]
    )
    window = SUGGESTION_WINDOW.days
    scored: list[Suggestion] = []
    for item in candidates:
        assert item.due_date is not None
        days = abs((item.due_date - day).days)
        alike = name_similarity(payment.payer_name, item.customer.name)
        score = 50 + round(20 * (window - days) / window) + round(30 * alike)
        reason = _("same amount, due %(days)d days from the payment") % {"days": days}
        if alike >= 0.5:
            reason += "; " + _("payer name %(percent)d%% like the customer's") % {
                "percent": round(alike * 100)
            }
        scored.append(
            Suggestion(payment=payment, invoice=item, score=min(score, 100), reason=reason[:200])
        )
    scored.sort(key=lambda s: (-s.score, s.invoice.due_date or day, s.invoice.pk))
    kept = scored[:SUGGESTIONS_KEPT]
    Suggestion.objects.bulk_create(kept)
    return kept


def compute_all_suggestions(*, limit: int = 500) -> int:
    """Suggestions for the newest ``limit`` payments of the suspense queue; how many got one."""
    found = 0
    for payment in suspense_queue()[:limit]:
        if compute_suggestions(payment=payment):
            found += 1
    return found
