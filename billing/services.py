"""Billing workflows: drafts, issue with a gapless number, credit notes, advances."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from billing import pricing, signals
from billing.models import (
    AdvanceInstalment,
    AdvanceSchedule,
    BillingRun,
    Frequency,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceSeries,
    InvoiceStatus,
    ScheduleStatus,
)
from billing.numbering import next_number
from meters.models import SupplyPoint
from portal.models import Customer, User
from portal.services import ServiceError, record, snapshot

ZERO = Decimal("0")
AUDIT_FIELDS = (
    "document_number", "kind", "status", "currency", "net_total", "vat_total", "gross_total",
    "prepaid_amount", "amount_due", "issue_date", "due_date",
)
# Advance requests ask for a payment; the settlement invoice is the tax document.
ADVANCE_VAT_CODE = "outside_scope"


def _series_for(kind: str) -> InvoiceSeries:
    try:
        return InvoiceSeries.objects.default_for(InvoiceKind.series_kind(kind))
    except InvoiceSeries.DoesNotExist:
        raise ServiceError(
            _("No default numbering series for %(kind)s; add one in the configuration.")
            % {"kind": InvoiceKind(kind).label}
        ) from None


@transaction.atomic
def create_draft_invoice(
    *,
    customer: Customer,
    priced: pricing.PricedInvoice,
    kind: str = InvoiceKind.INVOICE,
    supply_point: SupplyPoint | None = None,
    series: InvoiceSeries | None = None,
    billing_run: BillingRun | None = None,
    prepaid_amount: Decimal = ZERO,
    note: str = "",
) -> Invoice:
    """Store a priced document as a draft (no number yet) with its lines.

    prepaid_amount: advances paid that the document deducts (settlements).
    """
    if not priced.lines:
        raise ServiceError(_("There is nothing to invoice."))
    if series is None:
        series = _series_for(kind)
    prepaid = pricing.round_money(prepaid_amount, priced.currency)
    invoice = Invoice.objects.create(
        kind=kind,
        series=series,
        customer=customer,
        supply_point=supply_point,
        period_start=priced.period_start,
        period_end=priced.period_end,
        currency=priced.currency,
        net_total=priced.net_total,
        vat_total=priced.vat_total,
        gross_total=priced.gross_total,
        prepaid_amount=prepaid,
        amount_due=priced.gross_total - prepaid,
        billing_run=billing_run,
        note=note[:300],
    )
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice,
            position=position,
            description=line.description[:300],
            component_id=line.component_id,
            quantity=line.quantity,
            unit=line.unit,
            unit_price=line.unit_price,
            net_amount=line.net_amount,
            vat_code=line.vat_code,
            vat_rate=line.vat_rate,
            vat_amount=line.vat_amount,
            period_start=line.period_start,
            period_end=line.period_end,
        )
        for position, line in enumerate(priced.lines, start=1)
    )
    return invoice


@transaction.atomic
def issue_invoice(
    *,
    invoice: Invoice,
    issued_by: User | None,
    issue_date: date | None = None,
    due_date: date | None = None,
) -> Invoice:
    """Give a draft its number and dates and make it final.

    The number comes from the series' counter for the issue year, under its
    row lock, in this transaction: gapless and unique.
    """
    # Lock the invoice only; the series' counter row is the one lock issuers share.
    locked = (
        Invoice.objects.select_for_update(of=("self",)).select_related("series")
        .get(pk=invoice.pk)
    )
    if not locked.is_draft:
        raise ServiceError(
            _("%(number)s is already issued.") % {"number": locked.document_number}
        )
    net = vat = ZERO
    count = 0
    for line_net, line_vat in locked.lines.values_list("net_amount", "vat_amount"):
        net += line_net
        vat += line_vat
        count += 1
    if not count:
        raise ServiceError(_("A document without lines cannot be issued."))
    if (net, vat) != (locked.net_total, locked.vat_total):
        raise ServiceError(_("The totals do not match the lines; price the draft again."))
    day = issue_date or timezone.localdate()
    series = locked.series
    locked.number = next_number(series, day.year)
    locked.document_number = series.format_number(day.year, locked.number)
    locked.issue_date = day
    locked.due_date = due_date or day + timedelta(days=series.payment_days)
    locked.status = InvoiceStatus.ISSUED
    locked.issued_at = timezone.now()
    locked.issued_by = issued_by
    locked.save()
    signals.document_issued.send(sender=Invoice, invoice=locked)
    record(
        action="billing.invoice_issued",
        actor=issued_by,
        customer=locked.customer,
        obj=locked,
        after=snapshot(locked, AUDIT_FIELDS),
    )
    return locked


@transaction.atomic
def cancel_by_credit_note(*, invoice: Invoice, reason: str, by: User | None) -> Invoice:
    """Cancel an issued, unpaid invoice with a credit note that negates every line.

    The credit note is issued at once in the credit-note series; the invoice
    itself is never edited, only marked cancelled.
    """
    original = Invoice.objects.select_for_update().get(pk=invoice.pk)
    reason = reason.strip()
    if not reason:
        raise ServiceError(_("Say why the invoice is cancelled."))
    if original.kind == InvoiceKind.CREDIT_NOTE:
        raise ServiceError(_("A credit note cannot be cancelled by another credit note."))
    if original.status == InvoiceStatus.DRAFT:
        raise ServiceError(_("A draft is not cancelled by a credit note; delete it instead."))
    if original.status != InvoiceStatus.ISSUED:
        raise ServiceError(
            _("%(number)s is %(status)s; only an unpaid invoice can be cancelled.")
            % {"number": original.document_number, "status": original.get_status_display()}
        )
    credit = Invoice.objects.create(
        kind=InvoiceKind.CREDIT_NOTE,
        series=_series_for(InvoiceKind.CREDIT_NOTE),
        customer_id=original.customer_id,
        supply_point_id=original.supply_point_id,
        period_start=original.period_start,
        period_end=original.period_end,
        currency=original.currency,
        net_total=-original.net_total,
        vat_total=-original.vat_total,
        gross_total=-original.gross_total,
        prepaid_amount=-original.prepaid_amount,
        amount_due=-original.amount_due,
        credited_invoice=original,
        note=reason[:300],
    )
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=credit,
            position=line.position,
            description=line.description,
            component_id=line.component_id,
            quantity=-line.quantity,
            unit=line.unit,
            unit_price=line.unit_price,
            net_amount=-line.net_amount,
            vat_code=line.vat_code,
            vat_rate=line.vat_rate,
            vat_amount=-line.vat_amount,
            register_id=line.register_id,
            start_reading_id=line.start_reading_id,
            end_reading_id=line.end_reading_id,
            period_start=line.period_start,
            period_end=line.period_end,
        )
        for line in original.lines.all()
    )
    credit = issue_invoice(invoice=credit, issued_by=by)
    original.status = InvoiceStatus.CANCELLED
    original.save(update_fields=["status", "updated_at"])
    record(
        action="billing.invoice_cancelled",
        actor=by,
        customer=original.customer,
        obj=original,
        before={"status": InvoiceStatus.ISSUED},
        after={"status": original.status, "credit_note": credit.document_number},
        note=reason,
    )
    return credit


@transaction.atomic
def create_advance_schedule(
    *,
    customer: Customer,
    supply_point: SupplyPoint,
    frequency: str,
    amount: Decimal,
    currency: str,
    first_due_date: date,
    count: int,
    created_by: User | None,
    settlement: Invoice | None = None,
) -> AdvanceSchedule:
    """A new advance schedule with its instalments; it replaces the active one."""
    amount = pricing.round_money(amount, currency)
    if amount <= 0:
        raise ServiceError(_("An advance must be more than zero."))
    if count <= 0:
        raise ServiceError(_("A schedule needs at least one instalment."))
    AdvanceSchedule.objects.select_for_update().filter(
        supply_point=supply_point, status=ScheduleStatus.ACTIVE
    ).update(status=ScheduleStatus.SUPERSEDED)
    schedule = AdvanceSchedule.objects.create(
        customer=customer,
        supply_point=supply_point,
        frequency=Frequency(frequency),
        amount=amount,
        currency=currency,
        first_due_date=first_due_date,
        count=count,
        settlement=settlement,
    )
    AdvanceInstalment.objects.bulk_create(
        AdvanceInstalment(schedule=schedule, sequence=n, due_date=day, amount=amount)
        for n, day in enumerate(schedule.due_dates(), start=1)
    )
    record(
        action="billing.advance_schedule_created",
        actor=created_by,
        customer=customer,
        obj=schedule,
        after=snapshot(schedule, ("frequency", "amount", "currency", "first_due_date", "count")),
    )
    return schedule


@transaction.atomic
def request_advance(*, instalment: AdvanceInstalment, issued_by: User | None) -> Invoice:
    """Issue the payment request of an instalment (once: asking again returns it)."""
    locked = (
        AdvanceInstalment.objects.select_for_update(of=("self",))
        .select_related("schedule", "invoice")
        .get(pk=instalment.pk)
    )
    if locked.invoice is not None:
        return locked.invoice
    schedule = locked.schedule
    # The document speaks the customer's language, whoever issues it.
    with translation.override(schedule.customer.language):
        description = _("Advance payment %(n)s of %(count)s") % {
            "n": locked.sequence, "count": schedule.count,
        }
        unit = pgettext("invoice unit", "instalment")
    line = pricing.Line(
        description=description,
        quantity=Decimal("1.000"),
        unit=unit,
        unit_price=locked.amount,
        net_amount=locked.amount,
        vat_code=ADVANCE_VAT_CODE,
        vat_rate=ZERO,
    )
    priced = pricing.total_lines(
        [line], currency=schedule.currency,
        period_start=locked.due_date, period_end=locked.due_date,
    )
    draft = create_draft_invoice(
        customer=schedule.customer,
        priced=priced,
        kind=InvoiceKind.ADVANCE_REQUEST,
        supply_point=schedule.supply_point,
    )
    issued = issue_invoice(
        invoice=draft, issued_by=issued_by,
        due_date=max(locked.due_date, timezone.localdate()),
    )
    locked.invoice = issued
    locked.save(update_fields=["invoice"])
    return issued
