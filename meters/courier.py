"""Courier pages (/courier/): reading rounds on a phone, working offline.

The round page works without a network: a service worker (``sw.js``) keeps
the page and its assets, the page's script queues readings in IndexedDB with
an id made on the phone, and sends them to ``reading_sync`` when the
connection returns. ``record_reading`` stores a reading sent twice once.

Phones are shared: every courier page carries the courier's ``device_key``
(a response header for the service worker, a data attribute for the page's
script). The worker keeps pages of one key only, and the script keeps each
courier's queue apart and clears that courier's pages and sent readings at
logout, after sending (or, if the courier says so, keeping) what is queued.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import wraps
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.staticfiles import finders
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from meters import rounds
from meters.courier_forms import CourierReadingForm, SkipStopForm
from meters.models import ReadingRound, ReadingSource, Register, RoundStatus, RoundStop
from meters.services import ReadingNeedsConfirmation, ReadingRejected, record_reading
from portal.services import ServiceError
from portal.staff import StaffRequest, courier_view

DEVICE_KEY_HEADER = "X-Courier-Key"


def device_key(user: Any) -> str:
    """An opaque, stable key of ``user`` naming what a phone keeps for them."""
    return salted_hmac("guichet.courier.device", str(user.pk)).hexdigest()[:24]


def _kept_per_courier(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Mark a page with its courier's key: the service worker keeps it for that courier only.

    The browser's own HTTP cache keeps nothing: after logout, Back must not show the round.
    """

    @wraps(view)
    def wrapper(request: StaffRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response[DEVICE_KEY_HEADER] = device_key(request.user)
        response["Cache-Control"] = "private, no-store"
        return response

    return wrapper


def _my_round(request: StaffRequest, public_id: Any) -> ReadingRound:
    """A round given to this courier; another courier's round does not exist (404)."""
    return get_object_or_404(
        ReadingRound.objects.exclude(status=RoundStatus.DRAFT),
        public_id=public_id,
        courier=request.user,
    )


def _my_stop(request: StaffRequest, round_id: Any, register_id: Any) -> tuple[RoundStop, Register]:
    """The stop of one of this courier's rounds where ``register_id`` is installed."""
    stop = (
        RoundStop.objects.select_related("round", "supply_point")
        .exclude(round__status=RoundStatus.DRAFT)
        .filter(
            round__public_id=round_id,
            round__courier=request.user,
            supply_point__meters__removed_on=None,
            supply_point__meters__registers__public_id=register_id,
        )
        .first()
    )
    if stop is None:
        raise Http404
    register = Register.objects.select_related("meter").get(
        public_id=register_id, meter__supply_point=stop.supply_point, meter__removed_on=None
    )
    return stop, register


@courier_view
@require_GET
@_kept_per_courier
def home(request: StaffRequest) -> HttpResponse:
    my_rounds = (
        ReadingRound.objects.filter(courier=request.user, status=RoundStatus.ASSIGNED)
        .annotate(stop_count=Count("stops"))
        .order_by("period_start", "name")
    )
    return render(request, "courier/home.html", {"rounds": my_rounds})


@courier_view
@require_GET
@_kept_per_courier
def round_detail(request: StaffRequest, public_id: Any) -> HttpResponse:
    reading_round = _my_round(request, public_id)
    stops = rounds.stop_lines(reading_round, on=timezone.localdate())
    return render(
        request,
        "courier/round.html",
        {
            "round": reading_round,
            "stops": stops,
            "progress": rounds.progress(reading_round),
            "skip_form": SkipStopForm(),
        },
    )


@courier_view
@require_POST
def stop_skip(request: StaffRequest, public_id: Any, position: int) -> HttpResponse:
    """The courier could not read this stop's meters and says why."""
    reading_round = _my_round(request, public_id)
    stop = get_object_or_404(
        RoundStop.objects.select_related("supply_point__customer"),
        round=reading_round,
        position=position,
    )
    stop.round = reading_round
    form = SkipStopForm(request.POST)
    if form.is_valid():
        try:
            rounds.skip_stop(
                stop=stop,
                reason=form.cleaned_data["reason"],
                note=form.cleaned_data["note"],
                by=request.user,
            )
        except ServiceError as error:
            form.add_error(None, str(error))
        else:
            messages.success(
                request, _("Stop %(code)s marked as not read.") % {"code": stop.supply_point.code}
            )
            if reading_round.status == RoundStatus.DONE:
                messages.success(request, _("Round “%(name)s” is done.") % {"name": reading_round})
                return redirect("courier:home")
            return redirect("courier:round", public_id=reading_round.public_id)
    return render(
        request,
        "courier/skip.html",
        {"round": reading_round, "stop": stop, "skip_form": form},
        status=422,
    )


@dataclass
class Outcome:
    """What became of one submitted reading."""

    status: str  # stored | needs_confirmation | rejected | invalid
    messages: list[str] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=dict)
    low: Decimal | None = None
    high: Decimal | None = None
    reading_status: str = ""
    value: Decimal | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "messages": self.messages,
            "errors": self.errors,
            "low": None if self.low is None else str(self.low),
            "high": None if self.high is None else str(self.high),
            "reading_status": self.reading_status,
            "value": None if self.value is None else str(self.value),
        }


def _submit(
    request: StaffRequest, stop: RoundStop, register: Register, form: CourierReadingForm
) -> Outcome:
    if not form.is_valid():
        return Outcome(
            status="invalid",
            errors={name: [str(e) for e in errs] for name, errs in form.errors.items()},
            messages=[str(e) for errs in form.errors.values() for e in errs],
        )
    data = form.cleaned_data
    read_at: datetime = data["read_at"] or timezone.now()
    try:
        reading = record_reading(
            register=register,
            value=data["value"],
            read_at=read_at,
            source=ReadingSource.COURIER,
            entered_by=request.user,
            client_id=data["client_id"],
            round_stop=stop,
            photo=data["photo"],
            latitude=data["latitude"],
            longitude=data["longitude"],
            photo_taken_at=read_at if data["photo"] else None,
            confirmed_out_of_range=data["confirm"],
        )
    except ReadingNeedsConfirmation as needs:
        low, high = needs.expected_range if needs.expected_range else (None, None)
        return Outcome(
            status="needs_confirmation",
            messages=[f.message for f in needs.findings],
            low=low,
            high=high,
        )
    except ReadingRejected as rejected:
        return Outcome(status="rejected", messages=[f.message for f in rejected.findings])
    rounds.complete_if_done(reading_round=stop.round, by=request.user)
    return Outcome(status="stored", reading_status=reading.status, value=reading.value)


@courier_view
@require_POST
def reading_form(request: StaffRequest, public_id: Any, register_id: Any) -> HttpResponse:
    """The register's form posted without the page's script (no queue)."""
    stop, register = _my_stop(request, public_id, register_id)
    form = CourierReadingForm(request.POST, request.FILES)
    outcome = _submit(request, stop, register, form)
    if outcome.status == "stored":
        messages.success(request, _("Reading of %(register)s saved.") % {"register": register})
        return redirect("courier:round", public_id=stop.round.public_id)
    lines = rounds.stop_lines(stop.round, on=timezone.localdate())
    line = next(line for s in lines for line in s.lines if line.register.pk == register.pk)
    return render(
        request,
        "courier/reading.html",
        {
            "round": stop.round,
            "stop": stop,
            "line": line,
            "form": form,
            "outcome": outcome,
        },
        status=422,
    )


@courier_view
@require_POST
def reading_sync(request: StaffRequest) -> JsonResponse:
    """The phone's queue sends one reading: JSON, or multipart when it has a photo.

    Answers 200 stored (also for a reading already received), 409 when an
    out-of-range value needs the courier's confirmation, 422 rejected or
    invalid.
    """
    if request.content_type == "application/json":
        try:
            payload = json.loads(request.body)
        except ValueError:
            return JsonResponse({"status": "invalid", "messages": [_("Not JSON.")]}, status=400)
        if not isinstance(payload, dict):
            return JsonResponse({"status": "invalid", "messages": [_("Not JSON.")]}, status=400)
        files = None
    else:
        payload, files = request.POST.dict(), request.FILES
    try:
        round_id, register_id = UUID(str(payload.get("round"))), UUID(str(payload.get("register")))
    except ValueError as exc:
        raise Http404 from exc
    stop, register = _my_stop(request, round_id, register_id)
    outcome = _submit(request, stop, register, CourierReadingForm(payload, files))
    status = {"stored": 200, "needs_confirmation": 409}.get(outcome.status, 422)
    return JsonResponse(outcome.as_json(), status=status)


@never_cache
@require_GET
def service_worker(request: HttpRequest) -> HttpResponse:
    """Our service worker, served under /courier/ so that it may control the courier pages."""
    path = finders.find("courier/sw.js")
    if not path or isinstance(path, list):
        raise Http404
    with open(path, "rb") as script:
        response = HttpResponse(script.read(), content_type="text/javascript; charset=utf-8")
    response["Service-Worker-Allowed"] = "/courier/"
    return response
