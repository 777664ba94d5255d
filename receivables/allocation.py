"""Applying payments to invoices, one at a time or set-wise, and what follows from it.

Every path that allocates money (file posting, manual entry, staff matching,
reversals) ends in :func:`settle_invoices`, which moves the invoices' status
(issued → partly paid → paid, and back on a reversal) and tells listeners
(dunning cancels pending notices of paid items) through ``allocations_changed``.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from django.db import connection, transaction
from django.utils.translation import gettext as _

from billing.models import Invoice
from portal.models import User
from portal.services import ServiceError
from receivables import signals
from receivables.ledger import open_items
from receivables.models import ZERO, Allocation, EntryKind, MatchMethod, Payment, PaymentKind

# Status from the allocated sum: paid when nothing is open, partly paid when some is.
SETTLE_SQL = """
WITH paid AS (
    SELECT i.id, i.amount_due, COALESCE(SUM(a.amount), 0) AS paid
    FROM billing_invoice i
    LEFT JOIN receivables_allocation a ON a.invoice_id = i.id
    WHERE i.id = ANY(%s) AND i.status IN ('issued', 'partly_paid', 'paid')
    GROUP BY i.id, i.amount_due
)
UPDATE billing_invoice i
SET status = CASE
        WHEN paid.paid >= paid.amount_due THEN 'paid'
        WHEN paid.paid > 0 THEN 'partly_paid'
        ELSE 'issued'
    END,
    updated_at = now()
FROM paid
WHERE i.id = paid.id
  AND i.status <> CASE
        WHEN paid.paid >= paid.amount_due THEN 'paid'
        WHEN paid.paid > 0 THEN 'partly_paid'
        ELSE 'issued'
    END
"""


# One key for every path that allocates money: a file being posted, a clerk's
# allocation, a reversal. They take turns, so open amounts computed inside one
# are never stale. (A file posts in seconds; a clerk's allocation in milliseconds.)
ALLOCATION_LOCK = 0x52435641  # "RCVA"


def lock_allocations() -> None:
    """Take the allocation lock until the end of the current transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ALLOCATION_LOCK])


def settle_invoices(invoice_ids: Iterable[int]) -> None:
    """Bring the status of these invoices in line with their allocations; notify listeners."""
    ids = sorted(set(invoice_ids))
    if not ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(SETTLE_SQL, [ids])
    signals.allocations_changed.send(sender=Allocation, invoice_ids=ids)


def enter_payment(payment: Payment) -> None:
    """The ledger entry of a posted payment or reversal (once)."""
    kind = EntryKind.PAYMENT if payment.kind == PaymentKind.PAYMENT else EntryKind.REVERSAL
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO receivables_ledgerentry
                (customer_id, kind, entry_date, amount, currency, invoice_id,
                 payment_id, description, cause, created_at)
            VALUES (%s, %s, %s, %s, %s, NULL, %s, %s, '', now())
            ON CONFLICT DO NOTHING
            """,
            [
                payment.customer_id, kind, payment.booking_date, -payment.amount,
                payment.currency, payment.pk, (payment.reference or payment.text)[:200],
            ],
        )


@transaction.atomic
def allocate(
    *, payment: Payment, invoice: Invoice, amount: Decimal | None = None,
    method: str = MatchMethod.MANUAL, by: User | None = None,
) -> Allocation:
    """Apply (part of) a payment's unallocated money to one open invoice of its customer."""
    lock_allocations()
    locked = Payment.objects.select_for_update().get(pk=payment.pk)
    # Lock the document, then read what is open on it (FOR UPDATE cannot go with GROUP BY).
    list(Invoice.objects.select_for_update().filter(pk=invoice.pk).values_list("pk"))
    item = open_items().filter(pk=invoice.pk).first()
    if item is None:
        raise ServiceError(_("This document has nothing left to pay."))
    if locked.customer_id is not None and locked.customer_id != item.customer_id:
        raise ServiceError(_("The payment belongs to another customer."))
    available = locked.unallocated
    open_amount: Decimal = item.open_amount  # type: ignore[attr-defined]  # annotated
    amount = min(available, open_amount) if amount is None else amount
    if amount <= ZERO:
        raise ServiceError(_("The payment has no money left to allocate."))
    if amount > available:
        raise ServiceError(
            _("Only %(available)s of the payment is not allocated yet.") % {"available": available}
        )
    if amount > open_amount:
        raise ServiceError(
            _("Only %(open)s is open on %(number)s.")
            % {"open": open_amount, "number": item.document_number}
        )
    allocation = Allocation.objects.create(
        payment=locked, invoice=item, amount=amount, method=method,
        created_by=by if by is not None and by.pk else None,
    )
    newly_matched = locked.customer_id is None
    locked.customer_id = item.customer_id
    locked.unallocated = available - amount
    locked.match_method = locked.match_method or method
    locked.save(update_fields=["customer", "unallocated", "match_method"])
    if newly_matched:
        enter_payment(locked)
    settle_invoices([item.pk])
    return allocation
