"""Office pages of billing runs (/office/billing/…): list, start, review, issue, print batches."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import FileResponse, Http404, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseClientRefresh

from billing import runs
from billing.models import BillingRun, PrintBatch
from meters.models import Service, SupplyPoint
from portal.models import Customer
from portal.office import OfficeRequest
from portal.services import ServiceError
from portal.staff import office_view

RUNS_PER_PAGE = 50
INVOICES_PER_PAGE = 50
MAX_CUSTOMERS = 1000


class RunForm(forms.Form):
    name = forms.CharField(label=pgettext_lazy("name of a billing run", "Name"), max_length=100)
    period_start = forms.DateField(
        label=gettext_lazy("Period from"), widget=forms.DateInput(attrs={"type": "date"})
    )
    period_end = forms.DateField(
        label=gettext_lazy("Period to"), widget=forms.DateInput(attrs={"type": "date"})
    )
    service = forms.ChoiceField(
        label=gettext_lazy("Service"), required=False,
        choices=[("", gettext_lazy("Every service"))] + list(Service.choices),
    )
    customers = forms.CharField(
        label=gettext_lazy("Only these customers"), required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy(
            "Customer numbers, separated by spaces, commas or new lines. "
            "Leave empty for every customer of the service."
        ),
    )

    def clean_customers(self) -> list[Customer]:
        numbers = [n for n in re.split(r"[\s,;]+", self.cleaned_data["customers"]) if n]
        if len(numbers) > MAX_CUSTOMERS:
            raise forms.ValidationError(
                _("At most %(max)d customers; choose a service instead.") % {"max": MAX_CUSTOMERS}
            )
        found = {c.number: c for c in Customer.objects.filter(number__in=numbers)}
        unknown = [n for n in numbers if n not in found]
        if unknown:
            raise forms.ValidationError(
                _("No customer has the number %(numbers)s.") % {"numbers": ", ".join(unknown)}
            )
        return list(found.values())

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("period_start"), data.get("period_end")
        if start and end and end < start:
            self.add_error("period_end", _("The period ends before it starts."))
        if not data.get("service") and not data.get("customers") and "customers" in data:
            self.add_error("service", _("Choose a service or some customers."))
        return data


class CancelForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Why is the run cancelled?"), max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy(
            "Kept in the audit trail. The draft invoices are deleted; the supply points "
            "are priced again by the next run for the period."
        ),
    )


def _run(public_id: Any) -> BillingRun:
    return get_object_or_404(BillingRun, public_id=public_id)


def _detail_url(run: BillingRun) -> str:
    return reverse("billing-office:run-detail", args=[run.public_id])


def _detail_context(
    run: BillingRun, *, page: Any = None, cancel_form: CancelForm | None = None
) -> dict[str, Any]:
    progress = runs.progress(run)
    invoices = (
        run.invoices.select_related("customer", "supply_point")
        .order_by("document_number", "supply_point__code", "pk")
    )
    return {
        "run": run,
        "invoices": Paginator(invoices, INVOICES_PER_PAGE).get_page(page),
        "can_cancel": runs.can_cancel(run),
        "cancel_form": cancel_form or CancelForm(),
        "cancellation": runs.cancellation(run),
        "progress": progress,
        "totals": runs.totals(run),
        "exceptions": list(
            run.exceptions.select_related("supply_point__customer", "excluded_by")
            .order_by("excluded_at", "supply_point__code", "kind")
        ),
        "open_exceptions": run.exceptions.open().count(),
        "postage_saved": runs.postage_saved(progress),
        "batches": list(run.print_batches.order_by("sequence")),
    }


@require_GET
@office_view("billing.view_billingrun")
def run_list(request: OfficeRequest) -> HttpResponse:
    # Queries: the paginator's COUNT, one page of runs with their invoice count.
    rows = BillingRun.objects.annotate(invoice_count=Count("invoices")).order_by("-created_at")
    page = Paginator(rows, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "billing/office/run_list.html", {"page": page})


@require_http_methods(["GET", "POST"])
@office_view("billing.add_billingrun")
def run_create(request: OfficeRequest) -> HttpResponse:
    form = RunForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            run = runs.start_run(
                name=data["name"], period_start=data["period_start"],
                period_end=data["period_end"], service=data["service"],
                customers=data["customers"], created_by=request.user,
            )
        except ServiceError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("The run “%(name)s” is being priced.") % {"name": run.name})
            return redirect(_detail_url(run))
    return render(request, "billing/office/run_create.html", {"form": form},
                  status=400 if form.errors else 200)


@require_GET
@office_view("billing.view_billingrun")
def run_detail(request: OfficeRequest, public_id: Any) -> HttpResponse:
    # Queries: the run, the progress counts, the totals, the problems, the open problems,
    # the print batches, the paginator's count and one page of invoices (with customer
    # and supply point); for a cancelled run, the audit event that says why.
    run = _run(public_id)
    context = _detail_context(run, page=request.GET.get("page"))
    return render(request, "billing/office/run_detail.html", context)


@require_GET
@office_view("billing.view_billingrun")
def run_progress(request: OfficeRequest, public_id: Any) -> HttpResponse:
    # Queries: the run, the progress counts.
    run = _run(public_id)
    if request.htmx and not run.is_running:
        return HttpResponseClientRefresh()  # the run moved on: show its new state whole
    return render(request, "billing/office/run_detail.html#progress",
                  {"run": run, "progress": runs.progress(run)})


def _after_action(request: OfficeRequest, run: BillingRun) -> HttpResponseBase:
    if request.htmx:
        run.refresh_from_db()
        context = {**_detail_context(run), "fragment": True}
        return render(request, "billing/office/run_detail.html#review", context)
    return redirect(_detail_url(run))


def _point(run: BillingRun, point_id: Any) -> SupplyPoint:
    point = get_object_or_404(SupplyPoint.objects.select_related("customer"), public_id=point_id)
    if not run.exceptions.filter(supply_point=point).exists():
        raise Http404
    return point


@require_POST
@office_view("billing.change_billingrun")
def point_exclude(request: OfficeRequest, public_id: Any, point_id: Any) -> HttpResponseBase:
    run = _run(public_id)
    point = _point(run, point_id)
    try:
        runs.exclude(run=run, supply_point=point, by=request.user)
    except ServiceError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("%(code)s is left out of the run.") % {"code": point.code})
    return _after_action(request, run)


@require_POST
@office_view("billing.change_billingrun")
def point_reprice(request: OfficeRequest, public_id: Any, point_id: Any) -> HttpResponseBase:
    run = _run(public_id)
    point = _point(run, point_id)
    try:
        outcome = runs.reprice(run=run, supply_point=point, by=request.user)
    except ServiceError as error:
        messages.error(request, str(error))
    else:
        if outcome.invoices:
            messages.success(request, _("%(code)s is priced now.") % {"code": point.code})
        else:
            messages.warning(request, _("%(code)s still has a problem.") % {"code": point.code})
    return _after_action(request, run)


@require_POST
@office_view("billing.issue_invoice")
def run_issue(request: OfficeRequest, public_id: Any) -> HttpResponseBase:
    run = _run(public_id)
    try:
        runs.issue_all(run=run, by=request.user)
    except ServiceError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("The invoices are being issued and sent."))
    url = _detail_url(run)
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_POST
@office_view("billing.issue_invoice")
def run_resume(request: OfficeRequest, public_id: Any) -> HttpResponseBase:
    run = _run(public_id)
    try:
        runs.resume(run=run)
    except ServiceError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("The unfinished invoices were queued again."))
    url = _detail_url(run)
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_POST
@office_view("billing.change_billingrun")
def run_cancel(request: OfficeRequest, public_id: Any) -> HttpResponseBase:
    run = _run(public_id)
    form = CancelForm(request.POST)
    if form.is_valid():
        try:
            runs.cancel(run=run, reason=form.cleaned_data["reason"], by=request.user)
        except ServiceError as error:
            messages.error(request, str(error))
        else:
            messages.success(request, _("The run is cancelled; its draft invoices are deleted."))
        url = _detail_url(run)
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    # Say what is missing next to the field and keep what was typed.
    context = {**_detail_context(run, cancel_form=form), "fragment": bool(request.htmx)}
    if request.htmx:
        return render(request, "billing/office/run_detail.html#review", context)
    return render(request, "billing/office/run_detail.html", context, status=400)


def _batch_file(public_id: Any, field: str, content_type: str) -> FileResponse:
    batch = get_object_or_404(PrintBatch.objects.select_related("run"), public_id=public_id)
    stored = getattr(batch, field)
    if not stored:
        raise Http404
    name = f"{batch.run.name}-{batch.sequence:03d}"
    name = re.sub(r"[^\w.-]+", "-", name).strip("-") or "batch"
    extension = "pdf" if field == "merged_pdf" else "csv"
    return FileResponse(stored.open("rb"), as_attachment=True,
                        filename=f"{name}.{extension}", content_type=content_type)


@require_GET
@office_view("billing.view_billingrun")
def batch_pdf(request: OfficeRequest, public_id: Any) -> FileResponse:
    return _batch_file(public_id, "merged_pdf", "application/pdf")


@require_GET
@office_view("billing.view_billingrun")
def batch_list(request: OfficeRequest, public_id: Any) -> FileResponse:
    return _batch_file(public_id, "list_csv", "text/csv; charset=utf-8")
