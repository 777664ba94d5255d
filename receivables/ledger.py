"""The customer ledger: entries, balance, open items and statements.

Issued documents enter the ledger through billing's ``document_issued``
signal, in the issuing transaction. Payments enter it when they are posted
(receivables.posting). Nothing here updates or deletes an entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import DecimalField, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from billing.models import Invoice, InvoiceKind, InvoiceStatus
from portal.models import Customer
from receivables.models import ZERO, EntryKind, LedgerEntry

OPEN_STATUSES = (InvoiceStatus.ISSUED, InvoiceStatus.PARTLY_PAID)


def connect_signals() -> None:
    from billing.signals import document_issued

    document_issued.connect(on_document_issued, dispatch_uid="receivables.ledger.issued")


def on_document_issued(sender: Any, invoice: Invoice, **kwargs: Any) -> None:
    enter_document(invoice)


def enter_document(invoice: Invoice) -> None:
    """The ledger entry of an issued invoice or credit note (once, whatever replays)."""
    credit = invoice.kind == InvoiceKind.CREDIT_NOTE
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO receivables_ledgerentry
                (customer_id, kind, entry_date, amount, currency, invoice_id,
                 payment_id, description, cause, created_at)
            VALUES (%s, %s, %s, %s, %s, %s, NULL, %s, '', now())
            ON CONFLICT DO NOTHING
            """,
            [
                invoice.customer_id,
                EntryKind.CREDIT_NOTE if credit else EntryKind.INVOICE,
                invoice.issue_date,
                invoice.amount_due,
                invoice.currency,
                invoice.pk,
                invoice.document_number,
            ],
        )


def balance(customer: Customer, *, on: date | None = None) -> Decimal:
    """What the customer owes (negative: their credit), at the end of ``on`` if given."""
    entries = LedgerEntry.objects.filter(customer=customer)
    if on is not None:
        entries = entries.filter(entry_date__lte=on)
    total = entries.aggregate(total=Sum("amount"))["total"]
    return total if total is not None else ZERO


def open_items(customer_ids: Any = None) -> QuerySet[Invoice]:
    """Payable documents with money still open, annotated with ``paid`` and ``open_amount``.

    ``customer_ids``: one customer, a list of ids or a queryset; None for all.
    """
    items = Invoice.objects.filter(
        status__in=OPEN_STATUSES, amount_due__gt=0
    ).exclude(kind=InvoiceKind.CREDIT_NOTE)
    if isinstance(customer_ids, Customer):
        items = items.filter(customer=customer_ids)
    elif customer_ids is not None:
        items = items.filter(customer__in=customer_ids)
    return items.annotate(
        paid=Coalesce(
            Sum("allocations__amount"), Value(ZERO),
            output_field=DecimalField(max_digits=14, decimal_places=2),
        ),
    ).annotate(open_amount=F("amount_due") - F("paid")).filter(~Q(open_amount=0))


@dataclass(frozen=True)
class StatementLine:
    entry: LedgerEntry
    running: Decimal


@dataclass(frozen=True)
class Statement:
    customer: Customer
    start: date
    end: date
    opening: Decimal
    lines: list[StatementLine]
    closing: Decimal
    currency: str

    @property
    def debits(self) -> Decimal:
        return sum((line.entry.amount for line in self.lines if line.entry.amount > 0), ZERO)

    @property
    def credits(self) -> Decimal:
        return sum((-line.entry.amount for line in self.lines if line.entry.amount < 0), ZERO)


def statement(customer: Customer, start: date, end: date) -> Statement:
    """The account from ``start`` to ``end``: opening, entries with running balance, closing."""
    opening = (
        LedgerEntry.objects.filter(customer=customer, entry_date__lt=start)
        .aggregate(total=Sum("amount"))["total"]
        or ZERO
    )
    running = opening
    lines = []
    currency = ""
    for entry in LedgerEntry.objects.filter(
        customer=customer, entry_date__gte=start, entry_date__lte=end
    ).select_related("invoice", "payment").order_by("entry_date", "id"):
        running += entry.amount
        currency = currency or entry.currency
        lines.append(StatementLine(entry=entry, running=running))
    return Statement(
        customer=customer, start=start, end=end, opening=opening, lines=lines,
        closing=running, currency=currency or _customer_currency(customer),
    )


def _customer_currency(customer: Customer) -> str:
    """The currency of the customer's last entry; "" for a customer with none yet."""
    last = LedgerEntry.objects.filter(customer=customer).order_by("-id").values_list(
        "currency", flat=True
    ).first()
    return last or ""
