"""Office pages for payment files (/office/receivables/files/…).

Upload (choose the bank account or collector) → the file is stored, hashed
and checked by a Celery task while the page polls → the page shows the
totals, how many lines were posted before (an overlapping file) and, for a
broken file, every bad line with its number → post (a second task matches
and posts it in one transaction) or discard.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseClientRefresh
from django_htmx.middleware import HtmxDetails

from portal.services import ServiceError
from portal.staff import StaffRequest, office_view
from receivables import imports
from receivables.models import Collector, ImportStatus, PaymentImport

FILES_PER_PAGE = 50
UNDER_WAY = (ImportStatus.UPLOADED, ImportStatus.POSTING)


class OfficeRequest(StaffRequest):
    htmx: HtmxDetails


class UploadForm(forms.Form):
    collector = forms.ModelChoiceField(
        label=gettext_lazy("Bank account or collector"),
        queryset=Collector.objects.filter(active=True),
        empty_label=None,
    )
    file = forms.FileField(
        label=gettext_lazy("File"),
        help_text=gettext_lazy(
            "A bank statement (camt.053, camt.054 or MT940) or the collector's counter file."
        ),
    )

    def clean_file(self) -> object:
        upload = self.cleaned_data["file"]
        if upload.size == 0:
            raise forms.ValidationError(_("The file is empty."))
        return upload


def file_url(imp: PaymentImport) -> str:
    return reverse("receivables-office:file", args=[imp.public_id])


@require_GET
@office_view("receivables.view_paymentimport")
def file_list(request: OfficeRequest) -> HttpResponse:
    # Queries: COUNT of files, one page of files with their collector and uploader.
    files = PaymentImport.objects.select_related("collector", "uploaded_by").order_by(
        "-created_at", "-id"
    )
    page = Paginator(files, FILES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "receivables/files/list.html", {"page": page})


@require_http_methods(["GET", "POST"])
@office_view("receivables.add_paymentimport")
def file_upload(request: OfficeRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            imp = imports.stage_file(
                collector=form.cleaned_data["collector"], upload=form.cleaned_data["file"],
                uploaded_by=request.user,
            )
        except ServiceError as exc:
            form.add_error("file", str(exc))
        else:
            url = file_url(imp)
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    template = (
        "receivables/files/upload.html#form" if request.htmx else "receivables/files/upload.html"
    )
    return render(request, template, {"form": form}, status=400 if form.errors else 200)


@require_GET
@office_view("receivables.view_paymentimport")
def file_detail(request: OfficeRequest, public_id: str) -> HttpResponse:
    imp = get_object_or_404(
        PaymentImport.objects.select_related("collector", "uploaded_by"), public_id=public_id
    )
    under_way = imp.status in UNDER_WAY
    if request.htmx and request.htmx.target == "file-progress":
        if not under_way:
            return HttpResponseClientRefresh()
        return render(request, "receivables/files/detail.html#progress", {"imp": imp})
    return render(request, "receivables/files/detail.html", {
        "imp": imp, "under_way": under_way, "new_lines": imp.line_count - imp.duplicate_count,
    })


@require_POST
@office_view("receivables.add_paymentimport")
def file_post(request: OfficeRequest, public_id: str) -> HttpResponseBase:
    imp = get_object_or_404(PaymentImport, public_id=public_id)
    try:
        imports.request_post(imp=imp, by=request.user)
    except ServiceError as exc:
        messages.error(request, str(exc))
    url = file_url(imp)
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_POST
@office_view("receivables.add_paymentimport")
def file_discard(request: OfficeRequest, public_id: str) -> HttpResponseBase:
    imp = get_object_or_404(PaymentImport, public_id=public_id)
    try:
        imports.discard(imp=imp, by=request.user)
    except ServiceError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("The file was discarded; nothing was posted."))
    url = file_url(imp)
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
