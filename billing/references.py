"""Payment references printed on payable documents (invoices, advance requests).

Every payable document carries an ISO 11649 RF creditor reference, plus the
national variant the operator configures (one setting string per operator):

``rf`` (default)
    Only the RF reference. Base = customer number digits zero-padded to 8,
    then the document number's letters and digits (``C1000001`` +
    ``FV-2026-000123`` → ``RF.. 01000001FV2026000123``), at most 21 characters.
``sk``
    Slovak payment symbols (DOMAIN §3.3): variable symbol VS = the document
    number's digits (≤ 10), specific symbol SS = the customer number's digits
    (≤ 10), constant symbol KS = 4 digits from the settings (default ``0308``).
    ``value`` is the SEPA EndToEndId form ``/VS<vs>/SS<ss>/KS<ks>`` that comes
    back on bank statements; :func:`parse_sk_symbols` reads it.
``it``
    pagoPA numero avviso, 18 digits (DOMAIN §2.4): aux digit ``3`` +
    segregation code (2) or aux digit ``0`` + application code (2), then the
    IUV base (13 digits: the document number's digits, zero-padded), then two
    check digits ``int(aux + code + base) mod 93``.
``ro``
    Numeric Code 128 payload (DOMAIN §2.6, our own layout, version 1), 40 digits
    so that Code 128 subset C encodes it without a shift::

        pos  1– 3  supplier id          3 digits (settings)
        pos  4–13  client code         10 digits (customer number digits)
        pos 14–23  document number     10 digits (document number digits)
        pos 24–33  amount in bani      10 digits (0.01 … 99,999,999.99 lei)
        pos 34–39  due date            YYMMDD (years 2000–2099)
        pos 40     check digit         Luhn (mod 10) over positions 1–39

    :func:`parse_ro_payload` reads a scanned payload back (post-office files).
``pl``
    Polish virtual account (NRB, 26 digits, DOMAIN §2.5): two IBAN check digits
    + the bank's fixed part (16 digits: 8-digit sort code and the 8-digit
    creditor code the bank assigned) + the customer id (the customer number's
    digits, zero-padded to 8). The check digits are computed here and the result
    is validated with ``stdnum.iban``.

Numeric national references use the document number's digits: the operator's
series must not give two payable documents of one customer the same digits
(e.g. ``FV-2026-000123`` and ``AV-2026-000123``), or VS/IUV/client+document
pairs would collide. The RF reference keeps the letters and has no such limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal
from enum import StrEnum

from stdnum import iban as stdnum_iban
from stdnum import iso11649, luhn
from stdnum.exceptions import ValidationError

CENT = Decimal("0.01")


class Scheme(StrEnum):
    RF = "rf"
    SK = "sk"
    IT = "it"
    RO = "ro"
    PL = "pl"


@dataclass(frozen=True)
class PaymentReference:
    """A reference as machines read it (``value``) and as people read it (``display``)."""

    kind: str
    value: str
    display: str


@dataclass(frozen=True)
class ReferenceSettings:
    """The operator's configuration of its national reference (strings, as stored)."""

    sk_constant_symbol: str = "0308"
    it_aux_digit: str = "3"
    it_segregation_code: str = ""  # aux digit 3: assigned by PagoPA (00–49)
    it_application_code: str = ""  # aux digit 0
    ro_supplier_id: str = ""  # 3 digits, agreed with the collector network
    pl_bank_fixed_part: str = ""  # 16 digits: sort code (8) + creditor code (8)

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> ReferenceSettings:
        """Settings from a configuration mapping; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: str(v) for k, v in values.items() if k in known})


# --- helpers ------------------------------------------------------------------


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _alnum(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isascii() and ch.isalnum())


def _fixed_digits(text: str, width: int, what: str) -> str:
    digits = _digits(text)
    if not digits:
        raise ValueError(f"The {what} has no digits.")
    if len(digits) > width:
        raise ValueError(f"The {what} has more than {width} digits.")
    return digits.zfill(width)


def _settings_digits(value: str, width: int, what: str) -> str:
    if not re.fullmatch(rf"\d{{{width}}}", value):
        raise ValueError(f"The {what} must be exactly {width} digits (settings).")
    return value


def _mod97(numeric: str) -> int:
    return int(numeric) % 97


def _to_numeric(text: str) -> str:
    """Letters to numbers A=10 … Z=35, as ISO 7064 MOD 97-10 wants them."""
    return "".join(str(int(ch, 36)) for ch in text)


def group(text: str, size: int = 4) -> str:
    """``RF18539007547034`` → ``RF18 5390 0754 7034``."""
    return " ".join(text[i : i + size] for i in range(0, len(text), size))


def minor_units(amount: Decimal) -> int:
    """Amount in cents/bani/grosze; refuses amounts with more than 2 decimals."""
    cents = amount.quantize(CENT)
    if cents != amount:
        raise ValueError(f"The amount {amount} has more than two decimals.")
    return int(cents * 100)


# --- ISO 11649 RF ---------------------------------------------------------------


def rf_reference(base: str) -> str:
    """The RF creditor reference for a 1–21 character alphanumeric base."""
    base = _alnum(base)
    if not 1 <= len(base) <= 21:
        raise ValueError("An RF reference needs 1 to 21 letters or digits.")
    check = 98 - _mod97(_to_numeric(base + "RF") + "00")
    return f"RF{check:02d}{base}"


def is_valid_rf(reference: str) -> bool:
    try:
        iso11649.validate(reference)
    except ValidationError:
        return False
    return True


def rf_base(customer_number: str, document_number: str) -> str:
    base = _fixed_digits(customer_number, 8, "customer number") + _alnum(document_number)
    if len(base) > 21:
        raise ValueError("The document number is too long for an RF reference.")
    return base


# --- Slovakia: VS / SS / KS -----------------------------------------------------


@dataclass(frozen=True)
class SlovakSymbols:
    variable: str
    specific: str
    constant: str

    @property
    def end_to_end_id(self) -> str:
        return f"/VS{self.variable}/SS{self.specific}/KS{self.constant}"


_SK_E2E = re.compile(r"/VS(\d{0,10})/SS(\d{0,10})/KS(\d{0,4})")


def parse_sk_symbols(value: str) -> SlovakSymbols:
    """Symbols from the ``/VS…/SS…/KS…`` EndToEndId form."""
    match = _SK_E2E.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"Not a Slovak payment symbol reference: {value!r}.")
    return SlovakSymbols(*match.groups())


def slovak_symbols(
    customer_number: str, document_number: str, settings: ReferenceSettings
) -> SlovakSymbols:
    variable = _digits(document_number).lstrip("0")
    specific = _digits(customer_number).lstrip("0")
    if not variable or len(variable) > 10:
        raise ValueError("The variable symbol (document number digits) must be 1 to 10 digits.")
    if not specific or len(specific) > 10:
        raise ValueError("The specific symbol (customer number digits) must be 1 to 10 digits.")
    constant = _settings_digits(settings.sk_constant_symbol, 4, "constant symbol")
    return SlovakSymbols(variable=variable, specific=specific, constant=constant)


# --- Italy: pagoPA numero avviso --------------------------------------------------


def iuv_check_digits(aux_digit: str, code: str, iuv_base: str) -> str:
    """pagoPA check digits: ``int(aux + code + base13) mod 93``, two digits."""
    return f"{int(aux_digit + code + iuv_base) % 93:02d}"


def notice_number(aux_digit: str, code: str, iuv_base: str) -> str:
    """The 18-digit numero avviso for aux digit 0 or 3."""
    if aux_digit not in ("0", "3"):
        raise ValueError("The pagoPA aux digit must be 0 or 3.")
    what = "segregation code" if aux_digit == "3" else "application code"
    code = _settings_digits(code, 2, what)
    if not re.fullmatch(r"\d{13}", iuv_base):
        raise ValueError("The IUV base must be 13 digits.")
    return aux_digit + code + iuv_base + iuv_check_digits(aux_digit, code, iuv_base)


def is_valid_notice_number(value: str) -> bool:
    if not re.fullmatch(r"[03]\d{17}", value):
        return False
    return iuv_check_digits(value[0], value[1:3], value[3:16]) == value[16:]


# --- Romania: Code 128 payload ----------------------------------------------------

RO_LENGTH = 40
RO_MAX_BANI = 10**10 - 1


@dataclass(frozen=True)
class RoPayload:
    supplier_id: int
    client_code: int
    document_number: int
    amount: Decimal
    due_date: date


def build_ro_payload(payload: RoPayload) -> str:
    if not 0 <= payload.supplier_id <= 999:
        raise ValueError("The supplier id must be at most 3 digits.")
    if not 0 <= payload.client_code < 10**10:
        raise ValueError("The client code must be at most 10 digits.")
    if not 0 <= payload.document_number < 10**10:
        raise ValueError("The document number must be at most 10 digits.")
    bani = minor_units(payload.amount)
    if not 1 <= bani <= RO_MAX_BANI:
        raise ValueError("The amount must be between 0.01 and 99,999,999.99.")
    if not 2000 <= payload.due_date.year <= 2099:
        raise ValueError("The due date must be in the years 2000 to 2099.")
    body = (
        f"{payload.supplier_id:03d}{payload.client_code:010d}{payload.document_number:010d}"
        f"{bani:010d}{payload.due_date:%y%m%d}"
    )
    return body + luhn.calc_check_digit(body)


def parse_ro_payload(value: str) -> RoPayload:
    """Read a scanned Romanian payload back; ValueError when it is not one of ours."""
    value = value.strip()
    if not re.fullmatch(rf"\d{{{RO_LENGTH}}}", value):
        raise ValueError(f"A payment barcode has exactly {RO_LENGTH} digits.")
    if luhn.calc_check_digit(value[:-1]) != value[-1]:
        raise ValueError("The payment barcode's check digit is wrong.")
    try:
        due = date(2000 + int(value[33:35]), int(value[35:37]), int(value[37:39]))
    except ValueError:
        raise ValueError("The payment barcode's due date is not a date.") from None
    return RoPayload(
        supplier_id=int(value[0:3]),
        client_code=int(value[3:13]),
        document_number=int(value[13:23]),
        amount=Decimal(int(value[23:33])) / 100,
        due_date=due,
    )


# --- Poland: virtual account NRB --------------------------------------------------


def nrb_check_digits(bban: str) -> str:
    """IBAN check digits of a Polish 24-digit BBAN (``PL`` = 25 21)."""
    return f"{98 - _mod97(bban + _to_numeric('PL') + '00'):02d}"


def virtual_account(bank_fixed_part: str, customer_id: str) -> str:
    """The 26-digit NRB: check digits + bank's fixed part (16) + customer id (8)."""
    fixed = _settings_digits(bank_fixed_part, 16, "bank's fixed account part")
    bban = fixed + _fixed_digits(customer_id, 8, "customer number")
    nrb = nrb_check_digits(bban) + bban
    stdnum_iban.validate("PL" + nrb)
    return nrb


# --- the entry points -----------------------------------------------------------


def reference_for(
    scheme: str,
    *,
    customer_number: str,
    document_number: str,
    amount: Decimal,
    due_date: date,
    settings: ReferenceSettings,
) -> PaymentReference:
    """The reference of one scheme for a payable document (ValueError if it can't be built)."""
    try:
        kind = Scheme(scheme or Scheme.RF)
    except ValueError:
        raise ValueError(f"Unknown payment reference scheme {scheme!r}.") from None
    if kind is Scheme.RF:
        rf = rf_reference(rf_base(customer_number, document_number))
        return PaymentReference(kind=kind.value, value=rf, display=group(rf))
    if kind is Scheme.SK:
        symbols = slovak_symbols(customer_number, document_number, settings)
        display = f"VS {symbols.variable} · SS {symbols.specific} · KS {symbols.constant}"
        return PaymentReference(kind=kind.value, value=symbols.end_to_end_id, display=display)
    if kind is Scheme.IT:
        aux = settings.it_aux_digit
        code = settings.it_segregation_code if aux == "3" else settings.it_application_code
        base = _fixed_digits(document_number, 13, "document number")
        number = notice_number(aux, code, base)
        return PaymentReference(kind=kind.value, value=number, display=group(number))
    if kind is Scheme.RO:
        supplier = _settings_digits(settings.ro_supplier_id, 3, "supplier id")
        payload = build_ro_payload(
            RoPayload(
                supplier_id=int(supplier),
                client_code=int(_fixed_digits(customer_number, 10, "customer number")),
                document_number=int(_fixed_digits(document_number, 10, "document number")),
                amount=amount,
                due_date=due_date,
            )
        )
        return PaymentReference(kind=kind.value, value=payload, display=group(payload, 5))
    nrb = virtual_account(settings.pl_bank_fixed_part, customer_number)
    return PaymentReference(kind=kind.value, value=nrb, display=nrb[:2] + " " + group(nrb[2:]))


def references_for(
    scheme: str,
    *,
    customer_number: str,
    document_number: str,
    amount: Decimal,
    due_date: date,
    settings: ReferenceSettings,
) -> list[PaymentReference]:
    """The RF reference, then the operator's national variant when it is not ``rf``."""
    refs = [
        reference_for(
            Scheme.RF,
            customer_number=customer_number,
            document_number=document_number,
            amount=amount,
            due_date=due_date,
            settings=settings,
        )
    ]
    if scheme and scheme != Scheme.RF:
        refs.append(
            reference_for(
                scheme,
                customer_number=customer_number,
                document_number=document_number,
                amount=amount,
                due_date=due_date,
                settings=settings,
            )
        )
    return refs
