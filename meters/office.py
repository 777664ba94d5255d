"""Office pages for single readings: the coordinator's review of flagged readings."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from meters import services
from meters.models import Reading, ReadingStatus
from portal.services import ServiceError
from portal.staff import StaffRequest, office_view


@office_view("meters.view_reading")
@require_http_methods(["GET", "POST"])
def reading_review(request: StaffRequest, public_id: UUID) -> HttpResponse:
    reading = get_object_or_404(
        Reading.objects.select_related("register__meter__supply_point__customer", "entered_by"),
        public_id=public_id,
    )
    error = ""
    if request.method == "POST":
        if not request.user.has_perm("meters.change_reading"):
            return HttpResponse(status=403)
        decision = request.POST.get("decision")
        try:
            services.review_reading(
                reading=reading,
                accept=decision == "accept",
                reviewed_by=request.user,
                reason=request.POST.get("reason", ""),
            )
        except ServiceError as exc:
            error = str(exc)
        else:
            messages.success(request, _("The reading was reviewed."))
            return redirect("meters-office:reading-review", public_id=reading.public_id)
    register = reading.register
    history = (
        Reading.objects.filter(register=register).exclude(pk=reading.pk).order_by("-read_on")[:12]
    )
    return render(
        request,
        "meters/office/reading_review.html",
        {
            "reading": reading,
            "register": register,
            "supply_point": register.meter.supply_point,
            "history": history,
            "can_decide": reading.status == ReadingStatus.FLAGGED
            and request.user.has_perm("meters.change_reading"),
            "error": error,
            "reason": request.POST.get("reason", ""),
        },
    )
