"""Customer portal pages for supply points and readings (/supply-points/)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from meters import charts, plausibility, services
from meters.forms import SelfReadingForm
from meters.models import (
    Contract,
    Meter,
    Reading,
    ReadingSource,
    ReadingStatus,
    Register,
    SupplyPoint,
)
from portal import access
from portal.access import CustomerRequest, customer_view
from portal.documents import render_pdf
from portal.models import Customer
from portal.services import ServiceError

# Chart and history periods offered on the detail page, in months.
PERIODS = (12, 24, 36)
DEFAULT_PERIOD = 12
DASHBOARD_LIMIT = 5


class MetersRequest(CustomerRequest):
    htmx: HtmxDetails


@dataclass
class RegisterRow:
    """What the detail page shows for one register."""

    register: Register
    meter: Meter
    history: list[Reading] = field(default_factory=list)
    chart: str = ""
    previous_value: Decimal | None = None
    previous_on: date | None = None
    accepted_range: tuple[Decimal, Decimal] | None = None
    form: SelfReadingForm | None = None
    notice: str = ""
    notice_level: str = "success"


@customer_view()
@require_GET
def supply_point_list(request: MetersRequest) -> HttpResponse:
    points = list(access.scoped(request, SupplyPoint.objects.with_last_reading()))
    return render(request, "meters/supply_points.html", {"supply_points": points})


def _period(request: HttpRequest) -> int:
    try:
        months = int(request.GET.get("period", DEFAULT_PERIOD))
    except ValueError:
        return DEFAULT_PERIOD
    return months if months in PERIODS else DEFAULT_PERIOD


def _first_month(today: date, months: int) -> date:
    index = today.year * 12 + today.month - 1 - (months - 1)
    return date(index // 12, index % 12 + 1, 1)


def _can_self_read(request: MetersRequest, point: SupplyPoint) -> bool:
    return point.self_reading_allowed and request.membership.role in access.EDITORS


def _get_point(request: MetersRequest, public_id: Any) -> SupplyPoint:
    registers = Register.objects.order_by("code")
    by_date = Meter.objects.order_by("removed_on", "-installed_on").prefetch_related(
        Prefetch("registers", queryset=registers)
    )
    points = SupplyPoint.objects.all().prefetch_related(Prefetch("meters", queryset=by_date))
    return access.get_scoped(request, points, public_id=public_id)


def _register_rows(
    request: MetersRequest,
    point: SupplyPoint,
    *,
    months: int,
    forms: dict[int, SelfReadingForm] | None = None,
) -> list[RegisterRow]:
    """One row per register of the point, with history, chart and self-reading form.

    A fixed number of queries however many registers and readings there are:
    the readings of the period in one, then the plausibility contexts and rules.
    """
    today = timezone.localdate()
    first = _first_month(today, months)
    rows = [
        RegisterRow(register=register, meter=meter)
        for meter in point.meters.all()
        for register in meter.registers.all()
    ]
    if not rows:
        return rows
    by_register: dict[int, list[Reading]] = defaultdict(list)
    readings = Reading.objects.filter(
        register__in=[row.register for row in rows], read_on__gte=first
    ).order_by("read_on", "id")
    for reading in readings:
        by_register[reading.register_id].append(reading)
    editable = [row for row in rows if row.meter.removed_on is None]
    if _can_self_read(request, point) and editable:
        contexts = plausibility.load_contexts([row.register.pk for row in editable])
        rules = plausibility.active_rules()
        for row in editable:
            ctx = contexts.get(row.register.pk)
            if ctx is not None:
                row.previous_value, row.previous_on = ctx.previous_value, ctx.previous_on
                row.accepted_range = plausibility.expected_range(ctx, today, rules)
            row.form = (forms or {}).get(row.register.pk) or SelfReadingForm(register=row.register)
    month_list = charts.month_starts(first, today)
    for row in rows:
        history = by_register[row.register.pk]
        row.history = list(reversed(history))
        valid = [r for r in history if r.status != ReadingStatus.REJECTED]
        row.chart = charts.bar_chart(
            charts.monthly_consumption(row.register, valid, months=month_list),
            title=_("Consumption of %(register)s per month") % {"register": row.register.name},
            desc=_("%(unit)s used each month from %(start)s to %(end)s, meter %(serial)s.")
            % {
                "unit": row.register.unit,
                "start": month_list[0].strftime("%Y-%m"),
                "end": month_list[-1].strftime("%Y-%m"),
                "serial": row.meter.serial_number,
            },
            unit=row.register.unit,
            chart_id=f"chart-{row.register.public_id}",
        )
    return rows


def _detail_context(
    request: MetersRequest, point: SupplyPoint, rows: list[RegisterRow], months: int
) -> dict[str, Any]:
    return {
        "supply_point": point,
        "rows": rows,
        "contracts": list(point.contracts.order_by("-starts_on")),
        "can_self_read": _can_self_read(request, point),
        "period": months,
        "periods": PERIODS,
    }


@customer_view()
@require_GET
def supply_point_detail(request: MetersRequest, public_id: Any) -> HttpResponse:
    point = _get_point(request, public_id)
    months = _period(request)
    rows = _register_rows(request, point, months=months)
    return render(
        request, "meters/supply_point_detail.html", _detail_context(request, point, rows, months)
    )


@customer_view(roles=access.EDITORS)
@require_POST
def reading_create(request: MetersRequest, public_id: Any, register_id: Any) -> HttpResponse:
    """A self-reading: checked by the plausibility rules, explained when refused."""
    point = _get_point(request, public_id)
    register = access.get_scoped(
        request,
        Register.objects.select_related("meter"),
        via="meter__supply_point__customer",
        public_id=register_id,
        meter__supply_point=point,
        meter__removed_on=None,
    )
    if not point.self_reading_allowed:
        raise PermissionDenied
    form = SelfReadingForm(request.POST, register=register)
    notice, level = "", "success"
    if form.is_valid():
        value = form.cleaned_data["value"]
        try:
            reading = services.record_reading(
                register=register,
                value=value,
                read_at=timezone.now(),
                source=ReadingSource.CUSTOMER,
                entered_by=request.user,
            )
        except services.ReadingRejected as exc:
            rejecting = [f for f in exc.findings if f.severity == "reject"] or exc.findings
            for finding in rejecting:
                form.add_error("value", finding.message)
        except ServiceError as exc:
            form.add_error(None, str(exc))
        else:
            if reading.status == ReadingStatus.FLAGGED:
                notice, level = (
                    _(
                        "Thank you. Your reading is unusual, so our meter-reading team will review "
                        "it before it is used for billing."
                    ),
                    "warning",
                )
            else:
                notice = _("Thank you, your reading of %(value)s %(unit)s is saved.") % {
                    "value": reading.value.quantize(Decimal(1).scaleb(-register.decimals)),
                    "unit": register.unit,
                }
            if not request.htmx:
                getattr(messages, level)(request, notice)
                return redirect("meters:supply-point", public_id=point.public_id)
            form = SelfReadingForm(register=register)
    months = _period(request)
    rows = _register_rows(request, point, months=months, forms={register.pk: form})
    if request.htmx:
        row = next(row for row in rows if row.register.pk == register.pk)
        row.notice, row.notice_level = notice, level
        return render(
            request,
            "meters/supply_point_detail.html#self-reading",
            {"supply_point": point, "row": row},
        )
    return render(
        request, "meters/supply_point_detail.html", _detail_context(request, point, rows, months)
    )


@customer_view()
@require_GET
def contract_pdf(request: MetersRequest, public_id: Any) -> HttpResponse:
    """The contract's stored document, else one rendered now (and not stored)."""
    contract = access.get_scoped(
        request,
        Contract.objects.select_related("supply_point", "customer"),
        via="supply_point__customer",
        public_id=public_id,
    )
    filename = f"contract-{contract.number}.pdf"
    if contract.document:
        with contract.document.open("rb") as stored:
            content = stored.read()
    else:
        with translation.override(request.customer.language or translation.get_language()):
            content = render_pdf(
                "meters/contract.html",
                {
                    "contract": contract,
                    "supply_point": contract.supply_point,
                    "customer": contract.customer,
                },
            )
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- Extension points (registered in MetersConfig.ready) -------------------------


def dashboard_card_data(request: HttpRequest, customer: Customer) -> dict[str, Any]:
    # One more than shown tells whether to link to the full list.
    points = list(
        SupplyPoint.objects.for_customer(customer).with_last_reading()[: DASHBOARD_LIMIT + 1]
    )
    return {"supply_points": points[:DASHBOARD_LIMIT], "more": len(points) > DASHBOARD_LIMIT}


def office_section_data(request: HttpRequest, customer: Customer) -> dict[str, Any]:
    """Supply points with their current meters, registers and each register's last reading."""
    registers = Register.objects.order_by("code")
    current_meters = Meter.objects.filter(removed_on=None).prefetch_related(
        Prefetch("registers", queryset=registers)
    )
    points = list(
        SupplyPoint.objects.for_customer(customer)
        .with_last_reading()
        .prefetch_related(Prefetch("meters", queryset=current_meters, to_attr="current_meters"))
    )
    register_ids = [
        register.pk
        for point in points
        for meter in point.current_meters  # type: ignore[attr-defined]
        for register in meter.registers.all()
    ]
    last = {
        reading.register_id: reading
        for reading in Reading.objects.valid()
        .filter(register__in=register_ids)
        .order_by("register_id", "-read_on", "-id")
        .distinct("register_id")
    }
    for point in points:
        for meter in point.current_meters:  # type: ignore[attr-defined]
            for register in meter.registers.all():
                register.last_reading = last.get(register.pk)  # type: ignore[attr-defined]
    return {"supply_points": points}
