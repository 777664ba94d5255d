"""Payment codes for payable documents: QR codes and a Code 128 barcode.

Payload builders (pure, raise ValueError naming the field at fault):
``epc_payload`` (EPC069-12 SEPA credit transfer QR), ``pay_by_square_payload``
(Slovak PAY by square), ``pagopa_payload`` (Italian pagoPA notice QR),
``zbp_payload`` (Polish ZBP 2D transfer QR). ``codes_for`` picks the codes a
document gets by currency and operator country (DOMAIN §2.8).

SVGs are embed-ready for HTML and WeasyPrint: no XML declaration, a size in
millimetres plus a viewBox, and presentation attributes only (no ``style``
attributes, which the site's CSP would block). ``PaymentCode.png()`` renders
the same symbol as PNG bytes (tests decode it with zbarimg).
"""

from __future__ import annotations

import base64
import io
import lzma
import re
import unicodedata
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from html import escape
from typing import Literal

import barcode
import segno
from django.utils.translation import gettext
from stdnum import iban as stdnum_iban
from stdnum import iso11649
from stdnum.exceptions import ValidationError
from stdnum.it import iva as it_iva
from stdnum.pl import nip as pl_nip

from billing.references import (
    CENT,
    PaymentReference,
    Scheme,
    is_valid_notice_number,
    minor_units,
    parse_sk_symbols,
)

QR_BORDER = 4  # quiet zone, modules
CODE128_QUIET = 10  # quiet zone, modules
CODE128_MODULE_MM = Decimal("0.33")
CODE128_BAR_MODULES = 45  # bar height in modules (≈ 15 mm)


# --- rendering -------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentCode:
    kind: Literal["epc", "bysquare", "pagopa", "zbp", "code128"]
    label: str
    payload: str
    svg: str
    error: str = ""  # QR error correction level; empty for Code 128
    version: int | None = None  # QR version forced by the format, if any
    text: str = ""  # human-readable line under a barcode

    def png(self, scale: int = 4) -> bytes:
        """The same symbol as PNG bytes."""
        if self.kind == "code128":
            return _code128_png(self.payload, scale)
        buffer = io.BytesIO()
        _qr(self.payload, self.error, self.version).save(
            buffer, kind="png", scale=scale, border=QR_BORDER
        )
        return buffer.getvalue()


def _qr(payload: str, error: str, version: int | None = None) -> segno.QRCode:
    return segno.make(
        payload, error=error, version=version, micro=False, encoding="utf-8", boost_error=False
    )


def _qr_svg(qr: segno.QRCode, *, symbol_mm: int, label: str) -> str:
    """A QR code as one <path> (run-length per row) on a white square."""
    rows = [list(row) for row in qr.matrix_iter(scale=1, border=QR_BORDER)]
    size = len(rows)
    path = []
    for y, row in enumerate(rows):
        x = 0
        while x < size:
            if row[x]:
                start = x
                while x < size and row[x]:
                    x += 1
                path.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    total_mm = Decimal(symbol_mm) * size / (size - 2 * QR_BORDER)
    mm = f"{total_mm.quantize(CENT)}mm"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{mm}" height="{mm}" '
        f'viewBox="0 0 {size} {size}" role="img" aria-label="{escape(label)}" '
        f'shape-rendering="crispEdges">'
        f'<rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(path)}"/></svg>'
    )


def qr_code(
    kind: Literal["epc", "bysquare", "pagopa", "zbp"],
    payload: str,
    *,
    label: str,
    error: str,
    symbol_mm: int,
    version: int | None = None,
) -> PaymentCode:
    qr = _qr(payload, error, version)
    return PaymentCode(
        kind=kind,
        label=label,
        payload=payload,
        svg=_qr_svg(qr, symbol_mm=symbol_mm, label=label),
        error=error,
        version=version,
    )


def code128_modules(value: str) -> str:
    """The bar/space pattern ('1' = bar) of a Code 128 symbol, start to stop.

    python-barcode starts in subset C and stays there for runs of digits, so
    an even-length numeric payload is encoded in subset C from start to stop.
    """
    if not value or not value.isascii() or not value.isprintable():
        raise ValueError("A Code 128 barcode needs printable ASCII text.")
    return str(barcode.get_barcode_class("code128")(value).build()[0])


def code128_start(value: str) -> int:
    """The start symbol's value (103 = subset A, 104 = B, 105 = C)."""
    return int(barcode.get_barcode_class("code128")(value).encoded[0])


def code128(value: str, *, label: str, text: str = "") -> PaymentCode:
    """A Code 128 barcode of ``value`` with ``text`` (default: the value) under it."""
    modules = code128_modules(value)
    text = text or value
    width = len(modules) + 2 * CODE128_QUIET
    text_size = 9  # modules ≈ 3 mm
    height = CODE128_BAR_MODULES + text_size + 6
    bars = []
    x = 0
    while x < len(modules):
        if modules[x] == "1":
            start = x
            while x < len(modules) and modules[x] == "1":
                x += 1
            bars.append(
                f"M{start + CODE128_QUIET} 0h{x - start}v{CODE128_BAR_MODULES}h-{x - start}z"
            )
        else:
            x += 1
    width_mm = (CODE128_MODULE_MM * width).quantize(CENT)
    height_mm = (CODE128_MODULE_MM * height).quantize(CENT)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width_mm}mm" height="{height_mm}mm" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">'
        f'<rect width="{width}" height="{height}" fill="#fff"/>'
        f'<path fill="#000" shape-rendering="crispEdges" d="{"".join(bars)}"/>'
        f'<text x="{width // 2}" y="{CODE128_BAR_MODULES + text_size + 1}" '
        f'font-family="DejaVu Sans Mono, monospace" font-size="{text_size}" '
        f'text-anchor="middle" fill="#000">{escape(text)}</text></svg>'
    )
    return PaymentCode(kind="code128", label=label, payload=value, svg=svg, text=text)


def _code128_png(value: str, scale: int) -> bytes:
    from PIL import Image, ImageDraw

    modules = code128_modules(value)
    width = (len(modules) + 2 * CODE128_QUIET) * scale
    height = CODE128_BAR_MODULES * scale + 2 * CODE128_QUIET * scale
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    top = CODE128_QUIET * scale
    for i, module in enumerate(modules):
        if module == "1":
            x = (i + CODE128_QUIET) * scale
            draw.rectangle([x, top, x + scale - 1, top + CODE128_BAR_MODULES * scale - 1], fill=0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# --- shared checks ---------------------------------------------------------------


def _check_text(field: str, value: str, limit: int, *, forbidden: str = "\n\r") -> str:
    value = value.strip()
    if len(value) > limit:
        raise ValueError(f"The {field} has {len(value)} characters; at most {limit} are allowed.")
    if any(ch in value for ch in forbidden):
        raise ValueError(f"The {field} contains a character that is not allowed.")
    return value


def _check_iban(value: str, field: str = "IBAN") -> str:
    try:
        return str(stdnum_iban.validate(value))
    except ValidationError:
        raise ValueError(f"The {field} {value!r} is not valid.") from None


def _check_bic(value: str) -> str:
    value = value.replace(" ", "").upper()
    if value and not re.fullmatch(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?", value):
        raise ValueError(f"The BIC {value!r} is not valid (8 or 11 characters).")
    return value


def _check_amount(amount: Decimal, maximum: Decimal) -> int:
    """Minor units of a positive amount up to ``maximum``."""
    cents = minor_units(amount)
    if cents < 1:
        raise ValueError(f"The amount {amount} must be at least 0.01.")
    if amount > maximum:
        raise ValueError(f"The amount {amount} is above the maximum {maximum}.")
    return cents


def _check_currency(currency: str, expected: str, code: str) -> None:
    if currency != expected:
        raise ValueError(f"{code} is for {expected} only; the currency is {currency}.")


# --- EPC QR (SEPA credit transfer) -----------------------------------------------

EPC_MAX_AMOUNT = Decimal("999999999.99")
EPC_MAX_BYTES = 331


def epc_payload(
    *,
    name: str,
    iban: str,
    amount: Decimal,
    currency: str = "EUR",
    bic: str = "",
    reference: str = "",
    text: str = "",
    purpose: str = "",
    information: str = "",
) -> str:
    """EPC069-12 version 002, UTF-8: a structured reference or a text, never both."""
    _check_currency(currency, "EUR", "The EPC QR code")
    name = _check_text("beneficiary name", name, 70)
    if not name:
        raise ValueError("The beneficiary name is required.")
    account = _check_iban(iban)
    cents = _check_amount(amount, EPC_MAX_AMOUNT)
    reference = reference.replace(" ", "").upper()
    text = _check_text("remittance text", text, 140)
    if reference and text:
        raise ValueError("A structured reference and a remittance text cannot both be given.")
    if len(reference) > 35:
        raise ValueError("The structured reference has more than 35 characters.")
    if reference.startswith("RF"):
        try:
            iso11649.validate(reference)
        except ValidationError:
            raise ValueError(f"The RF reference {reference!r} is not valid.") from None
    if purpose and not re.fullmatch(r"[A-Z]{4}", purpose):
        raise ValueError("The purpose code must be 4 capital letters.")
    lines = [
        "BCD",
        "002",
        "1",
        "SCT",
        _check_bic(bic),
        name,
        account,
        f"EUR{cents // 100}.{cents % 100:02d}",
        purpose,
        reference,
        text,
        _check_text("information", information, 70),
    ]
    while lines[-1] == "":
        lines.pop()
    payload = "\n".join(lines)
    if len(payload.encode("utf-8")) > EPC_MAX_BYTES:
        raise ValueError(f"The EPC QR payload is longer than {EPC_MAX_BYTES} bytes.")
    return payload


# --- PAY by square (Slovakia) ----------------------------------------------------

BYSQUARE_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA1, "dict_size": 1 << 17, "lc": 3, "lp": 0, "pb": 2}]
BYSQUARE_MAX_AMOUNT = Decimal("999999999.99")


def deburr(text: str) -> str:
    """Drop diacritics (many Slovak bank apps fail on them)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def pay_by_square_payload(
    *,
    iban: str,
    amount: Decimal,
    due_date: date,
    currency: str = "EUR",
    variable_symbol: str = "",
    constant_symbol: str = "",
    specific_symbol: str = "",
    reference: str = "",
    note: str = "",
    bic: str = "",
    beneficiary_name: str = "",
    invoice_id: str = "",
) -> str:
    """One payment order, header version 1.0.0, as the base32hex text to put in a QR."""
    _check_currency(currency, "EUR", "PAY by square")
    account = _check_iban(iban)
    _check_amount(amount, BYSQUARE_MAX_AMOUNT)
    for field, value, width in (
        ("variable symbol", variable_symbol, 10),
        ("specific symbol", specific_symbol, 10),
        ("constant symbol", constant_symbol, 4),
    ):
        if value and not re.fullmatch(rf"\d{{1,{width}}}", value):
            raise ValueError(f"The {field} must be at most {width} digits.")
    fields = [
        _check_text("invoice id", invoice_id, 10, forbidden="\t\n\r"),
        "1",  # payments count
        "1",  # payment order
        str(amount.quantize(CENT)),
        currency,
        f"{due_date:%Y%m%d}",
        variable_symbol,
        constant_symbol,
        specific_symbol,
        _check_text("reference", reference, 35, forbidden="\t\n\r"),
        deburr(_check_text("payment note", note, 140, forbidden="\t\n\r")),
        "1",  # bank accounts count
        account,
        _check_bic(bic),
        "0",  # no standing order extension
        "0",  # no direct debit extension
        deburr(_check_text("beneficiary name", beneficiary_name, 70, forbidden="\t\n\r")),
        "",  # beneficiary street
        "",  # beneficiary city
    ]
    data = "\t".join(fields).encode("utf-8")
    with_crc = zlib.crc32(data).to_bytes(4, "little") + data
    compressed = lzma.compress(with_crc, format=lzma.FORMAT_RAW, filters=BYSQUARE_LZMA_FILTERS)
    header = bytes([0x00, 0x00])  # by square type 0, version 0 (1.0.0), document 0, reserved
    raw = header + len(with_crc).to_bytes(2, "little") + compressed
    return base64.b32hexencode(raw).decode("ascii").rstrip("=")


# --- pagoPA (Italy) --------------------------------------------------------------

PAGOPA_MAX_AMOUNT = Decimal("99999999.99")


def pagopa_payload(*, notice_number: str, fiscal_code: str, amount: Decimal) -> str:
    """``PAGOPA|002|<numero avviso 18>|<codice fiscale ente 11>|<importo in centesimi>``."""
    if not re.fullmatch(r"\d{18}", notice_number):
        raise ValueError("The pagoPA notice number must be 18 digits.")
    if notice_number[0] in "03" and not is_valid_notice_number(notice_number):
        raise ValueError("The pagoPA notice number's check digits are wrong.")
    if not it_iva.is_valid(fiscal_code) or len(fiscal_code) != 11:
        raise ValueError("The creditor's fiscal code must be a valid 11-digit code.")
    cents = _check_amount(amount, PAGOPA_MAX_AMOUNT)
    return f"PAGOPA|002|{notice_number}|{fiscal_code}|{cents}"


# --- ZBP 2D (Poland) ------------------------------------------------------------

ZBP_MAX_AMOUNT = Decimal("9999.99")


def zbp_payload(
    *,
    nrb: str,
    amount: Decimal,
    name: str,
    title: str,
    nip: str = "",
    country: str = "PL",
) -> str:
    """``NIP|KRAJ|NRB|KWOTA|NAZWA|TYTUŁ|||`` (9 fields, amount as 6 digits in grosze)."""
    account = nrb.replace(" ", "").upper().removeprefix("PL")
    if not re.fullmatch(r"\d{26}", account):
        raise ValueError("The account number (NRB) must be 26 digits.")
    _check_iban("PL" + account, "account number (NRB)")
    if nip and not pl_nip.is_valid(nip):
        raise ValueError(f"The NIP {nip!r} is not valid.")
    grosze = _check_amount(amount, ZBP_MAX_AMOUNT)
    fields = [
        pl_nip.compact(nip) if nip else "",
        country,
        account,
        f"{grosze:06d}",
        _check_text("recipient name", name, 20, forbidden="|\n\r"),
        _check_text("transfer title", title, 32, forbidden="|\n\r"),
        "",
        "",
        "",
    ]
    payload = "|".join(fields)
    if len(payload) > 160:
        raise ValueError("The ZBP QR payload is longer than 160 characters.")
    return payload


# --- choosing the codes of a document --------------------------------------------


@dataclass(frozen=True)
class PayableDocument:
    document_number: str
    currency: str
    amount: Decimal
    due_date: date
    references: Sequence[PaymentReference]
    note: str = ""  # free text for the payer, used where no structured reference fits


@dataclass(frozen=True)
class PaymentCodeSettings:
    country: str  # the operator's country, ISO 3166 alpha-2
    beneficiary_name: str
    iban: str
    bic: str = ""
    tax_id: str = ""  # NIP for the ZBP QR
    pagopa_fiscal_code: str = ""  # set to print the pagoPA QR (IT)


def _reference(references: Iterable[PaymentReference], kind: str) -> PaymentReference | None:
    return next((ref for ref in references if ref.kind == kind), None)


def payment_codes(document: PayableDocument, settings: PaymentCodeSettings) -> list[PaymentCode]:
    """The codes printed on a document; nothing when there is nothing to pay.

    EUR → EPC QR (+ PAY by square in SK, + pagoPA in IT when configured);
    PLN → ZBP QR; RON → no QR. Every document also gets a Code 128 barcode
    of its counter reference (the RO payload, else the RF reference).
    """
    if document.amount <= 0:
        return []
    refs = document.references
    rf = _reference(refs, Scheme.RF)
    codes: list[PaymentCode] = []
    country = settings.country.upper()
    if document.currency == "EUR":
        payload = epc_payload(
            name=settings.beneficiary_name,
            iban=settings.iban,
            bic=settings.bic,
            amount=document.amount,
            reference=rf.value if rf else "",
            text="" if rf else document.note,
        )
        codes.append(
            qr_code("epc", payload, label=gettext("SEPA payment QR code"), error="M", symbol_mm=30)
        )
        if country == "SK":
            sk = _reference(refs, Scheme.SK)
            symbols = parse_sk_symbols(sk.value) if sk else None
            payload = pay_by_square_payload(
                iban=settings.iban,
                bic=settings.bic,
                amount=document.amount,
                due_date=document.due_date,
                variable_symbol=symbols.variable if symbols else "",
                specific_symbol=symbols.specific if symbols else "",
                constant_symbol=symbols.constant if symbols else "",
                reference=rf.value if rf else "",
                note=document.note,
                beneficiary_name=settings.beneficiary_name,
            )
            codes.append(
                qr_code(
                    "bysquare", payload, label=gettext("PAY by square"), error="M", symbol_mm=30
                )
            )
        notice = _reference(refs, Scheme.IT)
        if country == "IT" and settings.pagopa_fiscal_code and notice:
            payload = pagopa_payload(
                notice_number=notice.value,
                fiscal_code=settings.pagopa_fiscal_code,
                amount=document.amount,
            )
            codes.append(
                qr_code(
                    "pagopa",
                    payload,
                    label=gettext("pagoPA QR code"),
                    error="M",
                    symbol_mm=25,
                    version=4,
                )
            )
    elif document.currency == "PLN":
        virtual = _reference(refs, Scheme.PL)
        payload = zbp_payload(
            nrb=virtual.value if virtual else settings.iban,
            amount=document.amount,
            name=settings.beneficiary_name[:20].strip(),
            title=(rf.value if rf else document.document_number)[:32],
            nip=settings.tax_id,
        )
        codes.append(
            qr_code("zbp", payload, label=gettext("Transfer QR code"), error="L", symbol_mm=25)
        )
    counter = _reference(refs, Scheme.RO) or rf
    if counter:
        codes.append(
            code128(
                counter.value,
                label=gettext("Barcode for payment at the counter"),
                text=counter.display,
            )
        )
    return codes


def codes_for(
    document_fields: PayableDocument, operator_settings: PaymentCodeSettings
) -> list[tuple[str, str]]:
    """(label, svg) pairs to print on the document, in order."""
    return [(code.label, code.svg) for code in payment_codes(document_fields, operator_settings)]
