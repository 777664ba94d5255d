"""Invoice PDFs: rendered once at issue, stored, never rendered again for the customer.

The page carries the operator, the customer, the supply point and period,
the lines, the VAT summary, the totals (advances deducted, amount due or
refund), a consumption chart and the payment codes (QR codes and a Code 128
barcode of the counter reference).

Speed (target: a one-page invoice in 0.25 s or less). What it costs, and
what is done about it:

* font subsetting: HarfBuzz, not fontTools (portal.checks warns at start-up
  when libharfbuzz-subset0 is missing);
* font faces: one family (Noto Sans) in two weights, nothing else on the page;
* the stylesheet: parsed once per process with one shared FontConfiguration;
* tables: ``table-layout: fixed``, so no pass measures every cell's content;
* SVG: WeasyPrint parses path numbers in Python and lays out SVG text one by
  one, so the chart is a text-free SVG (two paths) with HTML labels, and the
  payment codes are PNGs with one pixel per module, drawn without smoothing.

WeasyPrint fetches nothing: the stylesheet is passed in, the codes are data:
URIs, and the fetcher refuses anything that is not one of our static files.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.formats import date_format, number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from weasyprint import CSS, HTML, Document
from weasyprint.text.fonts import FontConfiguration

from billing.codes import CODE128_MODULE_MM, PayableDocument, PaymentCode, payment_codes
from billing.models import Invoice, InvoiceKind, InvoiceStatus
from billing.operator import Operator, current_operator
from billing.pricing import add_months
from billing.references import (
    CENT,
    PaymentReference,
    Scheme,
    group,
    is_valid_rf,
    references_for,
)
from meters import charts
from meters.models import Reading, Register
from portal.documents import StaticOnlyFetcher, static_path

TEMPLATE = "billing/pdf/invoice.html"
STYLESHEET = "billing/invoice.css"
CHART_MONTHS = 12


# --- formatting ------------------------------------------------------------------


def money(value: Decimal) -> str:
    """An amount as the reader's locale writes it, grouped, two decimals."""
    return number_format(value, decimal_pos=2, use_l10n=True, force_grouping=True)


def quantity(value: Decimal) -> str:
    """A quantity without trailing zeros (3 decimals stored, ``120`` not ``120.000``)."""
    normal = value.normalize()
    places = max(0, -int(normal.as_tuple().exponent))
    return number_format(normal, decimal_pos=places, use_l10n=True, force_grouping=True)


def unit_price(value: Decimal) -> str:
    """A unit price with at least 2 and at most 6 decimals, as stored."""
    normal = value.normalize()
    places = min(6, max(2, -int(normal.as_tuple().exponent)))
    return number_format(value, decimal_pos=places, use_l10n=True, force_grouping=True)


def percent(value: Decimal) -> str:
    return quantity(value) + " %"


@dataclass(frozen=True)
class PrintedCode:
    """A payment code as the PDF embeds it: a PNG with one pixel per module.

    WeasyPrint parses every number of an SVG path in Python (a QR code has
    thousands); a module-per-pixel PNG drawn without interpolation prints the
    same sharp symbol for a fraction of the time.
    """

    label: str
    src: str  # data: URI
    width_mm: str
    height_mm: str
    text: str


def printed_code(code: PaymentCode) -> PrintedCode:
    png = code.png(scale=1)
    width_px, height_px = struct.unpack(">II", png[16:24])  # the PNG's IHDR chunk
    if code.kind == "code128":
        module = CODE128_MODULE_MM
    else:
        # The SVG is sized as the format wants (e.g. 30 mm symbol plus its quiet zone).
        match = re.search(r'width="([0-9.]+)mm"', code.svg)
        assert match is not None
        module = Decimal(match.group(1)) / width_px
    return PrintedCode(
        label=code.label,
        src="data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        width_mm=str((module * width_px).quantize(CENT)),
        height_mm=str((module * height_px).quantize(CENT)),
        text=code.text,
    )


# --- what the page shows -----------------------------------------------------------


@dataclass(frozen=True)
class PaymentBlock:
    references: list[PaymentReference]
    qr_codes: list[PrintedCode]
    barcode: PrintedCode | None


def payment_references(invoice: Invoice, operator: Operator) -> list[PaymentReference]:
    """The RF reference and the operator's national one; [] when nothing is to be paid.

    The reference stored on the invoice at issue wins over a recomputed one of
    its kind (the settings may have changed since).
    """
    if invoice.is_draft or invoice.amount_due <= 0 or invoice.due_date is None:
        return []
    refs = references_for(
        operator.reference_scheme,
        customer_number=invoice.customer.number,
        document_number=invoice.document_number,
        amount=invoice.amount_due,
        due_date=invoice.due_date,
        settings=operator.reference_settings,
    )
    stored = invoice.payment_reference
    if stored and stored not in {ref.value for ref in refs}:
        is_rf = is_valid_rf(stored)
        kind = Scheme.RF.value if is_rf else operator.reference_scheme
        kept = PaymentReference(kind=kind, value=stored, display=group(stored) if is_rf else stored)
        refs = [kept if ref.kind == kind else ref for ref in refs]
    return refs


def payment_block(invoice: Invoice, operator: Operator) -> PaymentBlock:
    refs = payment_references(invoice, operator)
    if not refs:
        return PaymentBlock(references=[], qr_codes=[], barcode=None)
    assert invoice.due_date is not None
    codes = payment_codes(
        PayableDocument(
            document_number=invoice.document_number,
            currency=invoice.currency,
            amount=invoice.amount_due,
            due_date=invoice.due_date,
            references=refs,
            note=invoice.document_number,
        ),
        operator.payment_code_settings(),
    )
    barcode = next((code for code in codes if code.kind == "code128"), None)
    return PaymentBlock(
        references=refs,
        qr_codes=[printed_code(code) for code in codes if code.kind != "code128"],
        barcode=printed_code(barcode) if barcode else None,
    )


@dataclass(frozen=True)
class ConsumptionChart:
    """Bars drawn as SVG, labels as HTML: text inside an SVG costs WeasyPrint far more."""

    svg: SafeString
    months: list[str]
    values: list[str]
    unit: str
    title: str


def _bars_svg(values: list[Decimal], *, label: str) -> SafeString:
    """The bars as one path over four grid lines; no text (the labels are HTML)."""
    width, height = 240, 72
    top = charts.nice_ceiling(max(values, default=Decimal(0)))
    slot = width / len(values)
    bar = slot * 0.7
    bars = []
    for index, value in enumerate(values):
        if value <= 0:
            continue
        h = float(min(value, top) / top) * height
        x = slot * index + (slot - bar) / 2
        bars.append(f"M{x:.2f} {height - h:.2f}h{bar:.2f}v{h:.2f}h-{bar:.2f}z")
    grid = "".join(f"M0 {height * k / 4:.2f}h{width}" for k in range(4))
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart-bars" role="img" '
        'aria-label="{}" viewBox="0 0 {} {}" preserveAspectRatio="none">'
        '<path d="{}" stroke="{}" stroke-width="0.4" fill="none"/>'
        '<path d="{}h{}" stroke="{}" stroke-width="0.8"/>'
        '<path d="{}" fill="{}"/></svg>',
        label,
        width,
        height + 1,
        grid,
        charts.GRID_STROKE,
        f"M0 {height}",
        width,
        charts.AXIS_STROKE,
        "".join(bars),
        charts.BAR_FILL,
    )


def _consumption_label(value: Decimal) -> str:
    return quantity(value.quantize(Decimal(1) if value >= 100 else Decimal("0.1")))


def consumption_chart(invoice: Invoice) -> ConsumptionChart | None:
    """Consumption per month over the year up to the period's end (the first unit only).

    Two queries: the supply point's registers, then their valid readings.
    """
    if invoice.supply_point_id is None or invoice.period_end is None:
        return None
    end = invoice.period_end
    months = charts.month_starts(add_months(end.replace(day=1), 1 - CHART_MONTHS), end)
    registers = list(
        Register.objects.filter(meter__supply_point=invoice.supply_point_id).order_by("pk")
    )
    if not registers:
        return None
    unit = registers[0].unit
    registers = [register for register in registers if register.unit == unit]
    by_register: dict[int, list[Reading]] = {register.pk: [] for register in registers}
    # A year before the window: a month's consumption is the difference to the reading before.
    readings = (
        Reading.objects.valid()
        .filter(register__in=registers, read_on__gte=add_months(months[0], -12), read_on__lte=end)
        .order_by("read_on", "pk")
    )
    for reading in readings:
        by_register[reading.register_id].append(reading)
    if not any(by_register.values()):
        return None
    totals = [Decimal(0)] * len(months)
    for register in registers:
        bars = charts.monthly_consumption(register, by_register[register.pk], months=months)
        totals = [total + bar.value for total, bar in zip(totals, bars, strict=True)]
    title = _("Your consumption per month (%(unit)s)") % {"unit": unit}
    return ConsumptionChart(
        svg=_bars_svg(totals, label=title),
        months=[date_format(month, "M y") for month in months],
        values=[_consumption_label(total) for total in totals],
        unit=unit,
        title=title,
    )


def _vat_label(code: str, rate: Decimal) -> str:
    if code == "outside_scope":
        return _("Not subject to VAT")
    if rate == 0 and "exempt" in code:
        return _("Exempt from VAT")
    return percent(rate)


def _period(start: date | None, end: date | None) -> tuple[date | None, date | None]:
    return (start, end) if start and end else (None, None)


def invoice_context(invoice: Invoice, operator: Operator) -> dict[str, Any]:
    """Everything the template prints, formatted for the reader's language (call it inside
    ``translation.override``)."""
    lines = [
        {
            "position": line.position,
            "description": line.description,
            "period": _period(line.period_start, line.period_end),
            "quantity": quantity(line.quantity),
            "unit": line.unit,
            "unit_price": unit_price(line.unit_price),
            "net": money(line.net_amount),
            "vat": _vat_label(line.vat_code, line.vat_rate),
        }
        for line in invoice.lines.all()
    ]
    vat_rows = [
        {"label": _vat_label(row.code, row.rate), "net": money(row.net), "vat": money(row.vat)}
        for row in invoice.vat_breakdown()
    ]
    payment = payment_block(invoice, operator)
    refund = invoice.amount_due < 0
    return {
        "invoice": invoice,
        "title": InvoiceKind(invoice.kind).label,
        "is_draft": invoice.is_draft,
        "is_credit_note": invoice.kind == InvoiceKind.CREDIT_NOTE,
        "operator": operator,
        "customer": invoice.customer,
        "supply_point": invoice.supply_point,
        "period": _period(invoice.period_start, invoice.period_end),
        "lines": lines,
        "vat_rows": vat_rows,
        "net_total": money(invoice.net_total),
        "vat_total": money(invoice.vat_total),
        "gross_total": money(invoice.gross_total),
        "prepaid": money(invoice.prepaid_amount) if invoice.prepaid_amount else "",
        "amount_due": money(abs(invoice.amount_due)),
        "refund": refund,
        "currency": invoice.currency,
        "references": payment.references,
        "qr_codes": payment.qr_codes,
        "barcode": payment.barcode,
        "chart": consumption_chart(invoice),
    }


# --- rendering -------------------------------------------------------------------


def _base_url() -> str:
    return f"{settings.SITE_URL}/"


@cache
def _renderer() -> tuple[FontConfiguration, CSS]:
    """The font configuration and the parsed stylesheet, made once per process."""
    font_config = FontConfiguration()
    stylesheet = CSS(
        filename=str(static_path(settings.STATIC_URL + STYLESHEET)),
        font_config=font_config,
        url_fetcher=StaticOnlyFetcher(),
        base_url=_base_url(),
    )
    return font_config, stylesheet


def render_html_document(html: str, *, pdf_variant: str | None = None) -> Document:
    """An invoice page's HTML laid out with the invoice stylesheet (static files only).

    ``document.write_pdf(pdf_variant=…)`` makes the PDF; in between, the caller may
    change the document's metadata (billing.facturx writes its own XMP).
    """
    font_config, stylesheet = _renderer()
    page = HTML(string=html, base_url=_base_url(), url_fetcher=StaticOnlyFetcher())
    options: dict[str, Any] = {"pdf_variant": pdf_variant} if pdf_variant else {}
    return page.render(stylesheets=[stylesheet], font_config=font_config, **options)


def render_html_pdf(html: str, *, pdf_variant: str | None = None) -> bytes:
    """PDF bytes of an invoice page's HTML with the invoice stylesheet (static files only)."""
    document = render_html_document(html, pdf_variant=pdf_variant)
    options: dict[str, Any] = {"pdf_variant": pdf_variant} if pdf_variant else {}
    pdf = document.write_pdf(**options)
    assert pdf is not None
    return pdf


def invoice_html(invoice: Invoice, operator: Operator | None = None) -> str:
    """The invoice page's HTML in the customer's language."""
    operator = operator or current_operator()
    with translation.override(invoice.customer.language):
        return render_to_string(TEMPLATE, invoice_context(invoice, operator))


def render_invoice_pdf(
    invoice: Invoice, *, operator: Operator | None = None, pdf_variant: str | None = None
) -> bytes:
    """The invoice as a PDF (a draft gets a DRAFT watermark and no payment codes).

    pdf_variant: e.g. ``"pdf/a-3b"`` for the Factur-X base document.
    """
    return render_html_pdf(invoice_html(invoice, operator), pdf_variant=pdf_variant)


def document_pdf(invoice: Invoice, operator: Operator | None = None) -> bytes:
    """The PDF stored for an issued document: Factur-X where it is an EN 16931 invoice."""
    from billing import facturx

    operator = operator or current_operator()
    if facturx.applies_to(invoice):
        return facturx.render_facturx_pdf(invoice, operator=operator)
    return render_invoice_pdf(invoice, operator=operator)


def for_rendering(pk: int) -> Invoice:
    """An invoice with what its page reads, as stored now (lines prefetched once)."""
    return (
        Invoice.objects.select_related("customer", "supply_point", "credited_invoice")
        .prefetch_related("lines")
        .get(pk=pk)
    )


def store_invoice_pdf(invoice: Invoice) -> None:
    """Render an issued document's PDF once and store it with its SHA-256.

    Idempotent: an invoice that has its PDF is left alone, also when two
    workers race: the file is written, then one conditional UPDATE (``WHERE
    pdf = ''``) decides; the slower worker deletes its file and keeps the
    winner's. No lock is held while rendering. ``invoice`` gets the stored
    file's fields.
    """
    current = for_rendering(invoice.pk)
    if current.status == InvoiceStatus.DRAFT:
        raise ValueError("A draft has no stored PDF; issue it first.")
    stored = current if current.pdf else _store_once(current, document_pdf(current))
    invoice.pdf.name = stored.pdf.name
    invoice.pdf_sha256 = stored.pdf_sha256
    invoice.updated_at = stored.updated_at


def _store_once(current: Invoice, pdf: bytes) -> Invoice:
    """Write the file and claim the row for it; the invoice as stored (this file or another's)."""
    current.pdf.save(f"{current.document_number}.pdf", ContentFile(pdf), save=False)
    sha256 = hashlib.sha256(pdf).hexdigest()
    now = timezone.now()
    # Three columns: save() would first check the whole issued row against its stored
    # state (another read) for no change.
    if Invoice.objects.filter(pk=current.pk, pdf="").update(
        pdf=current.pdf.name, pdf_sha256=sha256, updated_at=now
    ):
        current.pdf_sha256, current.updated_at = sha256, now
        return current
    current.pdf.storage.delete(current.pdf.name)  # another worker stored it first
    return Invoice.objects.only("pk", "pdf", "pdf_sha256", "updated_at").get(pk=current.pk)
