"""Invoice PDFs: what the customer reads, what the codes decode to, what we store."""

from __future__ import annotations

import hashlib
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime, time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.utils import translation

from billing import documents, pricing, services
from billing.documents import money, render_html_pdf, render_invoice_pdf, store_invoice_pdf
from billing.models import Invoice, InvoiceSeries
from billing.references import is_valid_rf, parse_ro_payload
from meters.models import Meter, Reading, ReadingSource, ReadingStatus, Register, SupplyPoint
from portal import checks
from portal.models import Customer

D = Decimal
Issue = Callable[..., Invoice]
ZONE = ZoneInfo(settings.TIME_ZONE)
IBAN = "RO49AAAA1B31007593840000"  # the demo operator's (settings outside production)


def line(description: str, quantity: str, unit: str, price: str, rate: str = "19") -> pricing.Line:
    qty, unit_price = D(quantity), D(price)
    return pricing.Line(
        description=description,
        quantity=qty,
        unit=unit,
        unit_price=unit_price,
        net_amount=(qty * unit_price).quantize(D("0.01")),
        vat_code="standard" if rate != "0" else "zero",
        vat_rate=D(rate),
        period_start=date(2026, 1, 1),
        period_end=date(2026, 1, 31),
    )


ENERGY = [line("Energy", "230", "kWh", "0.80"), line("Standing charge", "1", "month", "12.00")]
# 184.00 + 12.00 = 196.00 net, 19 % VAT 37.24, total 233.24


@pytest.fixture
def readings(supply_point: SupplyPoint) -> list[Reading]:
    meter = Meter.objects.create(
        supply_point=supply_point, serial_number="E-1000001", installed_on=date(2024, 1, 1)
    )
    register = Register.objects.create(meter=meter, code="1.8.0", name="Total", unit="kWh")
    rows = [(date(2025, month, 28), 1000 + 150 * month) for month in range(1, 13)]
    rows.append((date(2026, 1, 30), 3100))
    return Reading.objects.bulk_create(
        Reading(
            register=register,
            value=D(value),
            read_on=day,
            read_at=datetime.combine(day, time(10, 0), tzinfo=ZONE),
            source=ReadingSource.COURIER,
            status=ReadingStatus.ACCEPTED,
        )
        for day, value in rows
    )


@pytest.fixture
def draft(
    customer: Customer, supply_point: SupplyPoint, series: dict[str, InvoiceSeries]
) -> Callable[..., Invoice]:
    def factory(
        lines: list[pricing.Line] | None = None, *, currency: str = "EUR", prepaid: str = "0"
    ) -> Invoice:
        priced = pricing.total_lines(
            lines or ENERGY,
            currency=currency,
            period_start=date(2026, 1, 1),
            period_end=date(2026, 1, 31),
        )
        return services.create_draft_invoice(
            customer=customer,
            priced=priced,
            supply_point=supply_point,
            prepaid_amount=D(prepaid),
        )

    return factory


@pytest.fixture
def issue(draft: Callable[..., Invoice]) -> Issue:
    def factory(*args: Any, **kwargs: Any) -> Invoice:
        return services.issue_invoice(
            invoice=draft(*args, **kwargs),
            issued_by=None,
            issue_date=date(2026, 2, 3),
            due_date=date(2026, 2, 17),
        )

    return factory


def pdf_text(pdf: bytes, tmp_path: Path, *, mode: str = "-layout") -> str:
    """The text of a PDF (``-raw`` also finds rotated text such as the watermark)."""
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(
        ["pdftotext", mode, str(path), "-"], capture_output=True, check=True, text=True
    )
    return out.stdout


def pages(pdf: bytes, tmp_path: Path) -> int:
    path = tmp_path / "pages.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdfinfo", str(path)], capture_output=True, check=True, text=True)
    match = re.search(r"^Pages:\s+(\d+)", out.stdout, re.M)
    assert match
    return int(match.group(1))


def decoded_codes(pdf: bytes, tmp_path: Path) -> list[tuple[str, str]]:
    """(symbology, data) of every code zbar finds on the PDF rendered at 200 dpi."""
    path = tmp_path / "codes.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "200", "-png", str(path), str(tmp_path / "page")], check=True)
    found = []
    for image in sorted(tmp_path.glob("page*.png")):
        out = subprocess.run(["zbarimg", "--quiet", str(image)], capture_output=True, text=True)
        # zbarimg prints "SYMBOLOGY:data"; a QR payload may span lines (EPC uses LF).
        for chunk in re.split(r"\n(?=(?:QR-Code|CODE-128):)", out.stdout.strip()):
            if chunk:
                kind, _, data = chunk.partition(":")
                found.append((kind, data))
    return found


def in_language(language: str, value: Decimal) -> str:
    with translation.override(language):
        return money(value)


# --- what the page says ----------------------------------------------------------


def test_it_prints_the_number_parties_lines_and_totals(
    issue: Issue, readings: list[Reading], tmp_path: Path
) -> None:
    invoice = issue()
    text = pdf_text(render_invoice_pdf(invoice), tmp_path)
    assert invoice.document_number in text
    assert "Ana Popescu" in text
    assert "RO005E000000000001" in text
    assert settings.OPERATOR_NAME in text
    assert "RO49 AAAA 1B31 0075 9384 0000" in text
    lang = invoice.customer.language
    for amount in ("184.00", "12.00", "196.00", "37.24", "233.24"):
        assert in_language(lang, D(amount)) in text
    assert re.search(r"Amount due\s+233\.24 EUR", text)
    assert pages(render_invoice_pdf(invoice), tmp_path) == 1


def test_it_writes_in_the_customers_language(
    issue: Issue, customer: Customer, tmp_path: Path
) -> None:
    customer.language = "ro"
    customer.save()
    invoice = issue([line("Energie", "1000", "kWh", "1.00")])
    text = pdf_text(render_invoice_pdf(invoice), tmp_path)
    # 1,000.00 net + 190.00 VAT, written the Romanian way.
    assert "1.190,00" in text
    assert "1,190.00" not in text


def test_it_prints_the_consumption_of_each_month(
    issue: Issue, readings: list[Reading], tmp_path: Path
) -> None:
    text = pdf_text(render_invoice_pdf(issue()), tmp_path)
    # 150 kWh a month through 2025, 300 in January 2026 (two months' worth read at once).
    assert "Your consumption per month (kWh)" in text
    assert re.search(r"Feb 25\s+Mar 25", text)
    assert re.search(r"150\s+150\s+150", text)
    assert re.search(r"150\s+300", text)


def test_it_leaves_the_chart_out_without_readings(issue: Issue, tmp_path: Path) -> None:
    text = pdf_text(render_invoice_pdf(issue()), tmp_path)
    assert "consumption per month" not in text


def test_it_deducts_advances_and_shows_the_rest_due(issue: Issue, tmp_path: Path) -> None:
    invoice = issue(prepaid="200.00")
    text = pdf_text(render_invoice_pdf(invoice), tmp_path)
    assert re.search(r"Advances paid\s+− 200\.00 EUR", text)
    assert re.search(r"Amount due\s+33\.24 EUR", text)


def test_it_announces_a_refund_without_payment_codes(issue: Issue, tmp_path: Path) -> None:
    invoice = issue(prepaid="300.00")
    pdf = render_invoice_pdf(invoice)
    text = pdf_text(pdf, tmp_path)
    assert re.search(r"To be refunded to you\s+66\.76 EUR", text)
    assert "Payment reference" not in text
    assert decoded_codes(pdf, tmp_path) == []


def test_it_prints_a_credit_note_that_names_the_invoice(issue: Issue, tmp_path: Path) -> None:
    invoice = issue()
    credit = services.cancel_by_credit_note(invoice=invoice, reason="Wrong meter", by=None)
    text = pdf_text(render_invoice_pdf(credit), tmp_path)
    assert "Credit note" in text
    assert invoice.document_number in text
    assert re.search(r"To be refunded to you\s+233\.24 EUR", text)


def test_it_marks_a_draft_and_gives_it_no_payment_codes(
    draft: Callable[..., Invoice], tmp_path: Path
) -> None:
    pdf = render_invoice_pdf(draft())
    assert "DRAFT" in pdf_text(pdf, tmp_path, mode="-raw")
    text = pdf_text(pdf, tmp_path)
    assert "not issued yet" in text
    assert "Payment reference" not in text
    assert decoded_codes(pdf, tmp_path) == []


def test_it_goes_on_to_more_pages_when_the_lines_need_them(issue: Issue, tmp_path: Path) -> None:
    many = [line(f"Reconnection visit {n}", "1", "visit", "10.00") for n in range(1, 61)]
    pdf = render_invoice_pdf(issue(many))
    text = pdf_text(pdf, tmp_path)
    assert pages(pdf, tmp_path) >= 2
    assert "Reconnection visit 1 " in text and "Reconnection visit 60" in text
    assert re.search(r"Amount due\s+714\.00 EUR", text)


# --- payment codes ------------------------------------------------------------------


def test_its_qr_code_and_barcode_decode_to_the_iban_amount_and_reference(
    issue: Issue, tmp_path: Path
) -> None:
    invoice = issue()
    pdf = render_invoice_pdf(invoice)
    codes = dict(decoded_codes(pdf, tmp_path))
    # RF + check digits + customer number digits (8) + the document number's letters and digits.
    [rf] = re.findall(r"RF\d\d00100001FV2026000001", codes["CODE-128"])
    assert is_valid_rf(rf)
    epc = codes["QR-Code"].split("\n")
    assert epc[:4] == ["BCD", "002", "1", "SCT"]
    assert epc[6] == IBAN
    assert epc[7] == "EUR233.24"
    assert epc[9] == rf
    assert codes["CODE-128"] == rf
    assert f"{rf[:4]} 0010 0001 FV20 2600 0001" in pdf_text(pdf, tmp_path)


def test_it_prints_the_reference_stored_at_issue(issue: Issue, tmp_path: Path) -> None:
    invoice = issue()
    invoice.payment_reference = "RF18539007547034"
    invoice.save(update_fields=["payment_reference", "updated_at"])
    pdf = render_invoice_pdf(invoice)
    codes = dict(decoded_codes(pdf, tmp_path))
    assert codes["CODE-128"] == "RF18539007547034"
    assert codes["QR-Code"].split("\n")[9] == "RF18539007547034"
    assert "RF18 5390 0754 7034" in pdf_text(pdf, tmp_path)


def test_it_prints_the_romanian_counter_barcode_for_lei(
    issue: Issue, settings: Any, tmp_path: Path
) -> None:
    settings.OPERATOR_REFERENCE_SCHEME = "ro"
    invoice = issue(currency="RON")
    codes = decoded_codes(render_invoice_pdf(invoice), tmp_path)
    # No QR standard for RON: only the Code 128 of the collector's payload.
    assert [kind for kind, _ in codes] == ["CODE-128"]
    payload = parse_ro_payload(codes[0][1])
    assert payload.amount == D("233.24")
    assert payload.due_date == date(2026, 2, 17)
    assert payload.supplier_id == 1
    assert payload.client_code == 100001


def test_a_slovak_operator_adds_pay_by_square(issue: Issue, settings: Any, tmp_path: Path) -> None:
    settings.OPERATOR_COUNTRY = "SK"
    settings.OPERATOR_IBAN = "SK3112000000198742637541"
    settings.OPERATOR_REFERENCE_SCHEME = "sk"
    invoice = issue()
    text = pdf_text(render_invoice_pdf(invoice), tmp_path)
    assert "PAY by square" in text
    assert "VS 2026000001 · SS 100001 · KS 0308" in text
    codes = decoded_codes(render_invoice_pdf(invoice), tmp_path)
    qr = [data for kind, data in codes if kind == "QR-Code"]
    assert len(qr) == 2
    epc = next(data for data in qr if data.startswith("BCD"))
    assert "SK3112000000198742637541" in epc.split("\n")


# --- only our static files --------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.end_headers()
        self.wfile.write(b"body { color: red }")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def outside_server() -> Iterator[str]:
    _Recorder.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_it_fetches_nothing_but_our_static_files(outside_server: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    html = (
        f'<link rel="stylesheet" href="{outside_server}/evil.css">'
        f'<img src="{outside_server}/pixel.png">'
        f'<img src="file://{secret}">'
        f'<object data="file://{secret}"></object>'
        "<p>Invoice body</p>"
    )
    pdf = render_html_pdf(html)
    assert _Recorder.requests == []
    text = pdf_text(pdf, tmp_path)
    assert "Invoice body" in text
    assert "TOP-SECRET" not in text


def test_the_invoice_page_names_no_outside_resource(issue: Issue, readings: list[Reading]) -> None:
    html = documents.invoice_html(issue())
    resources = re.findall(r"""(?:src|href|url)\s*[=(]\s*["']?([^"')\s>]+)""", html)
    # The payment codes, inline; nothing to fetch.
    assert len(resources) == 2
    assert all(url.startswith("data:image/png;base64,") for url in resources)


# --- storing ------------------------------------------------------------------------


def test_it_stores_the_pdf_once(
    issue: Issue, monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = tmp_path
    invoice = issue()
    store_invoice_pdf(invoice)
    stored = Invoice.objects.get(pk=invoice.pk)
    content = stored.pdf.read()
    assert content.startswith(b"%PDF-")
    assert stored.pdf_sha256 == hashlib.sha256(content).hexdigest()
    assert invoice.pdf.name == stored.pdf.name

    def render_again(*args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("rendered a second time")

    monkeypatch.setattr(documents, "document_pdf", render_again)
    store_invoice_pdf(Invoice.objects.get(pk=invoice.pk))
    again = Invoice.objects.get(pk=invoice.pk)
    assert (again.pdf.name, again.pdf_sha256) == (stored.pdf.name, stored.pdf_sha256)
    assert [path.name for path in tmp_path.rglob("*.pdf")] == [Path(stored.pdf.name).name]


def test_a_worker_that_loses_the_race_keeps_the_winners_pdf(
    issue: Issue, monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = tmp_path
    invoice = issue()
    real = documents.document_pdf

    def render_while_another_worker_stores(*args: Any, **kwargs: Any) -> bytes:
        # This worker found no PDF and is rendering; another one finishes first.
        monkeypatch.setattr(documents, "document_pdf", real)
        store_invoice_pdf(Invoice.objects.get(pk=invoice.pk))
        return b"%PDF-1.7 the slower worker's rendering"

    monkeypatch.setattr(documents, "document_pdf", render_while_another_worker_stores)
    store_invoice_pdf(invoice)
    stored = Invoice.objects.get(pk=invoice.pk)
    content = stored.pdf.read()
    assert b"slower worker" not in content
    assert stored.pdf_sha256 == hashlib.sha256(content).hexdigest()
    assert (invoice.pdf.name, invoice.pdf_sha256) == (stored.pdf.name, stored.pdf_sha256)
    assert len(list(tmp_path.rglob("*.pdf"))) == 1


def test_it_refuses_to_store_a_draft(draft: Callable[..., Invoice]) -> None:
    invoice = draft()
    with pytest.raises(ValueError):
        store_invoice_pdf(invoice)
    assert not Invoice.objects.get(pk=invoice.pk).pdf


# --- the start-up check ---------------------------------------------------------------


def test_it_warns_at_start_up_when_harfbuzz_cannot_subset_fonts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert checks.check_pdf_fonts(None) == []
    from weasyprint.text import ffi

    monkeypatch.setattr(ffi, "harfbuzz_subset", None)
    [warning] = checks.check_pdf_fonts(None)
    assert warning.id == "guichet.W003"
    assert "libharfbuzz-subset0" in (warning.hint or "")
