"""What a payment line tells us about whom it pays: the keys matching joins on.

A line yields up to three keys, strongest first (DOMAIN §3.5):

``reference``
    the structured reference in the form billing stores it on the invoice
    (``Invoice.payment_reference``): an RF reference, Slovak symbols
    ``/VS…/SS…/KS…``, a pagoPA notice number, the Romanian barcode payload or a
    Polish virtual account, compacted and upper case.
``doc_key``
    a document number without separators (``FV2026000123``): the document
    part of an RF reference, or an invoice number written in the free text.
    ``doc_from_text`` says which.
``customer_digits``
    the customer number's digits, where the reference carries them: the first
    eight digits of an RF base, the client code of a Romanian payload, the
    specific symbol of Slovak symbols, the last eight digits of a Polish
    virtual account.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from stdnum import iso11649

from billing.references import parse_ro_payload
from receivables.formats.common import StatementLine, find_reference

_SPACES = re.compile(r"\s+")
_NOT_ALNUM = re.compile(r"[^0-9A-Z]")
_SK = re.compile(r"/VS(\d{0,10})(?:/SS(\d{0,10}))?(?:/KS(\d{0,4}))?/?")
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class Keys:
    reference: str = ""
    doc_key: str = ""
    doc_from_text: bool = False
    customer_digits: int | None = None


def compact(text: str) -> str:
    return _SPACES.sub("", text).upper()


@lru_cache(maxsize=32)
def document_pattern(prefixes: tuple[str, ...]) -> re.Pattern[str]:
    """Document numbers as people write them: ``FV-2026-000123``, ``FV 2026/123``…"""
    alternatives = "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True) if p)
    return re.compile(
        rf"(?<![0-9A-Z])({alternatives})[-/ .]?(\d{{4}})[-/ .]?(\d{{1,10}})(?![0-9])",
        re.IGNORECASE,
    )


def _document_in_text(text: str, pattern: re.Pattern[str] | None, padding: int) -> str:
    if pattern is None or not text:
        return ""
    found = pattern.search(text)
    if not found:
        return ""
    prefix, year, number = found.groups()
    return f"{prefix.upper()}{year}{int(number):0{padding}d}"


def keys_for(
    line: StatementLine, *, prefixes: Iterable[str] = (), padding: int = 6
) -> Keys:
    """The matching keys of one line (pure: no database)."""
    pattern = document_pattern(tuple(prefixes)) if prefixes else None
    raw = compact(line.reference) or find_reference(line.text)
    raw = compact(raw)
    customer: int | None = None
    doc_key = ""
    if raw.startswith("RF") and iso11649.is_valid(raw):
        base = raw[4:]
        if len(base) > 8 and base[:8].isdigit():
            customer = int(base[:8])
            doc_key = base[8:]
    elif raw.startswith("/VS"):
        symbols = _SK.fullmatch(raw)
        if symbols:
            variable, specific, constant = (g or "" for g in symbols.groups())
            raw = f"/VS{variable.lstrip('0')}/SS{specific.lstrip('0')}/KS{constant}"
            customer = int(specific) if specific else None
    elif raw.isdigit() and len(raw) == 40:
        with contextlib.suppress(ValueError):
            customer = parse_ro_payload(raw).client_code
    elif raw.isdigit() and len(raw) == 26:
        customer = int(raw[-8:])
    elif raw.startswith("PL") and raw[2:].isdigit() and len(raw) == 28:
        raw = raw[2:]
        customer = int(raw[-8:])
    from_text = False
    if not doc_key:
        doc_key = _document_in_text(line.text, pattern, padding) or _document_in_text(
            line.reference, pattern, padding
        )
        from_text = bool(doc_key)
    return Keys(
        reference=raw[:60],
        doc_key=_NOT_ALNUM.sub("", doc_key.upper())[:40],
        doc_from_text=from_text,
        customer_digits=customer,
    )
