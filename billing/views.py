"""Customer portal pages of billing: invoices, advances, balance, price lists.

Every page goes through ``@customer_view`` and looks documents up through
``portal.access``: another customer's invoice answers 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django import forms
from django.db.models import F, Prefetch, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.cache import patch_vary_headers
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext, pgettext_lazy
from django.views.decorators.http import require_GET
from django_htmx.middleware import HtmxDetails

from billing import pricelist_pdf
from billing.models import (
    AdvanceInstalment,
    AdvanceSchedule,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    ScheduleStatus,
)
from billing.references import group
from meters.models import SupplyPoint
from portal import access
from portal.access import CustomerRequest, customer_view
from portal.models import Customer

PAGE_SIZE = 25
OFFICE_LIMIT = 20
# The statuses a customer can filter by: drafts are never shown to customers.
CUSTOMER_STATUSES = [(s.value, s.label) for s in InvoiceStatus if s != InvoiceStatus.DRAFT]
OPEN_STATUSES = (InvoiceStatus.ISSUED, InvoiceStatus.PARTLY_PAID)


class BillingRequest(CustomerRequest):
    htmx: HtmxDetails


# --- Balance due ------------------------------------------------------------------


@dataclass(frozen=True)
class Balance:
    documents: list[Invoice]
    # (currency, amount) per currency of the open documents, e.g. [("RON", Decimal("163.03"))].
    totals: list[tuple[str, Decimal]]


def balance_due(customer: Customer) -> Balance:
    """The customer's open documents and what they add up to (one query).

    Open: issued and neither paid nor cancelled; a partly paid document still
    counts in full and a credit note goes with the invoice it cancelled. The
    receivables ledger replaces this once payments are matched there.
    """
    documents = list(
        Invoice.objects.for_customer(customer)
        .filter(status__in=OPEN_STATUSES)
        .exclude(kind=InvoiceKind.CREDIT_NOTE, credited_invoice__status=InvoiceStatus.CANCELLED)
        .select_related("supply_point")
        .order_by("due_date", "id")
    )
    totals: dict[str, Decimal] = {}
    for document in documents:
        totals[document.currency] = totals.get(document.currency, Decimal(0)) + document.amount_due
    return Balance(documents=documents, totals=sorted(totals.items()))


# --- Invoices list ------------------------------------------------------------------


class InvoiceFilterForm(forms.Form):
    date_from = forms.DateField(
        label=gettext_lazy("From"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    date_to = forms.DateField(
        label=pgettext_lazy("end of a date range", "To"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    status = forms.ChoiceField(
        label=gettext_lazy("Status"),
        required=False,
        choices=[("", pgettext_lazy("any status", "Any")), *CUSTOMER_STATUSES],
    )
    supply_point = forms.ChoiceField(label=gettext_lazy("Supply point"), required=False)

    def __init__(self, data: Any, *, supply_points: list[SupplyPoint]) -> None:
        super().__init__(data)
        self.points = {str(point.public_id): point for point in supply_points}
        if not self.points:
            del self.fields["supply_point"]
            return
        self.fields["supply_point"].choices = [  # type: ignore[attr-defined]
            ("", pgettext_lazy("any supply point", "All")),
            *[(key, f"{p.code} · {p.address}") for key, p in self.points.items()],
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and end < start:
            self.add_error("date_to", _("The end of the period is before its start."))
        return data

    def apply(self, invoices: QuerySet[Invoice]) -> QuerySet[Invoice]:
        """Filter by every field that is valid; invalid ones are reported, not applied."""
        data = self.cleaned_data if self.is_bound else {}
        if data.get("date_from"):
            invoices = invoices.filter(issue_date__gte=data["date_from"])
        if data.get("date_to"):
            invoices = invoices.filter(issue_date__lte=data["date_to"])
        if data.get("status"):
            invoices = invoices.filter(status=data["status"])
        if data.get("supply_point"):
            invoices = invoices.filter(supply_point=self.points[data["supply_point"]])
        return invoices


@dataclass(frozen=True)
class InvoicePage:
    invoices: list[Invoice]
    # Public ids of the boundary documents for the links; None: no such page.
    next_after: str | None
    previous_before: str | None


def _keyset_page(
    invoices: QuerySet[Invoice], *, after: Invoice | None, before: Invoice | None
) -> InvoicePage:
    """One page in (issue_date, id) order, newest first, from a boundary document.

    The boundary condition is written so that the index on (customer,
    -issue_date, -id) starts the scan at the boundary: the cost of a page does
    not grow with how many documents come before it (no OFFSET).
    """
    if before is not None:
        older_first = invoices.filter(
            Q(issue_date__gte=before.issue_date)
            & (Q(issue_date__gt=before.issue_date) | Q(id__gt=before.pk))
        ).order_by("issue_date", "id")
        rows = list(older_first[: PAGE_SIZE + 1])
        if rows:
            more_before = len(rows) > PAGE_SIZE
            rows = rows[:PAGE_SIZE][::-1]
            return InvoicePage(
                invoices=rows,
                next_after=str(rows[-1].public_id),
                previous_before=str(rows[0].public_id) if more_before else None,
            )
        # Nothing newer than the boundary (a stale link): the first page.
    if after is not None:
        invoices = invoices.filter(
            Q(issue_date__lte=after.issue_date)
            & (Q(issue_date__lt=after.issue_date) | Q(id__lt=after.pk))
        )
    rows = list(invoices.order_by("-issue_date", "-id")[: PAGE_SIZE + 1])
    more_after = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return InvoicePage(
        invoices=rows,
        next_after=str(rows[-1].public_id) if rows and more_after else None,
        previous_before=str(rows[0].public_id) if rows and after is not None else None,
    )


def _boundary(request: BillingRequest, key: str, notices: list[str]) -> Invoice | None:
    """The document a page link starts from; None (with a notice) when it is not ours."""
    value = request.GET.get(key)
    if not value:
        return None
    try:
        return access.get_scoped(
            request, Invoice.objects.issued().only("id", "issue_date"), public_id=value
        )
    except Http404:
        notices.append(_("That page link is not valid; here are your newest documents."))
        return None


@dataclass(frozen=True)
class InvoiceRow:
    """One line of the list, formatted: what a long page pays for is per-row template work."""

    url: str
    number: str
    kind: str
    issue_date: str
    period: str
    supply_point: str
    total: str
    amount_due: str
    due_date: str
    status: str
    status_label: str


def _invoice_rows(invoices: list[Invoice]) -> list[InvoiceRow]:
    kinds = {kind.value: str(kind.label) for kind in InvoiceKind}
    statuses = {status.value: str(status.label) for status in InvoiceStatus}
    # Reverse once: the detail URL differs between rows only by the public id.
    placeholder = "00000000-0000-0000-0000-000000000000"
    url = reverse("billing:invoice", args=[placeholder])
    dates: dict[date, str] = {}

    def day(value: date | None) -> str:
        if value is None:
            return "—"
        if value not in dates:
            dates[value] = formats.date_format(value, "SHORT_DATE_FORMAT")
        return dates[value]

    def money(amount: Decimal, currency: str) -> str:
        shown = formats.number_format(amount, 2, use_l10n=True, force_grouping=True)
        return f"{shown}\N{NO-BREAK SPACE}{currency}"

    return [
        InvoiceRow(
            url=url.replace(placeholder, str(invoice.public_id)),
            number=invoice.document_number,
            kind=kinds.get(invoice.kind, invoice.kind),
            issue_date=day(invoice.issue_date),
            period=f"{day(invoice.period_start)} – {day(invoice.period_end)}"
            if invoice.period_start
            else "—",
            supply_point=invoice.supply_point.code if invoice.supply_point else "—",
            total=money(invoice.gross_total, invoice.currency),
            amount_due=money(invoice.amount_due, invoice.currency),
            due_date=day(invoice.due_date),
            status=invoice.status,
            status_label=statuses.get(invoice.status, invoice.status),
        )
        for invoice in invoices
    ]


@customer_view()
@require_GET
def invoice_list(request: BillingRequest) -> HttpResponse:
    """The customer's documents, newest first, filtered and paged by keyset."""
    notices: list[str] = []
    supply_points = list(access.scoped(request, SupplyPoint.objects.order_by("code")))
    filtered = any(request.GET.get(name) for name in InvoiceFilterForm.base_fields)
    form = InvoiceFilterForm(request.GET if filtered else None, supply_points=supply_points)
    if filtered and not form.is_valid():
        notices.append(_("Some filters could not be used; correct the marked fields."))
    invoices = form.apply(
        access.scoped(request, Invoice.objects.issued().select_related("supply_point"))
    )
    after = _boundary(request, "after", notices)
    before = None if after is not None else _boundary(request, "before", notices)
    page = _keyset_page(invoices, after=after, before=before)
    filters = request.GET.copy()
    for key in ("after", "before"):
        filters.pop(key, None)
    ctx = {
        "form": form,
        "page": page,
        "rows": _invoice_rows(page.invoices),
        "filters": filters.urlencode(),
        "filtered": filtered,
        "notices": notices,
    }
    partial = request.htmx and not request.htmx.history_restore_request
    template = "billing/portal/invoices.html#results" if partial else "billing/portal/invoices.html"
    response = render(request, template, ctx)
    patch_vary_headers(response, ["HX-Request"])
    return response


# --- Invoice detail and PDF ---------------------------------------------------------


@dataclass(frozen=True)
class LineRow:
    line: InvoiceLine
    quantity: str
    unit_price: str


def _attachment(filename: str) -> str:
    return content_disposition_header(True, filename) or "attachment"


def _get_invoice(request: BillingRequest, public_id: Any) -> Invoice:
    return access.get_scoped(request, Invoice.objects.issued(), public_id=public_id)


@customer_view()
@require_GET
def invoice_detail(request: BillingRequest, public_id: Any) -> HttpResponse:
    lines = InvoiceLine.objects.order_by("position")
    invoice = access.get_scoped(
        request,
        Invoice.objects.issued()
        .select_related("supply_point", "credited_invoice")
        .prefetch_related(
            Prefetch("lines", queryset=lines),
            Prefetch(
                "credit_notes", queryset=Invoice.objects.issued().order_by("issue_date", "id")
            ),
        ),
        public_id=public_id,
    )
    rows = [
        LineRow(
            line=line,
            quantity=pricelist_pdf.decimal_text(line.quantity, min_places=0),
            unit_price=pricelist_pdf.decimal_text(line.unit_price),
        )
        for line in invoice.lines.all()
    ]
    ctx = {
        "invoice": invoice,
        "rows": rows,
        "vat_rows": invoice.vat_breakdown(),
        "credit_notes": list(invoice.credit_notes.all()),
        "payment_reference": group(invoice.payment_reference) if invoice.payment_reference else "",
        "payable": invoice.status in OPEN_STATUSES and invoice.amount_due > 0,
        # A settlement below the advances paid (or a credit note) gives money back.
        "refund": -invoice.amount_due if invoice.amount_due < 0 else None,
        "overdue": invoice.status in OPEN_STATUSES
        and invoice.due_date is not None
        and invoice.due_date < timezone.localdate(),
    }
    return render(request, "billing/portal/invoice_detail.html", ctx)


@customer_view()
@require_GET
def invoice_pdf(request: BillingRequest, public_id: Any) -> HttpResponse:
    """The PDF stored at issue; 404 until it is rendered (the detail page says so)."""
    invoice = _get_invoice(request, public_id)
    if not invoice.pdf:
        raise Http404
    try:
        with invoice.pdf.open("rb") as stored:
            content = stored.read()
    except FileNotFoundError as exc:
        raise Http404 from exc
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = _attachment(f"{invoice.document_number}.pdf")
    return response


# --- Advance payments ---------------------------------------------------------------


@dataclass(frozen=True)
class InstalmentRow:
    instalment: AdvanceInstalment
    state: str  # paid, partly_paid, overdue, requested, upcoming
    label: str


def _instalment_row(instalment: AdvanceInstalment, today: date) -> InstalmentRow:
    document = instalment.invoice
    if instalment.paid_amount >= instalment.amount or (
        document is not None and document.status == InvoiceStatus.PAID
    ):
        return InstalmentRow(instalment, "paid", pgettext("instalment", "Paid"))
    if instalment.paid_amount > 0 or (
        document is not None and document.status == InvoiceStatus.PARTLY_PAID
    ):
        return InstalmentRow(instalment, "partly_paid", _("Partly paid"))
    if instalment.due_date < today:
        return InstalmentRow(instalment, "overdue", _("Overdue"))
    if document is not None:
        return InstalmentRow(instalment, "requested", _("Payment requested"))
    return InstalmentRow(instalment, "upcoming", pgettext("instalment", "Upcoming"))


@customer_view()
@require_GET
def advances(request: BillingRequest) -> HttpResponse:
    """Advance schedules of the customer's supply points with their instalments."""
    today = timezone.localdate()
    instalments = AdvanceInstalment.objects.select_related("invoice").order_by("sequence")
    schedules = list(
        access.scoped(request, AdvanceSchedule.objects.select_related("supply_point"))
        .prefetch_related(Prefetch("instalments", queryset=instalments))
        .order_by("supply_point__code", "-first_due_date", "-id")
    )
    active = [
        (schedule, [_instalment_row(i, today) for i in schedule.instalments.all()])
        for schedule in schedules
        if schedule.status == ScheduleStatus.ACTIVE
    ]
    earlier = [s for s in schedules if s.status != ScheduleStatus.ACTIVE]
    return render(request, "billing/portal/advances.html", {"active": active, "earlier": earlier})


# --- Balance due --------------------------------------------------------------------


@customer_view()
@require_GET
def balance(request: BillingRequest) -> HttpResponse:
    return render(
        request,
        "billing/portal/balance.html",
        {"balance": balance_due(request.customer), "today": timezone.localdate()},
    )


# --- Price lists --------------------------------------------------------------------


@customer_view()
@require_GET
def price_list_list(request: BillingRequest) -> HttpResponse:
    return render(
        request,
        "billing/portal/price_lists.html",
        {"price_lists": pricelist_pdf.public_price_lists()},
    )


def _get_price_list(code: str) -> pricelist_pdf.ShownPriceList:
    shown = pricelist_pdf.public_price_list(code)
    if shown is None:
        raise Http404
    return shown


@customer_view()
@require_GET
def price_list_detail(request: BillingRequest, code: str) -> HttpResponse:
    return render(
        request, "billing/portal/price_list_detail.html", {"shown": _get_price_list(code)}
    )


@customer_view()
@require_GET
def price_list_pdf(request: BillingRequest, code: str) -> HttpResponse:
    shown = _get_price_list(code)
    # The document speaks the language of the page it was asked from.
    content = pricelist_pdf.render_price_list_pdf(
        shown, language=translation.get_language() or "en"
    )
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = _attachment(pricelist_pdf.pdf_filename(shown))
    return response


# --- Extension points (registered in BillingConfig.ready) ---------------------------


def dashboard_card_data(request: HttpRequest, customer: Customer) -> dict[str, Any]:
    """The balance due and the next advance to pay (two queries)."""
    upcoming = (
        AdvanceInstalment.objects.filter(
            schedule__customer=customer, schedule__status=ScheduleStatus.ACTIVE
        )
        .filter(paid_amount__lt=F("amount"))
        .exclude(invoice__status__in=[InvoiceStatus.PAID, InvoiceStatus.CANCELLED])
        .select_related("schedule__supply_point")
        .order_by("due_date", "id")
        .first()
    )
    return {
        "balance": balance_due(customer),
        "next_instalment": upcoming,
        "today": timezone.localdate(),
    }


def office_section_data(request: HttpRequest, customer: Customer) -> dict[str, Any]:
    """The customer's latest documents (drafts included) and balance due (two queries)."""
    # One more than shown tells whether there are older ones.
    documents = list(
        Invoice.objects.for_customer(customer)
        .select_related("supply_point")
        .order_by(F("issue_date").desc(nulls_first=True), "-id")[: OFFICE_LIMIT + 1]
    )
    return {
        "documents": documents[:OFFICE_LIMIT],
        "more": len(documents) > OFFICE_LIMIT,
        "balance": balance_due(customer),
    }
