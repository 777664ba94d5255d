"""Payment codes, decoded for real: each PNG (and the SVGs, rendered by
WeasyPrint into a PDF and rasterised with pdftoppm) goes through zbarimg."""

from __future__ import annotations

import base64
import lzma
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
import zlib
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.codes import (
    BYSQUARE_LZMA_FILTERS,
    PayableDocument,
    PaymentCodeSettings,
    code128,
    code128_modules,
    code128_start,
    codes_for,
    epc_payload,
    pagopa_payload,
    pay_by_square_payload,
    payment_codes,
    qr_code,
    zbp_payload,
)
from billing.references import ReferenceSettings, references_for

IBAN_SK = "SK3112000000198742637541"
IBAN_IT = "IT60X0542811101000000123456"
NRB = "61109010140000071219812874"
RF = "RF18539007547034"
DUE = date(2026, 3, 15)
REF_SETTINGS = ReferenceSettings(
    it_segregation_code="01", ro_supplier_id="042", pl_bank_fixed_part="1090101400000712"
)
ZBAR_NS = {"z": "http://zbar.sourceforge.net/2008/barcode"}


def zbar(path: Path) -> list[tuple[str, str]]:
    """(symbol type, data) of the one code zbarimg finds in an image.

    zbar guesses the character set of QR byte data (and takes UTF-8 for
    Shift JIS), so the data is read again with -Sbinary: the exact bytes,
    decoded here as UTF-8.
    """
    assert shutil.which("zbarimg"), "zbarimg is missing: run scripts/system-packages.sh"

    def run(*args: str) -> bytes:
        result = subprocess.run(
            ["zbarimg", "-q", "--nodbus", *args, str(path)], capture_output=True, check=False
        )
        assert result.returncode in (0, 4), result.stderr  # 4 = nothing found
        return result.stdout

    root = ET.fromstring(run("--xml").decode("utf-8"))
    types = [symbol.attrib["type"] for symbol in root.iterfind(".//z:symbol", ZBAR_NS)]
    if not types:
        return []
    assert len(types) == 1, f"one code per image expected, found {types}"
    data = run("-Sbinary", "--raw").decode("utf-8").removesuffix("\n")
    return [(types[0], data)]


def decode_png(png: bytes) -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "code.png"
        path.write_bytes(png)
        return zbar(path)


def read_by_square(text: str) -> list[str]:
    """A PAY by square decoder written from the spec (the PyPI package needs Python 3.12)."""
    raw = base64.b32hexdecode(text + "=" * (-len(text) % 8))
    assert raw[0] >> 4 == 0  # by square type: payment
    assert raw[0] & 0x0F == 0  # version 1.0.0
    assert raw[1] == 0  # document type, reserved
    length = int.from_bytes(raw[2:4], "little")
    data = lzma.decompress(raw[4:], format=lzma.FORMAT_RAW, filters=BYSQUARE_LZMA_FILTERS)
    assert len(data) == length
    crc, body = data[:4], data[4:]
    assert int.from_bytes(crc, "little") == zlib.crc32(body)
    return body.decode("utf-8").split("\t")


def document(currency: str, scheme: str, amount: str = "123.45") -> PayableDocument:
    refs = references_for(
        scheme,
        customer_number="C1000001",
        document_number="FV-2026-000123",
        amount=Decimal(amount),
        due_date=DUE,
        settings=REF_SETTINGS,
    )
    return PayableDocument(
        document_number="FV-2026-000123",
        currency=currency,
        amount=Decimal(amount),
        due_date=DUE,
        references=refs,
        note="Faktúra FV-2026-000123",
    )


def operator(country: str, iban: str, **extra: str) -> PaymentCodeSettings:
    return PaymentCodeSettings(
        country=country, beneficiary_name="Služby mesta Košice a.s.", iban=iban, **extra
    )


# --- EPC QR ---------------------------------------------------------------------


def test_it_builds_the_epc_payload_line_by_line():
    payload = epc_payload(
        name="Wikimedia Foerdergesellschaft", iban=IBAN_SK, amount=Decimal("20"), reference=RF
    )
    assert payload.split("\n") == [
        "BCD", "002", "1", "SCT", "", "Wikimedia Foerdergesellschaft", IBAN_SK,
        "EUR20.00", "", RF,
    ]  # fmt: skip


def test_it_puts_a_text_in_line_11_when_there_is_no_reference():
    payload = epc_payload(name="X", iban=IBAN_SK, amount=Decimal("1.5"), text="Invoice 12")
    assert payload.split("\n")[7:] == ["EUR1.50", "", "", "Invoice 12"]


def test_it_decodes_the_epc_qr_with_iban_amount_and_reference():
    payload = epc_payload(
        name="Služby mesta Košice a.s.",
        iban="SK31 1200 0000 1987 4263 7541",
        bic="SUBASKBX",
        amount=Decimal("1234.56"),
        reference=RF,
    )
    code = qr_code("epc", payload, label="EPC", error="M", symbol_mm=30)
    [(kind, data)] = decode_png(code.png())
    assert kind == "QR-Code"
    assert data == payload
    lines = data.split("\n")
    assert lines[5:8] == ["Služby mesta Košice a.s.", IBAN_SK, "EUR1234.56"]
    assert lines[9] == RF


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"currency": "PLN"}, "EUR only; the currency is PLN"),
        ({"name": "N" * 80}, "beneficiary name has 80 characters; at most 70"),
        ({"name": " "}, "beneficiary name is required"),
        ({"amount": Decimal("0")}, "at least 0.01"),
        ({"amount": Decimal("-5")}, "at least 0.01"),
        ({"amount": Decimal("1000000000.00")}, "above the maximum 999999999.99"),
        ({"amount": Decimal("1.001")}, "more than two decimals"),
        ({"iban": "SK3112000000198742637542"}, "IBAN 'SK3112000000198742637542' is not valid"),
        ({"bic": "SUBA"}, "BIC 'SUBA' is not valid"),
        ({"reference": "RF19539007547034"}, "RF reference 'RF19539007547034' is not valid"),
        ({"text": "Invoice 12"}, "cannot both be given"),
        ({"reference": "", "text": "x" * 141}, "remittance text has 141 characters"),
    ],
)
def test_it_refuses_bad_epc_input_naming_the_problem(changes: dict, message: str):
    fields = {"name": "Operator", "iban": IBAN_SK, "amount": Decimal("10"), "reference": RF}
    with pytest.raises(ValueError, match=re.escape(message)):
        epc_payload(**{**fields, **changes})


@given(st.integers(1, 99_999_999_999).map(lambda cents: Decimal(cents) / 100))
def test_it_writes_every_epc_amount_with_two_decimals(amount: Decimal):
    payload = epc_payload(name="Operator", iban=IBAN_SK, amount=amount, reference=RF)
    line = payload.split("\n")[7]
    assert re.fullmatch(r"EUR\d+\.\d\d", line)
    assert Decimal(line[3:]) == amount
    assert len(payload.encode()) <= 331


def test_it_renders_an_embeddable_svg():
    payload = epc_payload(name="Operator", iban=IBAN_SK, amount=Decimal("10"), reference=RF)
    svg = qr_code("epc", payload, label="Pay <now>", error="M", symbol_mm=30).svg
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" width="')
    assert "<?xml" not in svg
    assert "style=" not in svg
    assert re.search(r'viewBox="0 0 (\d+) \1"', svg)
    assert 'aria-label="Pay &lt;now&gt;"' in svg


# --- PAY by square -------------------------------------------------------------


def test_it_decodes_pay_by_square_with_symbols_and_account():
    text = pay_by_square_payload(
        iban=IBAN_SK, amount=Decimal("123.45"), due_date=DUE, variable_symbol="2026000123",
        specific_symbol="1000001", constant_symbol="0308", note="Faktúra č. 123",
        beneficiary_name="Služby a.s.",
    )  # fmt: skip
    code = qr_code("bysquare", text, label="PAY by square", error="M", symbol_mm=30)
    [(kind, data)] = decode_png(code.png())
    assert (kind, data) == ("QR-Code", text)
    fields = read_by_square(data)
    assert fields == [
        "", "1", "1", "123.45", "EUR", "20260315", "2026000123", "0308", "1000001", "",
        "Faktura c. 123", "1", IBAN_SK, "", "0", "0", "Sluzby a.s.", "", "",
    ]  # fmt: skip


@settings(max_examples=30)
@given(
    amount=st.integers(1, 99_999_999).map(lambda cents: Decimal(cents) / 100),
    vs=st.from_regex(r"[1-9][0-9]{0,9}", fullmatch=True),
    note=st.text(st.characters(codec="utf-8", exclude_characters="\t\n\r"), max_size=60),
)
def test_it_round_trips_pay_by_square_fields(amount: Decimal, vs: str, note: str):
    text = pay_by_square_payload(iban=IBAN_SK, amount=amount, due_date=DUE,
                                 variable_symbol=vs, note=note)  # fmt: skip
    assert re.fullmatch(r"[0-9A-V]+", text)
    fields = read_by_square(text)
    assert Decimal(fields[3]) == amount
    assert fields[6] == vs
    assert fields[12] == IBAN_SK


def test_it_refuses_bad_pay_by_square_input():
    with pytest.raises(ValueError, match="EUR only"):
        pay_by_square_payload(iban=IBAN_SK, amount=Decimal("1"), due_date=DUE, currency="CZK")
    with pytest.raises(ValueError, match="variable symbol must be at most 10 digits"):
        pay_by_square_payload(iban=IBAN_SK, amount=Decimal("1"), due_date=DUE,
                              variable_symbol="12345678901")  # fmt: skip
    with pytest.raises(ValueError, match="at least 0.01"):
        pay_by_square_payload(iban=IBAN_SK, amount=Decimal("0"), due_date=DUE)


# --- pagoPA --------------------------------------------------------------------


def test_it_decodes_the_pagopa_qr():
    notice = "301000202600012302"
    payload = pagopa_payload(notice_number=notice, fiscal_code="83000390019",
                             amount=Decimal("2222.50"))  # fmt: skip
    assert payload == f"PAGOPA|002|{notice}|83000390019|222250"
    code = qr_code("pagopa", payload, label="pagoPA", error="M", symbol_mm=25, version=4)
    assert 'viewBox="0 0 41 41"' in code.svg  # version 4: 33 modules + quiet zone
    assert decode_png(code.png()) == [("QR-Code", payload)]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"notice_number": "301000202600012303"}, "check digits are wrong"),
        ({"notice_number": "3010002026000123"}, "must be 18 digits"),
        ({"fiscal_code": "83000390018"}, "fiscal code"),
        ({"amount": Decimal("0")}, "at least 0.01"),
        ({"amount": Decimal("100000000")}, "above the maximum"),
    ],
)
def test_it_refuses_bad_pagopa_input(changes: dict, message: str):
    fields = {
        "notice_number": "301000202600012302",
        "fiscal_code": "83000390019",
        "amount": Decimal("10"),
    }
    with pytest.raises(ValueError, match=message):
        pagopa_payload(**{**fields, **changes})


# --- ZBP 2D ---------------------------------------------------------------------


def test_it_decodes_the_zbp_qr_with_nine_fields():
    payload = zbp_payload(nrb="PL" + NRB, amount=Decimal("140.50"), name="Wodociągi Miejskie",
                          title=RF, nip="1234563218")  # fmt: skip
    assert payload == f"1234563218|PL|{NRB}|014050|Wodociągi Miejskie|{RF}|||"
    assert len(payload.split("|")) == 9
    code = qr_code("zbp", payload, label="ZBP", error="L", symbol_mm=25)
    assert decode_png(code.png()) == [("QR-Code", payload)]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amount": Decimal("10000.00")}, "above the maximum 9999.99"),
        ({"amount": Decimal("0")}, "at least 0.01"),
        ({"name": "N" * 21}, "recipient name has 21 characters; at most 20"),
        ({"title": "T" * 33}, "transfer title has 33 characters; at most 32"),
        ({"title": "a|b"}, "transfer title contains a character that is not allowed"),
        ({"nrb": NRB[:-1] + "5"}, "account number (NRB)"),
        ({"nip": "1234563219"}, "NIP '1234563219' is not valid"),
    ],
)
def test_it_refuses_bad_zbp_input(changes: dict, message: str):
    fields = {"nrb": NRB, "amount": Decimal("10"), "name": "Operator", "title": "FV 1"}
    with pytest.raises(ValueError, match=re.escape(message)):
        zbp_payload(**{**fields, **changes})


# --- Code 128 ---------------------------------------------------------------------


def test_it_encodes_a_numeric_payload_in_subset_c_only():
    payload = document("RON", "ro").references[1].value
    assert len(payload) == 40
    assert code128_start(payload) == 105  # START C
    # start + 20 digit pairs + check, 11 modules each, and the 13-module stop:
    # no code switch anywhere.
    assert len(code128_modules(payload)) == 11 * 22 + 13


def test_it_decodes_the_code128_barcode_with_the_text_under_it():
    payload = document("RON", "ro").references[1]
    code = code128(payload.value, label="Counter", text=payload.display)
    assert decode_png(code.png()) == [("CODE-128", payload.value)]
    assert f">{payload.display}</text>" in code.svg
    assert "<?xml" not in code.svg and "style=" not in code.svg
    assert re.search(r'width="[\d.]+mm" height="[\d.]+mm" viewBox="0 0 \d+ \d+"', code.svg)


def test_it_decodes_an_alphanumeric_rf_barcode():
    assert decode_png(code128(RF, label="RF").png()) == [("CODE-128", RF)]


def test_it_refuses_a_barcode_of_non_ascii_text():
    with pytest.raises(ValueError, match="printable ASCII"):
        code128("Plată", label="x")


# --- which codes a document gets ------------------------------------------------------


def kinds(doc: PayableDocument, settings: PaymentCodeSettings) -> list[str]:
    return [code.kind for code in payment_codes(doc, settings)]


def test_it_prints_epc_and_pay_by_square_in_slovakia():
    assert kinds(document("EUR", "sk"), operator("SK", IBAN_SK)) == ["epc", "bysquare", "code128"]


def test_it_prints_pagopa_in_italy_only_when_configured():
    doc = document("EUR", "it")
    assert kinds(doc, operator("IT", IBAN_IT)) == ["epc", "code128"]
    configured = operator("IT", IBAN_IT, pagopa_fiscal_code="83000390019")
    assert kinds(doc, configured) == ["epc", "pagopa", "code128"]


def test_it_prints_zbp_for_zloty_and_only_a_barcode_for_lei():
    pl = operator("PL", "PL" + NRB, tax_id="1234563218")
    assert kinds(document("PLN", "pl"), pl) == ["zbp", "code128"]
    assert kinds(document("RON", "ro"), operator("RO", "RO49AAAA1B31007593840000")) == ["code128"]


def test_it_prints_no_code_when_nothing_is_due():
    assert codes_for(document("EUR", "rf", amount="0"), operator("SK", IBAN_SK)) == []


def test_it_refuses_an_invalid_operator_iban():
    with pytest.raises(ValueError, match="IBAN"):
        codes_for(document("EUR", "rf"), operator("SK", "SK00"))


def test_it_labels_each_svg():
    pairs = codes_for(document("EUR", "sk"), operator("SK", IBAN_SK))
    assert [label for label, _ in pairs] == [
        "SEPA payment QR code",
        "PAY by square",
        "Barcode for payment at the counter",
    ]
    assert all(svg.startswith("<svg ") and svg.endswith("</svg>") for _, svg in pairs)


def test_it_pays_to_the_virtual_account_in_poland():
    doc = document("PLN", "pl")
    [zbp, _] = payment_codes(doc, operator("PL", "PL" + NRB))
    virtual = doc.references[1].value
    fields = zbp.payload.split("|")
    assert fields[2] == virtual
    assert fields[3] == "012345"
    assert fields[4] == "Služby mesta Košice"  # cut to the 20 characters ZBP allows
    assert fields[5] == doc.references[0].value


@pytest.mark.skipif(not shutil.which("pdftoppm"), reason="poppler-utils missing")
def test_it_decodes_every_svg_from_a_weasyprint_pdf(tmp_path: Path):
    """The SVGs themselves, as an invoice PDF would print them."""
    from weasyprint import HTML

    cases = [
        (document("EUR", "sk"), operator("SK", IBAN_SK)),
        (document("EUR", "it"), operator("IT", IBAN_IT, pagopa_fiscal_code="83000390019")),
        (document("PLN", "pl"), operator("PL", "PL" + NRB, tax_id="1234563218")),
        (document("RON", "ro"), operator("RO", "RO49AAAA1B31007593840000")),
    ]
    expected = []
    pages = []
    for doc, settings_ in cases:
        for code in payment_codes(doc, settings_):
            expected.append(("CODE-128" if code.kind == "code128" else "QR-Code", code.payload))
            pages.append(code.svg)
    # One code per page: zbar reads QR bytes exactly only one symbol at a time.
    html = "<style>@page { size: 110mm 45mm; margin: 4mm }</style>" + "".join(
        f'<section style="page-break-after: always">{svg}</section>' for svg in pages
    )
    pdf = tmp_path / "codes.pdf"
    pdf.write_bytes(HTML(string=html).write_pdf())
    subprocess.run(["pdftoppm", "-r", "200", "-gray", "-png", pdf, tmp_path / "p"], check=True)
    found = [symbol for png in sorted(tmp_path.glob("p*.png")) for symbol in zbar(png)]
    assert sorted(found) == sorted(expected)
