from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import iban as stdnum_iban
from stdnum import iso11649, luhn

from billing.references import (
    PaymentReference,
    ReferenceSettings,
    RoPayload,
    build_ro_payload,
    group,
    is_valid_notice_number,
    is_valid_rf,
    iuv_check_digits,
    notice_number,
    nrb_check_digits,
    parse_ro_payload,
    parse_sk_symbols,
    reference_for,
    references_for,
    rf_reference,
    virtual_account,
)

SETTINGS = ReferenceSettings(
    sk_constant_symbol="0308",
    it_aux_digit="3",
    it_segregation_code="01",
    ro_supplier_id="042",
    pl_bank_fixed_part="1090101400000712",
)
DOC: dict[str, Any] = {
    "customer_number": "C1000001",
    "document_number": "FV-2026-000123",
    "amount": Decimal("123.45"),
    "due_date": date(2026, 3, 15),
    "settings": SETTINGS,
}

alnum = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=21)


# --- ISO 11649 RF ---------------------------------------------------------------


def test_it_builds_the_rf_reference_of_the_standard_example():
    assert rf_reference("539007547034") == "RF18539007547034"
    assert iso11649.validate("RF18539007547034") == "RF18539007547034"


def test_it_prints_rf_in_blocks_of_four():
    assert group("RF18539007547034") == "RF18 5390 0754 7034"
    assert iso11649.format("RF18539007547034") == group("RF18539007547034")


def test_it_refuses_wrong_check_digits():
    assert is_valid_rf("RF18539007547034")
    assert not is_valid_rf("RF19539007547034")
    assert not is_valid_rf("RF18539007547035")


@given(alnum)
def test_it_generates_rf_references_that_stdnum_validates(base: str):
    reference = rf_reference(base)
    assert reference[4:] == base
    assert iso11649.validate(reference) == reference


@pytest.mark.parametrize("base", ["", "-- --", "1234567890123456789012"])
def test_it_refuses_an_rf_base_that_is_empty_or_too_long(base: str):
    with pytest.raises(ValueError, match="1 to 21"):
        rf_reference(base)


def test_it_derives_the_rf_reference_from_customer_and_document_numbers():
    ref = reference_for("rf", **DOC)
    assert ref.kind == "rf"
    assert ref.value == rf_reference("01000001FV2026000123")
    assert iso11649.validate(ref.value)
    assert ref.display == group(ref.value)


def test_it_uses_rf_when_no_scheme_is_configured():
    assert reference_for("", **DOC) == reference_for("rf", **DOC)


def test_it_refuses_a_document_number_too_long_for_rf():
    with pytest.raises(ValueError, match="too long for an RF reference"):
        reference_for("rf", **{**DOC, "document_number": "INVOICE-2026-0000000123"})


def test_it_refuses_an_unknown_scheme():
    with pytest.raises(ValueError, match="Unknown payment reference scheme 'xx'"):
        reference_for("xx", **DOC)


def test_it_gives_rf_and_the_national_variant():
    refs = references_for("sk", **DOC)
    assert [r.kind for r in refs] == ["rf", "sk"]
    assert [r.kind for r in references_for("rf", **DOC)] == ["rf"]


# --- Slovakia -----------------------------------------------------------------


def test_it_builds_slovak_symbols():
    ref = reference_for("sk", **DOC)
    assert ref == PaymentReference(
        kind="sk",
        value="/VS2026000123/SS1000001/KS0308",
        display="VS 2026000123 · SS 1000001 · KS 0308",
    )
    symbols = parse_sk_symbols(ref.value)
    assert (symbols.variable, symbols.specific, symbols.constant) == (
        "2026000123",
        "1000001",
        "0308",
    )


def test_it_refuses_slovak_symbols_that_do_not_fit():
    with pytest.raises(ValueError, match="variable symbol"):
        reference_for("sk", **{**DOC, "document_number": "FV-20260-000123"})
    with pytest.raises(ValueError, match="constant symbol must be exactly 4 digits"):
        reference_for("sk", **{**DOC, "settings": ReferenceSettings(sk_constant_symbol="38")})
    with pytest.raises(ValueError, match="Not a Slovak"):
        parse_sk_symbols("/VS12345678901/SS/KS")


# --- Italy: pagoPA ---------------------------------------------------------------


def test_it_computes_iuv_check_digits_mod_93():
    # 0 00 0000000000100 → 100 mod 93 = 7
    assert iuv_check_digits("0", "00", "0000000000100") == "07"
    # 3 01 0000000000001 → 3010000000000001 = 93 × 32365591397849 + 44
    assert iuv_check_digits("3", "01", "0000000000001") == "44"
    assert 93 * 32365591397849 + 44 == 3010000000000001


def test_it_builds_the_notice_number_with_aux_digit_3():
    ref = reference_for("it", **DOC)
    base = "0002026000123"
    check = f"{int('301' + base) % 93:02d}"
    assert ref.value == "301" + base + check
    assert len(ref.value) == 18
    assert ref.display == "3010 0020 2600 0123 " + check


def test_it_builds_the_notice_number_with_aux_digit_0():
    settings = ReferenceSettings(it_aux_digit="0", it_application_code="12")
    ref = reference_for("it", **{**DOC, "settings": settings})
    assert ref.value.startswith("012")
    assert is_valid_notice_number(ref.value)


def test_it_refuses_a_missing_segregation_code():
    with pytest.raises(ValueError, match="segregation code must be exactly 2 digits"):
        reference_for("it", **{**DOC, "settings": ReferenceSettings()})


@given(
    aux=st.sampled_from(["0", "3"]),
    code=st.integers(0, 99),
    base=st.integers(0, 10**13 - 1),
)
def test_it_validates_every_notice_number_it_generates(aux: str, code: int, base: int):
    number = notice_number(aux, f"{code:02d}", f"{base:013d}")
    assert is_valid_notice_number(number)
    wrong = (int(number[-2:]) + 1) % 100
    assert not is_valid_notice_number(number[:-2] + f"{wrong:02d}")


# --- Romania: Code 128 payload --------------------------------------------------


def test_it_builds_the_romanian_payload_in_fixed_widths():
    ref = reference_for("ro", **DOC)
    body = "".join(["042", "0001000001", "2026000123", "0000012345", "260315"])
    assert ref.value == body + luhn.calc_check_digit(body)
    assert len(ref.value) == 40
    assert parse_ro_payload(ref.value) == RoPayload(
        supplier_id=42,
        client_code=1000001,
        document_number=2026000123,
        amount=Decimal("123.45"),
        due_date=date(2026, 3, 15),
    )


ro_payloads = st.builds(
    RoPayload,
    supplier_id=st.integers(0, 999),
    client_code=st.integers(0, 10**10 - 1),
    document_number=st.integers(0, 10**10 - 1),
    amount=st.integers(1, 10**10 - 1).map(lambda bani: Decimal(bani) / 100),
    due_date=st.dates(date(2000, 1, 1), date(2099, 12, 31)),
)


@given(ro_payloads)
def test_it_reads_back_every_romanian_payload_it_builds(payload: RoPayload):
    assert parse_ro_payload(build_ro_payload(payload)) == payload


@given(ro_payloads, st.integers(0, 38), st.integers(1, 9))
def test_it_notices_a_misread_digit(payload: RoPayload, position: int, delta: int):
    value = build_ro_payload(payload)
    digit = (int(value[position]) + delta) % 10
    misread = value[:position] + str(digit) + value[position + 1 :]
    with pytest.raises(ValueError):
        parse_ro_payload(misread)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("123", "exactly 40 digits"),
        ("A" * 40, "exactly 40 digits"),
        ("0420001000001202600012300000123452603154", "check digit is wrong"),
    ],
)
def test_it_refuses_payloads_that_are_not_ours(value: str, message: str):
    with pytest.raises(ValueError, match=message):
        parse_ro_payload(value)


def test_it_refuses_a_payload_with_an_impossible_date():
    body = "".join(["042", "0001000001", "2026000123", "0000012345", "261332"])
    with pytest.raises(ValueError, match="not a date"):
        parse_ro_payload(body + luhn.calc_check_digit(body))


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (Decimal("0"), "between 0.01"),
        (Decimal("100000000.00"), "between 0.01"),
        (Decimal("1.005"), "more than two decimals"),
    ],
)
def test_it_refuses_romanian_amounts_out_of_range(amount: Decimal, message: str):
    with pytest.raises(ValueError, match=message):
        reference_for("ro", **{**DOC, "amount": amount})


# --- Poland: virtual account ------------------------------------------------------


def test_it_computes_iban_check_digits():
    # The textbook Polish IBAN PL61 1090 1014 0000 0712 1981 2874.
    assert nrb_check_digits("109010140000071219812874") == "61"
    assert stdnum_iban.calc_check_digits("PL00109010140000071219812874") == "61"


def test_it_builds_the_virtual_account():
    ref = reference_for("pl", **DOC)
    assert ref.value[2:] == "1090101400000712" + "01000001"
    assert stdnum_iban.validate("PL" + ref.value)
    assert ref.display == ref.value[:2] + " 1090 1014 0000 0712 0100 0001"


@given(st.integers(0, 10**16 - 1), st.integers(1, 10**8 - 1))
def test_it_builds_virtual_accounts_that_stdnum_validates(fixed: int, customer: int):
    nrb = virtual_account(f"{fixed:016d}", f"C{customer}")
    assert len(nrb) == 26
    assert stdnum_iban.is_valid("PL" + nrb)


def test_it_refuses_a_misconfigured_bank_part():
    with pytest.raises(ValueError, match="bank's fixed account part must be exactly 16 digits"):
        reference_for("pl", **{**DOC, "settings": ReferenceSettings(pl_bank_fixed_part="1090")})


def test_it_reads_settings_from_a_mapping():
    settings = ReferenceSettings.from_mapping(
        {"ro_supplier_id": "042", "sk_constant_symbol": 308, "unknown": "x"}
    )
    assert settings.ro_supplier_id == "042"
    assert settings.sk_constant_symbol == "308"
