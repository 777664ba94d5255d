"""Billing runs: price a period into drafts, review them, then issue and deliver in chunks.

    start_run()      staff choose a period and supply points → the run is PRICING and
                     tasks.price_run prices it (price_run() here)
    price_run()      per batch of supply points, set-wise (a fixed number of queries per
                     batch): the readings that bound the period, estimates where a
                     register has none, billing.pricing, then bulk-created DRAFT
                     invoices, or a BillingRunException saying why not → REVIEW
    reprice() / exclude()   staff settle the exceptions
    cancel()         until issuing starts: drafts deleted, → CANCELLED; a point left out
                     or cancelled has no invoice, so the next run of the period prices it
    issue_all()      → ISSUING; tasks.issue_run splits the drafts into chunks and
                     tasks.issue_chunk issues, renders, stores and delivers each invoice
    finish_if_complete()    when every invoice went out: print batches, → DONE

Consumption of a register = its index at the last reading used for billing on or
before the period's end, minus its index at the last such reading on or before the
period's start (after a dial wrap and × the multiplier). A meter installed or removed
inside the period is read from its installation to its removal. A register without
a reading in the period gets an estimated reading (meters.plausibility.estimate, source
"estimated") on the period's last day.

Restartable: every effect checks the state it changes in the transaction that changes
it (a draft is issued once, with its number and payment reference; a PDF is stored
once; a delivery row, unique per invoice, is written with its outbox message), so a
rerun or a worker killed mid-chunk repeats nothing and leaves no gap.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, Greatest, Least
from django.utils import timezone
from django.utils.translation import gettext as _
from psycopg import sql

from billing import pricing, services
from billing.models import (
    BillingRun,
    BillingRunException,
    BillingRunStatus,
    ComponentKind,
    DeliveryChannel,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceSeries,
    InvoiceStatus,
    RunExceptionKind,
)
from billing.references import ReferenceSettings, Scheme, reference_for
from meters import plausibility
from meters.models import (
    Reading,
    ReadingReason,
    ReadingSource,
    ReadingStatus,
    Register,
    SupplyPoint,
)
from portal.models import AuditEvent, Customer, User
from portal.services import ServiceError, record

log = logging.getLogger(__name__)

ZERO = Decimal("0")
# Supply points priced per transaction: bounds memory and the size of each IN (…) list.
PRICING_BATCH = 1000

T = TypeVar("T")


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------------------
# Choosing the supply points


def selected_supply_points(
    *, service: str, customers: Sequence[Customer] | QuerySet[Customer]
) -> QuerySet[SupplyPoint]:
    """All supply points of the service, or those of the chosen customers (of the service)."""
    points = SupplyPoint.objects.all()
    if service:
        points = points.filter(service=service)
    if customers:
        points = points.filter(customer__in=customers)
    return points


def run_supply_points(run: BillingRun) -> QuerySet[SupplyPoint]:
    return selected_supply_points(service=run.service, customers=run.customers.all())


def _default_series() -> InvoiceSeries:
    try:
        return InvoiceSeries.objects.default_for(InvoiceKind.series_kind(InvoiceKind.INVOICE))
    except InvoiceSeries.DoesNotExist:
        raise ServiceError(
            _("No default numbering series for invoices; add one in the configuration.")
        ) from None


@transaction.atomic
def start_run(
    *,
    name: str,
    period_start: date,
    period_end: date,
    service: str,
    customers: Sequence[Customer],
    created_by: User | None,
) -> BillingRun:
    """Create a run and queue its pricing (after commit)."""
    if period_end < period_start:
        raise ServiceError(_("The period ends before it starts."))
    if not service and not customers:
        raise ServiceError(_("Choose a service or some customers."))
    _default_series()
    count = selected_supply_points(service=service, customers=customers).count()
    if not count:
        raise ServiceError(_("No supply point matches this choice."))
    run = BillingRun.objects.create(
        name=name,
        period_start=period_start,
        period_end=period_end,
        service=service,
        status=BillingRunStatus.PRICING,
        supply_point_count=count,
        created_by=created_by,
    )
    if customers:
        run.customers.set(customers)
    record(
        action="billing.run_started",
        actor=created_by,
        obj=run,
        after={"name": name, "period_start": period_start, "period_end": period_end,
               "service": service, "supply_points": count},
    )
    from billing import tasks

    tasks.price_run.delay_on_commit(run.pk)  # type: ignore[attr-defined]
    return run


# ---------------------------------------------------------------------------
# Pricing


@dataclass(frozen=True, slots=True)
class _Register:
    id: int
    code: str
    supply_point_id: int
    installed_on: date
    removed_on: date | None
    integer_digits: int
    multiplier: Decimal


@dataclass(frozen=True, slots=True)
class _Bound:
    reading_id: int
    value: Decimal
    read_on: date


@dataclass(slots=True)
class PricingOutcome:
    invoices: int = 0
    exceptions: int = 0
    estimates: int = 0


def _bounds(
    registers: Sequence[_Register], *, start: date, end: date
) -> tuple[dict[int, _Bound], dict[int, _Bound]]:
    """The last reading used for billing on/before the start and the end of each
    register's window (the period cut to its meter's installation): two queries."""
    ids = [r.id for r in registers]
    usable = Reading.objects.valid().filter(register_id__in=ids, used_for_billing=True)
    window_start = Greatest(Value(start), F("register__meter__installed_on"))
    window_end = Least(Value(end), Coalesce(F("register__meter__removed_on"), Value(end)))
    result = []
    for limit in (window_start, window_end):
        rows = (
            usable.filter(read_on__lte=limit)
            .order_by("register_id", "-read_on", "-id")
            .distinct("register_id")
            .values_list("register_id", "id", "value", "read_on")
        )
        result.append({reg: _Bound(pk, value, on) for reg, pk, value, on in rows})
    return result[0], result[1]


def _movement(reg: _Register, start: Decimal, end: Decimal) -> Decimal:
    delta = end - start
    if delta < 0:  # the dial wrapped past its maximum
        delta += Decimal(10) ** reg.integer_digits
    return delta * reg.multiplier


def _estimate(
    registers: Sequence[_Register], *, end: date, starts: dict[int, _Bound]
) -> dict[int, Reading]:
    """Estimated readings on `end` for these registers (one query + one insert)."""
    if not registers:
        return {}
    contexts = plausibility.load_contexts([r.id for r in registers], before=end + timedelta(1))
    read_at = timezone.make_aware(datetime.combine(end, time(12, 0)))
    made: dict[int, Reading] = {}
    for reg in registers:
        ctx = contexts.get(reg.id)
        if ctx is None or ctx.previous_on is None or ctx.previous_on < starts[reg.id].read_on:
            continue
        estimated = plausibility.estimate(ctx, end)
        if estimated is None:
            continue
        index, consumption = estimated
        made[reg.id] = Reading(
            register_id=reg.id, value=index, read_at=read_at, read_on=end,
            source=ReadingSource.ESTIMATED, reason=ReadingReason.PERIODIC,
            status=ReadingStatus.ACCEPTED, consumption=consumption,
        )
    Reading.objects.bulk_create(made.values())
    return made


def price_supply_points(
    *,
    run: BillingRun,
    supply_point_ids: Sequence[int],
    vat: pricing.VatTable,
    series: InvoiceSeries,
) -> PricingOutcome:
    """Price one batch of a run's supply points into drafts or exceptions (set-wise).

    Call inside a transaction. Supply points that already have a draft or an
    exception in the run are skipped, so a rerun prices only what is left.
    """
    start, end = run.period_start, run.period_end
    done = set(
        Invoice.objects.filter(billing_run=run, supply_point_id__in=supply_point_ids)
        .values_list("supply_point_id", flat=True)
    ) | set(
        BillingRunException.objects.filter(run=run, supply_point_id__in=supply_point_ids)
        .values_list("supply_point_id", flat=True)
    )
    # Locked until the drafts are in: a run pricing the same points at the same time
    # waits here, then finds these drafts and reports the points as already invoiced.
    points = dict(
        SupplyPoint.objects.filter(pk__in=[i for i in supply_point_ids if i not in done])
        .order_by("pk").select_for_update(no_key=True)
        .values_list("id", "customer_id")
    )
    outcome = PricingOutcome()
    if not points:
        return outcome
    exceptions: list[BillingRunException] = []

    def problem(point_id: int, kind: str, message: str) -> None:
        exceptions.append(BillingRunException(
            run=run, supply_point_id=point_id, kind=kind, message=message[:500]
        ))

    # Invoiced already for an overlapping period, by another run or by hand; a draft
    # counts too (issued with this run's, the point would be invoiced twice). Nothing
    # else is remembered between runs: a point left out of a run, or priced by a
    # cancelled one (whose drafts are gone), is priced again here.
    invoiced: dict[int, str] = {}
    for point_id, status, number, run_name in (
        Invoice.objects.filter(
            supply_point_id__in=list(points),
            kind__in=[InvoiceKind.INVOICE, InvoiceKind.SETTLEMENT],
            period_start__lte=end, period_end__gte=start,
        )
        .exclude(status=InvoiceStatus.CANCELLED)
        .exclude(billing_run=run)
        .order_by("supply_point_id", F("issue_date").desc(nulls_last=True), "pk")
        .values_list("supply_point_id", "status", "document_number", "billing_run__name")
    ):
        if point_id in invoiced:
            continue
        if status != InvoiceStatus.DRAFT:
            invoiced[point_id] = _("Already invoiced for part of this period (%(number)s).") % {
                "number": number}
        elif run_name is not None:
            invoiced[point_id] = _(
                "The run “%(run)s” has a draft invoice for part of this period; issue or "
                "cancel that run first.") % {"run": run_name}
        else:
            invoiced[point_id] = _(
                "A draft invoice covers part of this period; issue or delete it first.")
    for point_id, message in invoiced.items():
        problem(point_id, RunExceptionKind.ALREADY_INVOICED, message)
        del points[point_id]

    registers = [
        _Register(*row)
        for row in Register.objects.filter(
            meter__supply_point_id__in=list(points), meter__installed_on__lte=end
        )
        .filter(Q(meter__removed_on=None) | Q(meter__removed_on__gte=start))
        .order_by("meter__supply_point_id", "code", "id")
        .values_list("id", "code", "meter__supply_point_id", "meter__installed_on",
                     "meter__removed_on", "integer_digits", "multiplier")
    ]
    by_point: dict[int, list[_Register]] = defaultdict(list)
    for reg in registers:
        by_point[reg.supply_point_id].append(reg)
    flagged = set(
        Reading.objects.filter(
            register_id__in=[r.id for r in registers], status=ReadingStatus.FLAGGED,
            read_on__gte=start, read_on__lte=end,
        ).values_list("register__meter__supply_point_id", flat=True)
    )
    starts, ends = _bounds(registers, start=start, end=end)

    # Registers without a reading in the period (and a meter still in place) get an estimate.
    to_estimate = [
        reg for reg in registers
        if reg.id in starts and reg.supply_point_id not in flagged
        and (reg.id not in ends or ends[reg.id].reading_id == starts[reg.id].reading_id)
        and (reg.removed_on is None or reg.removed_on >= end)
    ]
    estimates = _estimate(to_estimate, end=end, starts=starts)
    outcome.estimates = len(estimates)
    for reg_id, reading in estimates.items():
        ends[reg_id] = _Bound(reading.pk, reading.value, reading.read_on)

    # What each supply point consumed, per register code.
    consumptions: dict[int, dict[str, Decimal]] = {}
    for point_id in points:
        if point_id in flagged:
            problem(point_id, RunExceptionKind.FLAGGED_READING,
                    _("A reading of this period is waiting for review."))
            continue
        regs = by_point.get(point_id, [])
        if not regs:
            problem(point_id, RunExceptionKind.MISSING_READING,
                    _("No meter was installed during the period."))
            continue
        quantities: dict[str, Decimal] = defaultdict(lambda: ZERO)
        missing = []
        for reg in regs:
            first, last = starts.get(reg.id), ends.get(reg.id)
            if first is None or last is None or last.reading_id == first.reading_id:
                missing.append(reg.code)
                continue
            quantities[reg.code] += _movement(reg, first.value, last.value)
        if missing:
            problem(point_id, RunExceptionKind.MISSING_READING,
                    _("No reading and too little history to estimate one for register "
                      "%(codes)s.") % {"codes": ", ".join(missing)})
            continue
        consumptions[point_id] = dict(quantities)

    inputs = pricing.load_inputs(dict.fromkeys(consumptions, (start, end)))
    kinds: dict[int, str] = {}
    invoices: list[Invoice] = []
    lines: list[list[_LineRow]] = []
    for point_id, quantities in consumptions.items():
        data = inputs[point_id]
        try:
            if not data.currency:
                raise pricing.PricingError(_("No price list is assigned for the period."))
            priced = pricing.price_consumption(
                tariffs=data.tariffs,
                consumption=pricing.Consumption(start, end, quantities),
                currency=data.currency,
                vat=vat,
                agreements=data.agreements,
            )
        except pricing.PricingError as error:
            problem(point_id, RunExceptionKind.NO_TARIFF, str(error))
            continue
        if not priced.lines or priced.gross_total == 0:
            problem(point_id, RunExceptionKind.ZERO_AMOUNT, _("The invoice would be zero."))
            continue
        for tariff in data.tariffs:
            for component in tariff.components:
                if component.id is not None:
                    kinds[component.id] = component.kind
        invoices.append(Invoice(
            kind=InvoiceKind.INVOICE, series=series, customer_id=points[point_id],
            supply_point_id=point_id, period_start=start, period_end=end,
            currency=priced.currency, net_total=priced.net_total, vat_total=priced.vat_total,
            gross_total=priced.gross_total, prepaid_amount=ZERO,
            amount_due=priced.gross_total, billing_run=run,
        ))
        lines.append(_lines(priced, by_point[point_id], starts, ends, kinds))

    _insert_drafts(invoices, lines)
    BillingRunException.objects.bulk_create(exceptions)
    outcome.invoices, outcome.exceptions = len(invoices), len(exceptions)
    return outcome


# The columns a draft's line is copied into, in _LineRow order (all but the id).
LINE_COLUMNS = (
    "invoice_id", "position", "description", "component_id", "quantity", "unit", "unit_price",
    "net_amount", "vat_code", "vat_rate", "vat_amount", "register_id", "start_reading_id",
    "end_reading_id", "period_start", "period_end",
)
# A line as a row for COPY: LINE_COLUMNS without invoice_id (known once the drafts have ids).
_LineRow = tuple[Any, ...]


def _lines(
    priced: pricing.PricedInvoice,
    regs: Sequence[_Register],
    starts: dict[int, _Bound],
    ends: dict[int, _Bound],
    kinds: dict[int, str],
) -> list[_LineRow]:
    """Invoice lines; a consumption line names its register and readings when it has one."""
    result = []
    for position, line in enumerate(priced.lines, start=1):
        register = first = last = None
        if line.component_id is not None and kinds.get(line.component_id) == ComponentKind.PER_UNIT:
            matching = [r for r in regs if not line.register_code or r.code == line.register_code]
            if len(matching) == 1:
                register = matching[0].id
                first, last = starts[register].reading_id, ends[register].reading_id
        result.append((
            position, line.description[:300], line.component_id, line.quantity, line.unit,
            line.unit_price, line.net_amount, line.vat_code, line.vat_rate, line.vat_amount,
            register, first, last, line.period_start, line.period_end,
        ))
    return result


def _copy(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write rows with COPY: no model instances and no per-row SQL for thousands of rows."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _insert_drafts(invoices: Sequence[Invoice], lines: Sequence[Sequence[_LineRow]]) -> None:
    """Store the drafts and their lines: ids from the sequence, then two COPYs.

    What bulk_create() does for thousands of drafts (a model instance per line,
    every value prepared field by field into one huge INSERT) cost more than the
    pricing itself. The invoices' values still come from their fields (defaults,
    auto_now, the field's own conversion); the lines are plain tuples.
    """
    if not invoices:
        return
    unknown = {f.column for f in InvoiceLine._meta.concrete_fields} - {"id", *LINE_COLUMNS}
    if unknown:  # a field added to InvoiceLine must be added to LINE_COLUMNS too
        raise RuntimeError(f"LINE_COLUMNS misses {sorted(unknown)}")
    table = Invoice._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [table, len(invoices)],
        )
        ids = [row[0] for row in cursor.fetchall()]
    fields = Invoice._meta.concrete_fields
    rows = []
    for invoice, pk in zip(invoices, ids, strict=True):
        invoice.pk = pk
        rows.append([field.get_db_prep_save(field.pre_save(invoice, True), connection)
                     for field in fields])
        invoice._state.adding = False
        invoice._state.db = connection.alias
    _copy(table, [field.column for field in fields], rows)
    _copy(
        InvoiceLine._meta.db_table,
        LINE_COLUMNS,
        ((invoice.pk, *row) for invoice, its_lines in zip(invoices, lines, strict=True)
         for row in its_lines),
    )


def price_run(*, run: BillingRun) -> PricingOutcome:
    """Price every supply point of a PRICING run, batch by batch; then it is up for review."""
    total = PricingOutcome()
    if run.status != BillingRunStatus.PRICING:
        return total
    series = _default_series()
    vat = pricing.load_vat_table()
    ids = list(run_supply_points(run).order_by("pk").values_list("pk", flat=True))
    for batch in chunked(ids, PRICING_BATCH):
        with transaction.atomic():
            # The run's row stays locked while the batch is priced, so cancel() waits
            # for the batch and deletes its drafts; the batches after it stop here.
            if not BillingRun.objects.select_for_update().filter(
                pk=run.pk, status=BillingRunStatus.PRICING
            ).exists():
                run.refresh_from_db()
                return total
            outcome = price_supply_points(
                run=run, supply_point_ids=batch, vat=vat, series=series
            )
        total.invoices += outcome.invoices
        total.exceptions += outcome.exceptions
        total.estimates += outcome.estimates
    BillingRun.objects.filter(pk=run.pk, status=BillingRunStatus.PRICING).update(
        status=BillingRunStatus.REVIEW, priced_at=timezone.now(), supply_point_count=len(ids)
    )
    run.refresh_from_db()
    return total


def _locked_for_review(run: BillingRun) -> BillingRun:
    locked = BillingRun.objects.select_for_update().get(pk=run.pk)
    if locked.status != BillingRunStatus.REVIEW:
        raise ServiceError(_("The run is %(status)s; only a run under review can change.")
                           % {"status": locked.get_status_display()})
    return locked


@transaction.atomic
def reprice(*, run: BillingRun, supply_point: SupplyPoint, by: User | None) -> PricingOutcome:
    """Price one supply point of the run again (after a reading was reviewed or added)."""
    locked = _locked_for_review(run)
    Invoice.objects.filter(
        billing_run=locked, supply_point=supply_point, status=InvoiceStatus.DRAFT
    ).delete()
    BillingRunException.objects.filter(run=locked, supply_point=supply_point).delete()
    outcome = price_supply_points(
        run=locked, supply_point_ids=[supply_point.pk], vat=pricing.load_vat_table(),
        series=_default_series(),
    )
    record(action="billing.run_repriced", actor=by, customer=supply_point.customer, obj=locked,
           after={"supply_point": supply_point.code, "invoices": outcome.invoices,
                  "exceptions": outcome.exceptions})
    return outcome


@transaction.atomic
def exclude(*, run: BillingRun, supply_point: SupplyPoint, by: User | None) -> int:
    """Leave a supply point with problems out of the run; returns the exceptions settled."""
    locked = _locked_for_review(run)
    changed = BillingRunException.objects.open().filter(
        run=locked, supply_point=supply_point
    ).update(excluded_at=timezone.now(), excluded_by=by)
    if changed:
        record(action="billing.run_point_excluded", actor=by, customer=supply_point.customer,
               obj=locked, after={"supply_point": supply_point.code})
    return changed


# A run can be cancelled until its invoices start going out.
CANCELLABLE = frozenset({BillingRunStatus.DRAFT, BillingRunStatus.PRICING, BillingRunStatus.REVIEW})
CANCEL_ACTION = "billing.run_cancelled"


def can_cancel(run: BillingRun) -> bool:
    return run.status in CANCELLABLE


@transaction.atomic
def cancel(*, run: BillingRun, reason: str, by: User | None) -> BillingRun:
    """Cancel a run before it issues anything, with the reason in the audit trail.

    Its drafts are deleted (never an issued invoice), and so are the estimated
    readings only those drafts used and nothing was read after: a courier may
    still read that day, and a new run for the period estimates afresh. The
    supply points are free for the next run of the period.
    """
    reason = reason.strip()
    if not reason:
        raise ServiceError(_("Say why the run is cancelled."))
    locked = BillingRun.objects.select_for_update().get(pk=run.pk)
    if locked.status == BillingRunStatus.ISSUING:
        raise ServiceError(_(
            "The run is issuing its invoices and can no longer be cancelled. Let it finish, "
            "then correct single invoices with credit notes."
        ))
    if locked.status == BillingRunStatus.DONE:
        raise ServiceError(_(
            "The run is done and its invoices are issued; correct them with credit notes."
        ))
    if locked.status == BillingRunStatus.CANCELLED:
        raise ServiceError(_("The run is cancelled already."))
    before = locked.status
    drafts = Invoice.objects.filter(billing_run=locked, status=InvoiceStatus.DRAFT)
    estimates = list(
        Reading.objects.filter(
            source=ReadingSource.ESTIMATED,
            pk__in=InvoiceLine.objects.filter(invoice__in=drafts).values("end_reading_id"),
        ).values_list("pk", flat=True)
    )
    _count, deleted = drafts.delete()
    used = InvoiceLine.objects.filter(
        Q(start_reading=OuterRef("pk")) | Q(end_reading=OuterRef("pk"))
    )
    later = Reading.objects.valid().filter(
        register_id=OuterRef("register_id"), read_on__gt=OuterRef("read_on")
    )
    dropped, _per_model = (
        Reading.objects.filter(pk__in=estimates).exclude(Exists(used)).exclude(Exists(later))
        .delete()
    )
    locked.status = BillingRunStatus.CANCELLED
    locked.finished_at = timezone.now()
    locked.save(update_fields=["status", "finished_at"])
    record(
        action=CANCEL_ACTION, actor=by, obj=locked, note=reason,
        before={"status": before},
        after={"status": locked.status, "drafts_deleted": deleted.get(Invoice._meta.label, 0),
               "estimates_deleted": dropped},
    )
    return locked


def cancellation(run: BillingRun) -> AuditEvent | None:
    """Who cancelled the run, when and why; None for a run that is not cancelled."""
    if run.status != BillingRunStatus.CANCELLED:
        return None
    return (
        AuditEvent.objects.filter(
            action=CANCEL_ACTION, object_type=BillingRun._meta.label, object_id=str(run.pk),
            # served by the created_at index: the run's own events come after it
            created_at__gte=run.created_at,
        )
        .select_related("actor")
        .first()
    )


# ---------------------------------------------------------------------------
# Issuing, rendering, delivering


@transaction.atomic
def issue_all(*, run: BillingRun, by: User | None) -> BillingRun:
    """Start issuing the run's drafts (tasks after commit); every exception must be settled."""
    locked = _locked_for_review(run)
    open_count = locked.exceptions.open().count()
    if open_count:
        raise ServiceError(
            _("Exclude or re-price the supply points with problems first (%(count)d left).")
            % {"count": open_count}
        )
    if not locked.invoices.exists():
        raise ServiceError(_("The run has no invoice to issue."))
    locked.status = BillingRunStatus.ISSUING
    locked.issue_date = timezone.localdate()
    locked.issued_by = by
    locked.issue_started_at = timezone.now()
    locked.save(update_fields=["status", "issue_date", "issued_by", "issue_started_at"])
    record(action="billing.run_issue_started", actor=by, obj=locked,
           after={"issue_date": locked.issue_date})
    from billing import tasks

    tasks.issue_run.delay_on_commit(locked.pk)  # type: ignore[attr-defined]
    return locked


def resume(*, run: BillingRun) -> None:
    """Queue the unfinished work of an issuing run again (after a worker was lost)."""
    if run.status != BillingRunStatus.ISSUING:
        raise ServiceError(_("Only a run that is issuing can be resumed."))
    from billing import tasks

    tasks.issue_run.delay_on_commit(run.pk)  # type: ignore[attr-defined]


def pending_invoice_ids(run: BillingRun) -> list[int]:
    """Invoices of the run that have not gone out yet (drafts, or issued and not delivered)."""
    return list(
        Invoice.objects.filter(billing_run=run, delivery__isnull=True)
        .order_by("pk").values_list("pk", flat=True)
    )


def queue_chunks(*, run: BillingRun, chunk_size: int | None = None) -> int:
    """Queue one issue_chunk task per chunk of pending invoices; returns how many.

    A run is done when its last worker is: when the queue runs dry, the other
    workers wait for the chunks still being rendered. So a big run's last
    invoices (two chunks' worth) go in chunks a fifth of the size, and the
    workers finish within a few invoices of each other.
    """
    from billing import tasks

    if run.status != BillingRunStatus.ISSUING:
        return 0
    ids = pending_invoice_ids(run)
    if not ids:
        finish_if_complete(run=run)
        return 0
    size = chunk_size or settings.BILLING_RUN_CHUNK_SIZE
    tail_chunks = 2
    tail = size * tail_chunks if len(ids) >= size * tail_chunks * 2 else 0
    body, rest = ids[: len(ids) - tail], ids[len(ids) - tail :]
    chunks = [*chunked(body, size), *chunked(rest, max(1, size // 5))]
    for chunk in chunks:
        tasks.issue_chunk.delay(run.pk, list(chunk))
    return len(chunks)


def payment_reference_for(invoice: Invoice) -> str:
    """The reference a payer quotes: the operator's national one, else the RF reference."""
    from billing.operator import current_operator

    if invoice.amount_due <= 0 or invoice.due_date is None:
        return ""
    operator = current_operator()
    arguments: dict[str, Any] = {
        "customer_number": invoice.customer.number,
        "document_number": invoice.document_number,
        "amount": invoice.amount_due,
        "due_date": invoice.due_date,
        "settings": operator.reference_settings or ReferenceSettings(),
    }
    try:
        return reference_for(operator.reference_scheme, **arguments).value
    except ValueError as error:
        log.warning("%s: national reference impossible (%s); RF used", invoice, error)
        return reference_for(Scheme.RF, **arguments).value


def issue_one(*, run: BillingRun, invoice_id: int) -> Invoice:
    """Issue a draft of the run with its number and payment reference, in one transaction
    (the caller's, when there is one: process_chunk issues a whole chunk in one).

    An invoice issued already is returned as it is: a rerun never numbers twice.
    """
    with transaction.atomic(savepoint=False):
        invoice = (
            Invoice.objects.select_for_update(of=("self",)).select_related("customer")
            .get(pk=invoice_id, billing_run=run)
        )
        if not invoice.is_draft:
            return invoice
        issued = services.issue_invoice(
            invoice=invoice, issued_by=run.issued_by, issue_date=run.issue_date
        )
        reference = payment_reference_for(issued)
        if reference:
            issued.payment_reference = reference
            issued.save(update_fields=["payment_reference", "updated_at"])
        return issued


def process_chunk(*, run: BillingRun, invoice_ids: Sequence[int]) -> None:
    """Issue a chunk's drafts together, then render and store, and deliver each invoice
    (each step once).

    The chunk is issued in one transaction, in id order: the series' counter row is
    locked by the first number and held until the chunk's last, and the chunk costs
    one commit instead of one per invoice. Numbers stay gapless: a failure while
    issuing gives the whole chunk's numbers back; once committed, a rerun skips them.
    """
    from billing import delivery, documents

    if run.status != BillingRunStatus.ISSUING:
        return
    with transaction.atomic():
        invoices = [issue_one(run=run, invoice_id=pk) for pk in sorted(invoice_ids)]
    for invoice in invoices:
        documents.store_invoice_pdf(invoice)
        delivery.deliver_invoice(invoice=invoice)
    finish_if_complete(run=run)


def finish_if_complete(*, run: BillingRun) -> bool:
    """When every invoice of the run went out: print batches for the paper ones, DONE."""
    from billing import delivery

    with transaction.atomic():
        locked = BillingRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != BillingRunStatus.ISSUING:
            return locked.status == BillingRunStatus.DONE
        if Invoice.objects.filter(billing_run=locked, delivery__isnull=True).exists():
            return False
        delivery.make_print_batches(run=locked)
        locked.status = BillingRunStatus.DONE
        locked.finished_at = timezone.now()
        locked.save(update_fields=["status", "finished_at"])
    run.refresh_from_db()
    return True


# ---------------------------------------------------------------------------
# What the run page shows


@dataclass(frozen=True)
class Progress:
    total: int
    issued: int
    rendered: int
    delivered: int
    email: int
    paper: int
    # Before delivery: how the run would split by the customers' preferences.
    email_expected: int

    @property
    def percent(self) -> int:
        return round(100 * self.delivered / self.total) if self.total else 0

    @property
    def paper_expected(self) -> int:
        return self.total - self.email_expected


def progress(run: BillingRun) -> Progress:
    """Counts of the run's invoices at each step (one query)."""
    counts = Invoice.objects.filter(billing_run=run).aggregate(
        total=Count("pk"),
        issued=Count("pk", filter=~Q(status=InvoiceStatus.DRAFT)),
        rendered=Count("pk", filter=~Q(pdf="")),
        delivered=Count("delivery"),
        email=Count("delivery", filter=Q(delivery__channel=DeliveryChannel.EMAIL)),
        paper=Count("delivery", filter=Q(delivery__channel=DeliveryChannel.PAPER)),
        email_expected=Count(
            "pk", filter=Q(customer__consent_ebilling=True) & ~Q(customer__email="")
        ),
    )
    return Progress(**counts)


@dataclass(frozen=True)
class Totals:
    currency: str
    count: int
    net: Decimal
    vat: Decimal
    gross: Decimal


def totals(run: BillingRun) -> list[Totals]:
    """Count, net, VAT and gross of the run's invoices per currency (one query)."""
    rows = (
        Invoice.objects.filter(billing_run=run).order_by("currency").values("currency")
        .annotate(count=Count("pk"), net=Sum("net_total"), vat=Sum("vat_total"),
                  gross=Sum("gross_total"))
    )
    return [Totals(r["currency"], r["count"], r["net"], r["vat"], r["gross"]) for r in rows]


def postage_saved(progress: Progress) -> Decimal:
    """What the letters not sent by post saved (settings.BILLING_POSTAGE_PER_LETTER each)."""
    letters = progress.email if progress.delivered else progress.email_expected
    return settings.BILLING_POSTAGE_PER_LETTER * letters
