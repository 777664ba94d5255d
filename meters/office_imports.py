"""Office pages for reading imports and the reading export (/office/meters/…).

Upload → the file is stored and hashed, and a Celery task checks it row by
row while its page shows the progress → the page lists the errors with their
line numbers → a file without errors is posted whole by another task (or
discarded). The export gives a customer's readings for a period.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseClientRefresh
from django_htmx.middleware import HtmxDetails

from meters import exports, imports
from meters.models import ImportStatus, ReadingImport
from portal.imports import ImportFileError, check_xlsx_archive, kind_of
from portal.models import Customer
from portal.services import ServiceError
from portal.staff import StaffRequest, office_view

IMPORTS_PER_PAGE = 50
ERRORS_PER_PAGE = 100
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
UNDER_WAY = (ImportStatus.UPLOADED, ImportStatus.CHECKING, ImportStatus.POSTING)


class OfficeRequest(StaffRequest):
    htmx: HtmxDetails


class UploadForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("File of readings"),
        help_text=gettext_lazy(
            "CSV (UTF-8, “;” or “,”) or .xlsx with the columns supply_point_code or meter, "
            "register, read_on, value and optionally reason."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xlsx,text/csv"}),
    )

    def clean_file(self) -> object:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(_("The file is larger than 512 MB; split it."))
        if upload.size == 0:
            raise forms.ValidationError(_("The file is empty."))
        # What the first bytes tell is said at once; the rows are checked in the background.
        try:
            upload.seek(0)
            if kind_of(upload.name or "", upload.read(1024)) == "xlsx":
                check_xlsx_archive(upload)
        except ImportFileError as exc:
            raise forms.ValidationError(str(exc)) from exc
        finally:
            upload.seek(0)
        return upload


@require_GET
@office_view("meters.view_readingimport")
def import_list(request: OfficeRequest) -> HttpResponse:
    # Queries: COUNT of imports, one page of imports with their uploader.
    imports_qs = ReadingImport.objects.select_related("uploaded_by").order_by("-created_at")
    page = Paginator(imports_qs, IMPORTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "meters/imports/list.html", {"page": page})


@require_http_methods(["GET", "POST"])
@office_view("meters.add_readingimport")
def import_upload(request: OfficeRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            imp = imports.stage_import(upload=form.cleaned_data["file"], uploaded_by=request.user)
        except ServiceError as exc:
            form.add_error("file", str(exc))
        else:
            url = imp_url(imp)
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    template = "meters/imports/upload.html#form" if request.htmx else "meters/imports/upload.html"
    return render(request, template, {"form": form}, status=400 if form.errors else 200)


def imp_url(imp: ReadingImport) -> str:
    from django.urls import reverse

    return reverse("meters-office:import-detail", args=[imp.public_id])


@require_GET
@office_view("meters.view_readingimport")
def import_detail(request: OfficeRequest, public_id: str) -> HttpResponse:
    imp = get_object_or_404(ReadingImport.objects.select_related("uploaded_by"),
                            public_id=public_id)
    under_way = imp.status in UNDER_WAY
    if request.htmx and request.htmx.target == "import-progress":
        if not under_way:
            return HttpResponseClientRefresh()
        return render(request, "meters/imports/detail.html#progress",
                      {"imp": imp, "progress": imports.progress_of(imp)})
    errors = Paginator(imp.errors, ERRORS_PER_PAGE).get_page(request.GET.get("page"))
    template = "meters/imports/detail.html#errors" if request.htmx else "meters/imports/detail.html"
    return render(request, template, {
        "imp": imp, "errors": errors, "under_way": under_way,
        "progress": imports.progress_of(imp) if under_way else 0,
        "more_errors": imp.error_count - len(imp.errors),
    })


@require_POST
@office_view("meters.add_readingimport")
def import_commit(request: OfficeRequest, public_id: str) -> HttpResponseBase:
    imp = get_object_or_404(ReadingImport, public_id=public_id)
    try:
        imports.request_post(imp=imp, requested_by=request.user)
    except ServiceError as exc:
        messages.error(request, str(exc))
    url = imp_url(imp)
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_POST
@office_view("meters.add_readingimport")
def import_discard(request: OfficeRequest, public_id: str) -> HttpResponseBase:
    imp = get_object_or_404(ReadingImport, public_id=public_id)
    try:
        imports.discard_import(imp=imp, discarded_by=request.user)
    except ServiceError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("The file was discarded; nothing was posted."))
    url = imp_url(imp)
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_GET
@office_view("meters.view_reading")
def readings_export(request: OfficeRequest, public_id: str) -> HttpResponseBase:
    customer = get_object_or_404(Customer, public_id=public_id)
    form = exports.ExportForm(request.GET if "start" in request.GET else None)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        return exports.export_response(customer, data["start"], data["end"], data["format"])
    return render(request, "meters/export_office.html", {"customer": customer, "form": form},
                  status=400 if form.errors else 200)
