"""Matching and posting staged payment lines, set-wise, in the caller's transaction.

The order follows DOMAIN §3.5:

1. the structured reference as stored on the invoice (RF, VS/SS/KS, IUV,
   barcode payload, virtual account). A reference shared by several
   documents of one customer (a Polish virtual account) is a customer key;
2. a document number: the document part of an RF reference, or one written
   in the free text — when the reference also names a customer, it must agree;
3. the customer: the customer digits of a reference, or an account the
   customer paid from before (learned from earlier matched payments) —
   allocated to the customer's open items oldest first;
4. nothing: the payment waits in the suspense queue with suggestions
   (same open amount, due within 60 days of the payment).

Allocation is interval arithmetic, so one statement does it for every line:
each customer's open items lie end to end on a line ordered by due date, the
customer's payments lie end to end ordered by file line, and a payment pays an
item exactly where the two overlap. An invoice-level payment pays only its
invoice; what is left over stays on the payment as the customer's credit.

Reversals and returns (few) and collector settlements (one per day) are
handled row by row after the set-wise part.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils.translation import gettext as _

from portal.models import User
from portal.services import ServiceError
from receivables.allocation import lock_allocations, settle_invoices
from receivables.models import (
    Allocation,
    Channel,
    CollectorKind,
    CollectorSettlement,
    MatchMethod,
    Payment,
    PaymentImport,
    PaymentKind,
    SettlementStatus,
)

MATCH_WORK_MEM = "128MB"


class PostingFailed(ServiceError):
    """The file cannot be posted; the reason is kept on the file."""


@dataclass(frozen=True)
class Outcome:
    posted: int
    matched: int
    unmatched: int
    duplicates: int


_CUSTOMER_DIGITS = r"NULLIF(regexp_replace(c.number, '\D', '', 'g'), '')::numeric"
_DOC_KEY = r"upper(regexp_replace(i.document_number, '[^0-9A-Za-z]', '', 'g'))"

# One row per new payment line with what it matched. Lines posted before
# (same source and transaction id) are left out: an overlapping file.
_MATCH_SQL = f"""
CREATE TEMP TABLE rcv_match ON COMMIT DROP AS
WITH fresh AS (
    SELECT s.* FROM {{stage}} s
    WHERE s.kind = 'payment'
      AND NOT EXISTS (
          SELECT 1 FROM receivables_payment p WHERE p.source = %(source)s AND p.txn_id = s.txn_id
      )
),
refs AS (
    SELECT i.payment_reference AS key, min(i.id) AS invoice_id, min(i.customer_id) AS customer_id,
           count(*) AS n, count(DISTINCT i.customer_id) AS customers
    FROM billing_invoice i
    WHERE i.payment_reference IN (SELECT DISTINCT ref_key FROM fresh WHERE ref_key <> '')
      AND i.payment_reference <> '' AND i.status <> 'draft' AND i.kind <> 'credit_note'
    GROUP BY i.payment_reference
),
docs AS (
    -- One index probe per document number (LATERAL: never a scan of every invoice).
    SELECT k.doc_key AS key, x.invoice_id, x.customer_id, x.n
    FROM (SELECT DISTINCT doc_key FROM fresh WHERE doc_key <> '') k
    CROSS JOIN LATERAL (
        SELECT min(i.id) AS invoice_id, min(i.customer_id) AS customer_id, count(*) AS n
        FROM billing_invoice i
        WHERE {_DOC_KEY} = k.doc_key AND i.document_number <> ''
          AND i.status <> 'draft' AND i.kind <> 'credit_note'
    ) x
    WHERE x.n > 0
),
doc_customers AS (
    SELECT c.id, {_CUSTOMER_DIGITS} AS digits
    FROM portal_customer c WHERE c.id IN (SELECT customer_id FROM docs)
),
custs AS (
    SELECT k.cust_digits AS digits, x.customer_id, x.n
    FROM (SELECT DISTINCT cust_digits FROM fresh WHERE cust_digits IS NOT NULL) k
    CROSS JOIN LATERAL (
        SELECT min(c.id) AS customer_id, count(*) AS n
        FROM portal_customer c WHERE {_CUSTOMER_DIGITS} = k.cust_digits
    ) x
    WHERE x.n > 0
),
accounts AS (
    SELECT a.account, a.customer_id FROM receivables_payeraccount a
    WHERE a.account IN (SELECT DISTINCT payer_account FROM fresh WHERE payer_account <> '')
),
judged AS (
    SELECT f.*,
        CASE WHEN r.customers = 1 THEN r.customer_id END AS ref_customer,
        CASE WHEN r.customers = 1 AND r.n = 1 THEN r.invoice_id END AS ref_invoice,
        CASE WHEN d.n = 1 AND (f.cust_digits IS NULL OR dc.digits = f.cust_digits)
             THEN d.invoice_id END AS doc_invoice,
        CASE WHEN d.n = 1 AND (f.cust_digits IS NULL OR dc.digits = f.cust_digits)
             THEN d.customer_id END AS doc_customer,
        CASE WHEN cu.n = 1 THEN cu.customer_id END AS key_customer,
        a.customer_id AS account_customer
    FROM fresh f
    LEFT JOIN refs r ON r.key = f.ref_key AND f.ref_key <> ''
    LEFT JOIN docs d ON d.key = f.doc_key AND f.doc_key <> ''
    LEFT JOIN doc_customers dc ON dc.id = d.customer_id
    LEFT JOIN custs cu ON cu.digits = f.cust_digits
    LEFT JOIN accounts a ON a.account = f.payer_account AND f.payer_account <> ''
)
SELECT nextval(pg_get_serial_sequence('receivables_payment', 'id')) AS payment_id,
    j.line_no, j.txn_id, j.booking_date, j.value_date, j.amount, j.fee, j.currency,
    j.payer_name, j.payer_account, j.reference, j.text, j.office_code, j.settlement_ref,
    COALESCE(j.ref_invoice, CASE WHEN j.ref_customer IS NULL THEN j.doc_invoice END) AS invoice_id,
    COALESCE(j.ref_customer, j.doc_customer, j.key_customer, j.account_customer) AS customer_id,
    CASE
        WHEN j.ref_customer IS NOT NULL THEN 'reference'
        WHEN j.doc_customer IS NOT NULL AND NOT j.doc_from_text THEN 'reference'
        WHEN j.doc_customer IS NOT NULL THEN 'invoice_number'
        WHEN j.key_customer IS NOT NULL OR j.account_customer IS NOT NULL THEN 'customer'
        ELSE ''
    END AS method
FROM judged j
"""  # noqa: S608 - the f-string only inserts constants

# The open items the matched lines can pay, with what is open on each now.
_ITEMS_SQL = """
CREATE TEMP TABLE rcv_items ON COMMIT DROP AS
SELECT i.id, i.customer_id, i.due_date,
       i.amount_due - COALESCE(
           (SELECT sum(a.amount) FROM receivables_allocation a WHERE a.invoice_id = i.id), 0
       ) AS open
FROM billing_invoice i
WHERE i.status IN ('issued', 'partly_paid') AND i.amount_due > 0 AND i.kind <> 'credit_note'
  AND (
      i.id IN (SELECT invoice_id FROM rcv_match WHERE invoice_id IS NOT NULL)
      OR i.customer_id IN (
          SELECT customer_id FROM rcv_match WHERE invoice_id IS NULL AND customer_id IS NOT NULL
      )
  )
"""

# Invoice-level lines: each pays its own invoice, in file order, up to what is open.
_ALLOCATE_INVOICES_SQL = """
CREATE TEMP TABLE rcv_alloc ON COMMIT DROP AS
WITH pay AS (
    SELECT m.payment_id, m.invoice_id, m.amount, m.method,
           sum(m.amount) OVER (PARTITION BY m.invoice_id ORDER BY m.line_no) - m.amount AS lo
    FROM rcv_match m
    WHERE m.invoice_id IS NOT NULL AND m.amount > 0
)
SELECT pay.payment_id, it.id AS invoice_id, pay.method,
       LEAST(pay.lo + pay.amount, it.open) - pay.lo AS amount
FROM pay JOIN rcv_items it ON it.id = pay.invoice_id
WHERE pay.lo < it.open
"""

# Customer-level lines: oldest open items first, after the invoice-level ones took theirs.
_ALLOCATE_CUSTOMERS_SQL = """
INSERT INTO rcv_alloc (payment_id, invoice_id, method, amount)
WITH taken AS (
    SELECT invoice_id, sum(amount) AS amount FROM rcv_alloc GROUP BY invoice_id
),
left_open AS (
    SELECT it.id, it.customer_id, it.due_date, it.open - COALESCE(t.amount, 0) AS open
    FROM rcv_items it LEFT JOIN taken t ON t.invoice_id = it.id
),
items AS (
    SELECT id, customer_id, open,
           sum(open) OVER (PARTITION BY customer_id ORDER BY due_date, id) - open AS lo
    FROM left_open WHERE open > 0
),
pay AS (
    SELECT m.payment_id, m.customer_id, m.amount, m.method,
           sum(m.amount) OVER (PARTITION BY m.customer_id ORDER BY m.line_no) - m.amount AS lo
    FROM rcv_match m
    WHERE m.invoice_id IS NULL AND m.customer_id IS NOT NULL AND m.amount > 0
)
SELECT pay.payment_id, items.id, pay.method,
       LEAST(pay.lo + pay.amount, items.lo + items.open) - GREATEST(pay.lo, items.lo)
FROM pay JOIN items ON items.customer_id = pay.customer_id
    AND items.lo < pay.lo + pay.amount AND pay.lo < items.lo + items.open
"""

_INSERT_PAYMENTS_SQL = """
INSERT INTO receivables_payment (
    id, public_id, channel, kind, source, txn_id, payment_import_id, line_no, customer_id,
    booking_date, value_date, amount, fee, currency, payer_name, payer_account, reference,
    text, office_code, settlement_ref, reverses_id, match_method, unallocated,
    created_by_id, created_at
)
SELECT m.payment_id, gen_random_uuid(), %(channel)s, 'payment', %(source)s, m.txn_id,
       %(import_id)s, m.line_no, m.customer_id, m.booking_date, m.value_date, m.amount, m.fee,
       m.currency, m.payer_name, m.payer_account, m.reference, m.text, m.office_code,
       m.settlement_ref, NULL, m.method, m.amount - COALESCE(t.amount, 0), %(user_id)s, now()
FROM rcv_match m
LEFT JOIN (SELECT payment_id, sum(amount) AS amount FROM rcv_alloc GROUP BY payment_id) t
    ON t.payment_id = m.payment_id
ORDER BY m.line_no
"""

_INSERT_ALLOCATIONS_SQL = """
INSERT INTO receivables_allocation
    (payment_id, invoice_id, amount, method, created_by_id, created_at)
SELECT payment_id, invoice_id, amount, method, %(user_id)s, now() FROM rcv_alloc WHERE amount > 0
"""

_INSERT_LEDGER_SQL = """
INSERT INTO receivables_ledgerentry (
    customer_id, kind, entry_date, amount, currency, invoice_id, payment_id, description,
    cause, created_at
)
SELECT m.customer_id, 'payment', m.booking_date, -m.amount, m.currency, NULL, m.payment_id,
       left(COALESCE(NULLIF(m.reference, ''), m.text), 200), '', now()
FROM rcv_match m WHERE m.customer_id IS NOT NULL
"""

# An account that paid a customer's document by its reference is that customer's key later.
_LEARN_ACCOUNTS_SQL = """
INSERT INTO receivables_payeraccount (account, customer_id, learned_at)
SELECT DISTINCT ON (m.payer_account) m.payer_account, m.customer_id, now()
FROM rcv_match m
WHERE m.customer_id IS NOT NULL AND m.payer_account <> ''
  AND m.method IN ('reference', 'invoice_number')
ORDER BY m.payer_account, m.line_no
ON CONFLICT (account) DO NOTHING
"""

# Unmatched payments: open items with exactly this open amount, due within 60 days.
_SUGGEST_SQL = """
INSERT INTO receivables_suggestion (payment_id, invoice_id, score, reason)
SELECT m.payment_id, s.id, s.score, s.reason
FROM rcv_match m
CROSS JOIN LATERAL (
    SELECT i.id, (60 - abs(i.due_date - m.booking_date))::smallint AS score,
           %(reason)s AS reason
    FROM billing_invoice i
    WHERE i.status IN ('issued', 'partly_paid') AND i.amount_due = m.amount
      AND i.amount_due > 0 AND i.kind <> 'credit_note'
      AND i.due_date BETWEEN m.booking_date - 60 AND m.booking_date + 60
      AND NOT EXISTS (SELECT 1 FROM receivables_allocation a WHERE a.invoice_id = i.id)
    ORDER BY abs(i.due_date - m.booking_date), i.id
    LIMIT 3
) s
WHERE m.customer_id IS NULL AND m.amount > 0
"""


def post_staged(*, table: str, imp: PaymentImport, by: User | None) -> Outcome:
    """Post the staged lines of ``imp`` (call inside its posting transaction)."""
    collector = imp.collector
    source = collector.code
    channel = Channel.BANK if collector.kind == CollectorKind.BANK else Channel.COLLECTOR
    params: dict[str, Any] = {
        "source": source, "channel": channel, "import_id": imp.pk,
        "user_id": by.pk if by is not None else None,
        "reason": _("same amount, due near the payment date"),
    }
    lock_allocations()
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL work_mem = '{MATCH_WORK_MEM}'")
        cursor.execute("DROP TABLE IF EXISTS rcv_match, rcv_items, rcv_alloc")
        cursor.execute(_MATCH_SQL.format(stage=table), params)
        cursor.execute("ANALYZE rcv_match")
        cursor.execute(_ITEMS_SQL)
        cursor.execute(_ALLOCATE_INVOICES_SQL)
        cursor.execute(_ALLOCATE_CUSTOMERS_SQL)
        cursor.execute(_INSERT_PAYMENTS_SQL, params)
        posted = cursor.rowcount
        cursor.execute(_INSERT_ALLOCATIONS_SQL, params)
        cursor.execute(_INSERT_LEDGER_SQL)
        cursor.execute(_LEARN_ACCOUNTS_SQL)
        cursor.execute(_SUGGEST_SQL, params)
        cursor.execute("SELECT DISTINCT invoice_id FROM rcv_alloc")
        invoice_ids = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            "SELECT count(*) FILTER (WHERE customer_id IS NOT NULL), "
            "count(*) FILTER (WHERE customer_id IS NULL) FROM rcv_match"
        )
        matched, unmatched = cursor.fetchone()
        cursor.execute(
            f"SELECT count(*) FROM {table} s WHERE EXISTS (SELECT 1 FROM receivables_payment p "  # noqa: S608
            "WHERE p.source = %s AND p.txn_id = s.txn_id AND p.payment_import_id <> %s)",
            [source, imp.pk],
        )
        (duplicates,) = cursor.fetchone()
    settle_invoices(invoice_ids)
    if collector.kind != CollectorKind.BANK:
        _record_settlements(table=table, imp=imp)
    special = _post_special_lines(table=table, imp=imp, by=by, channel=channel)
    return Outcome(
        posted=posted + special, matched=matched, unmatched=unmatched, duplicates=duplicates
    )


def _record_settlements(*, table: str, imp: PaymentImport) -> None:
    """What the collector owes for the lines just posted, per settlement (or collection day)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO receivables_collectorsettlement
                (collector_id, reference, business_date, line_count, gross, fees, expected,
                 bank_payment_id, status, created_at)
            SELECT %(collector)s, COALESCE(NULLIF(m.settlement_ref, ''), %(day)s),
                   %(business_date)s,
                   count(*), sum(m.amount), sum(m.fee), sum(m.amount - m.fee), NULL, 'open', now()
            FROM rcv_match m
            GROUP BY COALESCE(NULLIF(m.settlement_ref, ''), %(day)s)
            ON CONFLICT (collector_id, reference) DO UPDATE SET
                line_count = receivables_collectorsettlement.line_count + EXCLUDED.line_count,
                gross = receivables_collectorsettlement.gross + EXCLUDED.gross,
                fees = receivables_collectorsettlement.fees + EXCLUDED.fees,
                expected = receivables_collectorsettlement.expected + EXCLUDED.expected
            """,
            {
                "collector": imp.collector_id,
                "day": imp.business_date.isoformat() if imp.business_date else "",
                "business_date": imp.business_date,
            },
        )


def _post_special_lines(
    *, table: str, imp: PaymentImport, by: User | None, channel: str
) -> int:
    """Reversals, returns and collector settlement credits: row by row (they are few)."""
    source = imp.collector.code
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT line_no, txn_id, booking_date, value_date, amount, fee, currency, payer_name, "  # noqa: S608
            f"payer_account, reference, text, kind, reverses FROM {table} s "
            "WHERE s.kind <> 'payment' AND NOT EXISTS (SELECT 1 FROM receivables_payment p "
            "WHERE p.source = %s AND p.txn_id = s.txn_id) ORDER BY line_no",
            [source],
        )
        rows = cursor.fetchall()
    posted = 0
    for (line_no, txn_id, booking_date, value_date, amount, fee, currency, payer_name,
         payer_account, reference, text, kind, reverses) in rows:
        original = (
            find_reversed(source, reverses=reverses, txn_id=txn_id, reference=reference,
                          amount=-amount)
            if kind != PaymentKind.SETTLEMENT else None
        )
        payment = Payment.objects.create(
            channel=channel, kind=kind, source=source, txn_id=txn_id, payment_import=imp,
            line_no=line_no, booking_date=booking_date, value_date=value_date, amount=amount,
            fee=fee, currency=currency, payer_name=payer_name, payer_account=payer_account,
            reference=reference, text=text, unallocated=Decimal("0.00"), created_by=by,
            reverses=original, customer_id=original.customer_id if original else None,
            match_method=MatchMethod.REFERENCE if original else "",
        )
        posted += 1
        if kind == PaymentKind.SETTLEMENT:
            reconcile_settlement(payment)
        elif original is not None:
            undo_payment(original=original, reversal=payment)
    return posted


def reconcile_settlement(payment: Payment) -> CollectorSettlement | None:
    """Link a collector's bank credit to the settlement it pays (by reference, else by amount)."""
    open_settlements = CollectorSettlement.objects.select_for_update().filter(
        collector__account__iexact=payment.payer_account, bank_payment=None
    ).order_by("business_date", "id")
    named = [s for s in open_settlements if s.reference and s.reference in payment.text]
    settlement = named[0] if named else next(
        (s for s in open_settlements if s.expected == payment.amount - payment.fee), None
    )
    if settlement is None:
        return None
    settlement.bank_payment = payment
    settlement.status = (
        SettlementStatus.RECONCILED
        if settlement.expected == payment.amount - payment.fee
        else SettlementStatus.DIFFERENCE
    )
    settlement.save(update_fields=["bank_payment", "status"])
    return settlement


def find_reversed(
    source: str, *, reverses: str, txn_id: str, reference: str, amount: Decimal
) -> Payment | None:
    """The payment a reversal or return undoes.

    By the id the line names, else by its own id without the ``/RVSL`` or
    ``/RTRN`` suffix (banks repeat the original's references), else the latest
    payment of the same reference and amount.
    """
    candidates = Payment.objects.select_for_update().filter(
        source=source, kind=PaymentKind.PAYMENT, customer__isnull=False
    )
    base = txn_id.rsplit("/", 1)[0] if txn_id.endswith(("/RVSL", "/RTRN")) else ""
    for key in (reverses, base):
        if key:
            found = candidates.filter(txn_id=key).first()
            if found is not None:
                return found
    for key in (reverses, reference):
        if key:
            found = candidates.filter(reference=key, amount=amount).order_by(
                "-booking_date", "-id"
            ).exclude(reversals__isnull=False).first()
            if found is not None:
                return found
    return None


def undo_payment(*, original: Payment, reversal: Payment) -> None:
    """Take back what ``reversal`` reverses of ``original``: its credit first, then allocations.

    Allocations are undone newest first by negative allocation rows; the
    invoices go back to issued or partly paid. Without a known original the
    reversal waits in the suspense queue (no customer) for staff.
    """
    from receivables.allocation import enter_payment

    undo = -reversal.amount  # a reversal of 100.00 carries -100.00
    from_credit = min(original.unallocated, undo)
    undo -= from_credit
    net_by_invoice: dict[int, Decimal] = {}
    methods: dict[int, str] = {}
    for invoice_id, amount, method in Allocation.objects.filter(payment=original).order_by(
        "-id"
    ).values_list("invoice_id", "amount", "method"):
        net_by_invoice[invoice_id] = net_by_invoice.get(invoice_id, Decimal("0")) + amount
        methods.setdefault(invoice_id, method)
    invoice_ids = []
    for invoice_id, net in net_by_invoice.items():
        if undo <= 0:
            break
        take = min(net, undo)
        if take <= 0:
            continue
        Allocation.objects.create(
            payment=original, invoice_id=invoice_id, amount=-take, method=methods[invoice_id]
        )
        invoice_ids.append(invoice_id)
        undo -= take
    if from_credit:
        Payment.objects.filter(pk=original.pk).update(
            unallocated=original.unallocated - from_credit
        )
    enter_payment(reversal)
    settle_invoices(invoice_ids)


