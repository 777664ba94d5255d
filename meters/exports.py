"""The reading database of a customer for a period, as CSV or XLSX (seed S0).

Both formats stream: the CSV is produced row by row while the database
cursor is read (server-side, in chunks), the XLSX is written by openpyxl in
write-only mode to a temporary file that is then sent and removed. Memory
does not depend on the number of readings.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterator
from datetime import date
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy
from django.views.decorators.http import require_GET

from meters.models import Reading
from portal.access import CustomerRequest, customer_view
from portal.models import Customer, MembershipRole

FORMATS = (("csv", "CSV"), ("xlsx", "Excel (.xlsx)"))
MAX_DAYS = 366 * 10
_CHUNK = 2000
EXPORT_ROLES = (MembershipRole.OWNER, MembershipRole.MANAGER, MembershipRole.VIEWER)

FIELDS = (
    "register__meter__supply_point__code",
    "register__meter__serial_number",
    "register__code",
    "read_on",
    "value",
    "register__unit",
    "consumption",
    "source",
    "reason",
    "status",
)


class ExportForm(forms.Form):
    start = forms.DateField(
        label=gettext_lazy("From"), widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(
        label=pgettext_lazy("end of a date range", "To"),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    format = forms.ChoiceField(label=gettext_lazy("Format"), choices=FORMATS, initial="csv")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                self.add_error("end", _("The end of the period is before its start."))
            elif (end - start).days > MAX_DAYS:
                self.add_error("end", _("Choose a period of at most ten years."))
        return data


def readings_of(customer: Customer, start: date, end: date) -> QuerySet[Reading]:
    """The valid readings of the customer's supply points in [start, end], in file order."""
    return (
        Reading.objects.for_customer(customer)
        .valid()
        .filter(read_on__gte=start, read_on__lte=end)
        .order_by(
            "register__meter__supply_point__code",
            "register__meter__serial_number",
            "register__code",
            "read_on",
        )
    )


def headers() -> list[str]:
    return [
        "supply_point_code",
        "meter",
        "register",
        "read_on",
        "value",
        "unit",
        "consumption",
        "source",
        "reason",
        "status",
    ]


def _rows(queryset: QuerySet[Reading]) -> Iterator[tuple[Any, ...]]:
    return queryset.values_list(*FIELDS).iterator(chunk_size=_CHUNK)


class _Echo:
    """A file-like object whose write returns what it is given (for csv.writer)."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(queryset: QuerySet[Reading]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(headers())
    for row in _rows(queryset):
        yield writer.writerow(row)


def filename(customer: Customer, start: date, end: date, extension: str) -> str:
    return f"readings-{customer.number}-{start.isoformat()}-{end.isoformat()}.{extension}"


def csv_response(customer: Customer, start: date, end: date) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        _csv_lines(readings_of(customer, start, end)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = (
        f'attachment; filename="{filename(customer, start, end, "csv")}"'
    )
    return response


def xlsx_response(customer: Customer, start: date, end: date) -> FileResponse:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet(_("Readings")[:31])
    sheet.append(headers())
    for row in _rows(readings_of(customer, start, end)):
        sheet.append(list(row))
    # An unnamed temporary file: gone when the response closes it.
    handle = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115 - FileResponse closes it
    book.save(handle)
    handle.seek(0)
    return FileResponse(
        handle,
        as_attachment=True,
        filename=filename(customer, start, end, "xlsx"),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


def export_response(
    customer: Customer, start: date, end: date, fmt: str
) -> StreamingHttpResponse | FileResponse:
    if fmt == "xlsx":
        return xlsx_response(customer, start, end)
    return csv_response(customer, start, end)


# --- The customer portal page ----------------------------------------------------------


@require_GET
@customer_view(roles=EXPORT_ROLES)
def readings_export(request: CustomerRequest) -> HttpResponse:
    """The customer's own reading database for a period (every role may download it)."""
    form = ExportForm(request.GET if "start" in request.GET else None)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        # A streamed CSV or a file: both are served like any response.
        return export_response(  # type: ignore[return-value]
            request.customer, data["start"], data["end"], data["format"]
        )
    return render(request, "meters/export.html", {"form": form}, status=400 if form.errors else 200)
