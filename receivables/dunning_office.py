"""Office pages of dunning (/office/dunning/…): policies, approval queue, reconciliation, letters.

Policies and levels are read here and edited in the admin. Notices waiting
for approval are approved or rejected in bulk; notices whose sending has an
unknown outcome are marked sent or sent again, deliberately, one decision for
many. Letter batches are made and downloaded here.
"""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import FileResponse, Http404, HttpResponse, QueryDict
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy
from django.views.decorators.http import require_GET, require_POST

from portal.office import OfficeRequest
from portal.services import ServiceError
from portal.staff import office_view
from receivables import dunning, dunning_letters
from receivables.dunning_models import (
    DunningChannel,
    DunningLevel,
    DunningNotice,
    DunningPolicy,
    DunningRun,
    LetterBatch,
    NoticeStatus,
)

NOTICES_PER_PAGE = 100
BATCHES_PER_PAGE = 50
RECENT_RUNS = 10


class NoticeChoiceField(forms.Field):
    """The public ids of the ticked notices (checkboxes named ``notice``)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[uuid.UUID]:
        if not value:
            return []
        values = value if isinstance(value, list | tuple) else [value]
        try:
            return [uuid.UUID(str(item)) for item in values]
        except ValueError:
            raise ValidationError(_("Choose notices from the list."), code="invalid") from None

    def validate(self, value: Any) -> None:
        if self.required and not value:
            raise ValidationError(_("Tick at least one notice."), code="required")


class ApprovalForm(forms.Form):
    notice = NoticeChoiceField()
    decision = forms.ChoiceField(
        label=gettext_lazy("Decision"),
        choices=[("approve", pgettext_lazy("dunning decision", "Approve")),
                 ("reject", pgettext_lazy("dunning decision", "Reject"))],
    )
    reason = forms.CharField(
        label=gettext_lazy("Reason"), required=False, max_length=500,
        help_text=gettext_lazy("Needed to reject; the audit trail keeps it."),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("decision") == "reject" and not data.get("reason", "").strip():
            self.add_error("reason", _("Say why the notices are rejected."))
        return data


class ReconcileForm(forms.Form):
    notice = NoticeChoiceField()
    decision = forms.ChoiceField(
        label=gettext_lazy("Decision"),
        choices=[("mark_sent", gettext_lazy("It reached the customer: mark as sent")),
                 ("send_again", gettext_lazy("Send it again"))],
    )
    note = forms.CharField(label=gettext_lazy("Note"), required=False, max_length=500)


def _run_filter(request: OfficeRequest) -> DunningRun | None:
    value = request.GET.get("run") or request.POST.get("run") or ""
    try:
        public_id = uuid.UUID(value)
    except ValueError:
        return None
    return DunningRun.objects.filter(public_id=public_id).first()


def _notices(status: str, run: DunningRun | None) -> QuerySet[DunningNotice]:
    notices = DunningNotice.objects.filter(status=status)
    if run is not None:
        notices = notices.filter(run=run)
    return notices.select_related("customer", "level", "run", "outbox_message").order_by("pk")


def _page(queryset: QuerySet[Any], request: OfficeRequest, per_page: int) -> Page:
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


def _ticked(data: QueryDict | None) -> set[str]:
    return set(data.getlist("notice")) if data is not None else set()


# --- overview --------------------------------------------------------------------------------


@require_GET
@office_view("receivables.view_dunningpolicy")
def overview(request: OfficeRequest) -> HttpResponse:
    # Queries: the policies, their levels (prefetch), the recent runs, the counts per status.
    policies = DunningPolicy.objects.prefetch_related(
        Prefetch("levels", queryset=DunningLevel.objects.order_by("sequence"))
    ).order_by("-is_default", "name")
    counts = DunningNotice.objects.aggregate(
        pending=Count("pk", filter=Q(status=NoticeStatus.PENDING_APPROVAL)),
        unknown=Count("pk", filter=Q(status=NoticeStatus.UNKNOWN)),
        letters=Count("pk", filter=Q(status=NoticeStatus.APPROVED,
                                     channel__in=DunningChannel.letters(), letter_batch=None)),
    )
    return render(request, "receivables/dunning/overview.html", {
        "policies": policies,
        "runs": DunningRun.objects.order_by("-started_at", "-id")[:RECENT_RUNS],
        "counts": counts,
    })


# --- approval queue ------------------------------------------------------------------------


def _approvals_context(request: OfficeRequest, form: ApprovalForm,
                       ticked: set[str]) -> dict[str, Any]:
    run = _run_filter(request)
    return {
        "page": _page(_notices(NoticeStatus.PENDING_APPROVAL, run), request, NOTICES_PER_PAGE),
        "run": run,
        "form": form,
        "ticked": ticked,
    }


@require_GET
@office_view("receivables.view_dunningnotice")
def approvals(request: OfficeRequest) -> HttpResponse:
    # Queries: the run (when filtered), the paginator's COUNT, one page of notices with
    # their customer, level, run and message.
    context = _approvals_context(request, ApprovalForm(), set())
    return render(request, "receivables/dunning/approvals.html", context)


@require_POST
@office_view("receivables.change_dunningnotice")
def approvals_decide(request: OfficeRequest) -> HttpResponseBase:
    form = ApprovalForm(request.POST)
    if not form.is_valid():
        context = _approvals_context(request, form, _ticked(request.POST))
        template = "receivables/dunning/approvals.html"
        return render(request, f"{template}#queue" if request.htmx else template, context,
                      status=400)
    data = form.cleaned_data
    approve = data["decision"] == "approve"
    try:
        count = dunning.decide_notices(
            notice_ids=data["notice"], approve=approve, by=request.user,
            reason=data["reason"], request=request,
        )
    except ServiceError as error:
        messages.error(request, str(error))
    else:
        if approve:
            messages.success(request, _("%(count)d notices approved.") % {"count": count})
        else:
            messages.success(request, _("%(count)d notices rejected.") % {"count": count})
        if count < len(data["notice"]):
            messages.warning(request, _("Some notices were decided or cancelled meanwhile."))
    if request.htmx:
        context = {**_approvals_context(request, ApprovalForm(), set()), "fragment": True}
        return render(request, "receivables/dunning/approvals.html#queue", context)
    url = reverse("dunning-office:approvals")
    run = _run_filter(request)
    return redirect(f"{url}?run={run.public_id}" if run else url)


# --- reconciliation list ---------------------------------------------------------------------


def _reconciliation_context(request: OfficeRequest, form: ReconcileForm,
                            ticked: set[str]) -> dict[str, Any]:
    return {
        "page": _page(_notices(NoticeStatus.UNKNOWN, None), request, NOTICES_PER_PAGE),
        "form": form,
        "ticked": ticked,
    }


@require_GET
@office_view("receivables.view_dunningnotice")
def reconciliation(request: OfficeRequest) -> HttpResponse:
    # Queries: the paginator's COUNT, one page of notices with customer, level, run, message.
    context = _reconciliation_context(request, ReconcileForm(), set())
    return render(request, "receivables/dunning/reconciliation.html", context)


@require_POST
@office_view("receivables.change_dunningnotice")
def reconciliation_decide(request: OfficeRequest) -> HttpResponseBase:
    form = ReconcileForm(request.POST)
    if not form.is_valid():
        context = _reconciliation_context(request, form, _ticked(request.POST))
        template = "receivables/dunning/reconciliation.html"
        return render(request, f"{template}#list" if request.htmx else template, context,
                      status=400)
    data = form.cleaned_data
    if data["decision"] == "mark_sent":
        count = dunning.mark_sent(notice_ids=data["notice"], by=request.user, note=data["note"],
                                  request=request)
        messages.success(request, _("%(count)d notices marked as sent.") % {"count": count})
    else:
        count = dunning.send_again(notice_ids=data["notice"], by=request.user,
                                   note=data["note"], request=request)
        messages.success(request, _("%(count)d notices queued again.") % {"count": count})
    if count < len(data["notice"]):
        messages.warning(
            request, _("Some notices were decided meanwhile, or are letters (mark them sent).")
        )
    if request.htmx:
        context = {**_reconciliation_context(request, ReconcileForm(), set()), "fragment": True}
        return render(request, "receivables/dunning/reconciliation.html#list", context)
    return redirect("dunning-office:reconciliation")


# --- letters ---------------------------------------------------------------------------------


@require_GET
@office_view("receivables.view_letterbatch")
def letter_batches(request: OfficeRequest) -> HttpResponse:
    # Queries: the letters waiting (COUNT), the paginator's COUNT, one page of batches.
    waiting = DunningNotice.objects.filter(
        status=NoticeStatus.APPROVED, channel__in=DunningChannel.letters(), letter_batch=None
    ).count()
    page = _page(LetterBatch.objects.order_by("-created_at", "-id"), request, BATCHES_PER_PAGE)
    return render(request, "receivables/dunning/letter_batches.html",
                  {"page": page, "waiting": waiting})


@require_POST
@office_view("receivables.add_letterbatch")
def letter_batch_make(request: OfficeRequest) -> HttpResponseBase:
    batch = dunning_letters.make_letter_batch(by=request.user, request=request)
    if batch is None:
        messages.warning(request, _("No letter is ready for a batch."))
    else:
        messages.success(request, _("A batch of %(count)d letters is ready to print.")
                         % {"count": batch.letter_count})
    return redirect("dunning-office:letter-batches")


def _file(stored: Any, filename: str, content_type: str) -> FileResponse:
    if not stored:
        raise Http404
    return FileResponse(stored.open("rb"), as_attachment=True, filename=filename,
                        content_type=content_type)


@require_GET
@office_view("receivables.view_letterbatch")
def letter_batch_pdf(request: OfficeRequest, public_id: uuid.UUID) -> FileResponse:
    batch = get_object_or_404(LetterBatch, public_id=public_id)
    return _file(batch.merged_pdf, f"dunning-letters-{batch.created_at:%Y%m%d-%H%M}.pdf",
                 "application/pdf")


@require_GET
@office_view("receivables.view_letterbatch")
def letter_batch_list(request: OfficeRequest, public_id: uuid.UUID) -> FileResponse:
    batch = get_object_or_404(LetterBatch, public_id=public_id)
    return _file(batch.list_csv, f"dunning-letters-{batch.created_at:%Y%m%d-%H%M}.csv",
                 "text/csv; charset=utf-8")


@require_GET
@office_view("receivables.view_dunningnotice")
def notice_letter(request: OfficeRequest, public_id: uuid.UUID) -> FileResponse:
    notice = get_object_or_404(DunningNotice, public_id=public_id)
    return _file(notice.letter_pdf, f"dunning-{notice.public_id}.pdf", "application/pdf")
