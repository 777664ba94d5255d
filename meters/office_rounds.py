"""Office pages for reading rounds: make, assign, follow, print and type back."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from meters import rounds
from meters.courier_forms import AssignForm, RoundActionForm, RoundForm
from meters.models import (
    ReadingRound,
    ReadingSource,
    RoundStatus,
    RoundStop,
    stop_open_condition,
)
from meters.services import ReadingNeedsConfirmation, ReadingRejected, record_reading
from portal.documents import render_pdf
from portal.office import OfficeRequest
from portal.services import ServiceError
from portal.staff import office_view

ROUNDS_PER_PAGE = 50


@office_view("meters.view_readinground")
@require_GET
def round_list(request: OfficeRequest) -> HttpResponse:
    # Queries: the count for the paginator, the page of rounds with courier, stop count
    # and the stops read or skipped (one subquery per row, in the same query).
    settled = (
        RoundStop.objects.filter(round=OuterRef("pk"))
        .exclude(stop_open_condition())
        .order_by()
        .values("round")
        .annotate(n=Count("pk"))
        .values("n")
    )
    rows = (
        ReadingRound.objects.select_related("courier")
        .annotate(
            stop_count=Count("stops"),
            settled_count=Coalesce(
                Subquery(settled, output_field=IntegerField()), Value(0)
            ),
        )
        .order_by("-period_start", "name")
    )
    page = Paginator(rows, ROUNDS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "meters/rounds/list.html", {"page": page})


@office_view("meters.add_readinground")
@require_http_methods(["GET", "POST"])
def round_create(request: OfficeRequest) -> HttpResponse:
    form = RoundForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            reading_round = rounds.create_round(
                name=data["name"],
                period_start=data["period_start"],
                period_end=data["period_end"],
                supply_points=form.supply_points,
                created_by=request.user,
                courier=data["courier"],
            )
        except ServiceError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("Round “%(name)s” created.") % {"name": reading_round.name})
            return redirect("meters-office:round-detail", public_id=reading_round.public_id)
    return render(request, "meters/rounds/create.html", {"form": form})


def _sheet_date(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _type_back(request: OfficeRequest, reading_round: ReadingRound) -> dict[str, Any]:
    """Store the indexes typed from a paper tally sheet; per-register messages for the rest."""
    if not request.user.has_perm("meters.add_reading"):
        raise PermissionDenied
    typed: dict[str, str] = {}
    errors: dict[str, str] = {}
    confirm_needed: set[str] = set()
    read_on = _sheet_date(request.POST.get("read_on"))
    if read_on is None:
        errors["read_on"] = _("Enter the date the sheet was filled in.")
        read_on = timezone.localdate()
    stored = 0
    for stop in rounds.stop_lines(reading_round, on=read_on):
        for line in stop.lines:
            key = str(line.register.public_id)
            raw = request.POST.get(f"value-{key}", "").strip().replace(",", ".")
            if not raw or line.reading is not None:
                continue
            typed[key] = raw
            if "read_on" in errors:
                continue
            try:
                value = Decimal(raw)
                if not value.is_finite() or value < 0:
                    raise InvalidOperation
            except InvalidOperation:
                errors[key] = _("Enter the index as a number.")
                continue
            read_at = timezone.make_aware(datetime.combine(read_on, time(12, 0)))
            try:
                record_reading(
                    register=line.register,
                    value=value,
                    read_at=read_at,
                    source=ReadingSource.COURIER,
                    entered_by=request.user,
                    round_stop=stop.stop,
                    confirmed_out_of_range=request.POST.get(f"confirm-{key}") == "on",
                )
            except ReadingNeedsConfirmation as needs:
                errors[key] = " ".join(f.message for f in needs.findings)
                confirm_needed.add(key)
            except ReadingRejected as rejected:
                errors[key] = " ".join(f.message for f in rejected.findings)
            else:
                typed.pop(key)
                stored += 1
    if stored:
        messages.success(request, _("%(count)d readings saved.") % {"count": stored})
        if rounds.complete_if_done(reading_round=reading_round, by=request.user):
            messages.success(request, _("Every stop is read or skipped: the round is done."))
    return {
        "typed": typed,
        "errors": errors,
        "confirm_needed": confirm_needed,
        "read_on": read_on,
        "stored": stored,
    }


@office_view("meters.view_readinground")
@require_http_methods(["GET", "POST"])
def round_detail(request: OfficeRequest, public_id: Any) -> HttpResponse:
    reading_round = get_object_or_404(
        ReadingRound.objects.select_related("courier", "created_by"), public_id=public_id
    )
    entry: dict[str, Any] = {
        "typed": {},
        "errors": {},
        "confirm_needed": set(),
        "read_on": timezone.localdate(),
    }
    assign_form = AssignForm(initial={"courier": reading_round.courier_id})
    failed = False
    if request.method == "POST" and "assign" in request.POST:
        if not request.user.has_perm("meters.change_readinground"):
            raise PermissionDenied
        assign_form = AssignForm(request.POST)
        if assign_form.is_valid():
            rounds.assign(
                reading_round=reading_round,
                courier=assign_form.cleaned_data["courier"],
                by=request.user,
            )
            messages.success(request, _("Round assigned."))
            return redirect("meters-office:round-detail", public_id=reading_round.public_id)
        failed = True
    elif request.method == "POST":
        entry = _type_back(request, reading_round)
        if not entry["errors"]:
            return redirect("meters-office:round-detail", public_id=reading_round.public_id)
        failed = True
    stops = rounds.stop_lines(reading_round, on=entry["read_on"])
    for stop in stops:
        for line in stop.lines:
            key = str(line.register.public_id)
            line.typed = entry["typed"].get(key, "")
            line.error = entry["errors"].get(key, "")
            line.needs_confirm = key in entry["confirm_needed"]
    return render(
        request,
        "meters/rounds/detail.html",
        {
            "round": reading_round,
            "stops": stops,
            "progress": rounds.progress(reading_round),
            "entry": entry,
            "assign_form": assign_form,
            "action_form": RoundActionForm(),
            "open_stops": (
                rounds.open_stops(reading_round)
                if reading_round.status != RoundStatus.DONE
                else []
            ),
        },
        status=422 if failed else 200,
    )


@office_view("meters.change_readinground")
@require_POST
def round_close(request: OfficeRequest, public_id: Any) -> HttpResponse:
    """The coordinator ends a round with stops still open (listed on the round page)."""
    reading_round = get_object_or_404(ReadingRound, public_id=public_id)
    form = RoundActionForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    try:
        left = rounds.close_round(reading_round=reading_round, by=request.user, note=note)
    except ServiceError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            _("Round closed with %(count)d stops not read.") % {"count": len(left)}
            if left
            else _("Round closed."),
        )
    return redirect("meters-office:round-detail", public_id=reading_round.public_id)


@office_view("meters.change_readinground")
@require_POST
def round_reopen(request: OfficeRequest, public_id: Any) -> HttpResponse:
    reading_round = get_object_or_404(ReadingRound, public_id=public_id)
    form = RoundActionForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    try:
        rounds.reopen_round(reading_round=reading_round, by=request.user, note=note)
    except ServiceError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("Round reopened."))
    return redirect("meters-office:round-detail", public_id=reading_round.public_id)


@office_view("meters.view_readinground")
@require_GET
def round_progress(request: OfficeRequest, public_id: Any) -> HttpResponse:
    # Queries: the round, the progress aggregate. Polled every 10 s by the detail page.
    reading_round = get_object_or_404(ReadingRound, public_id=public_id)
    return render(
        request,
        "meters/rounds/detail.html#progress",
        {
            "round": reading_round,
            "progress": rounds.progress(reading_round),
        },
    )


@office_view("meters.view_readinground")
@require_GET
def round_sheet(request: OfficeRequest, public_id: Any) -> HttpResponse:
    """The tally sheet (borderou) of a round, for couriers who read on paper."""
    reading_round = get_object_or_404(
        ReadingRound.objects.select_related("courier"), public_id=public_id
    )
    stops = rounds.stop_lines(reading_round, on=reading_round.period_end)
    pdf = render_pdf(
        "meters/tally_sheet.html",
        {
            "round": reading_round,
            "stops": stops,
            "printed_at": timezone.localtime(),
        },
    )
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="round-{reading_round.public_id}.pdf"'
    return response
