"""SWIFT MT940 statements, read with the ``mt-940`` package.

A file may hold several statements (each opens with ``:20:``), all of one
account. Every statement needs an opening (``:60F:``/``:60M:``) and a closing
(``:62F:``/``:62M:``) balance, must close at opening + Σ its ``:61:`` lines,
and must open where the statement before it in the file closed. SWIFT envelope
lines (``{1:…}{2:…}{4:``, ``-}``) are ignored. The text is UTF-8 (a BOM is
allowed), else Windows-1250, else CP852 (what Central European banks send).

Which ``:61:`` lines become lines
---------------------------------
* mark ``C``: kind "payment", amount > 0;
* mark ``RC`` (reversal of a credit): kind "reversal", amount < 0;
* mark ``D`` with a "returned item" transaction type (``NRTI``, ``FRTI``, ``SRTI``):
  kind "return", amount < 0;
* skipped: other ``D`` lines (our own outgoing payments) and ``RD`` (one of them
  coming back).

``line_no`` is the number of the ``:61:`` line in the file. MT940 carries no
fees: ``fee`` is 0.

``:86:`` information
--------------------
Structured ``:86:`` texts are split into their subfields, whatever the
separator: ``~`` or ``<`` (Polish banks: title ``~20``–``~25``, name
``~32``–``~33``, account ``~38``) or ``?`` (German banks: purpose ``?20``–``?29``
and ``?60``–``?63`` with the SEPA keywords ``SVWZ+``, ``EREF+``…, name
``?32``–``?33``, account ``?31``). ``text`` is the title, or the ``SVWZ+``
remittance text when there is one; an unstructured ``:86:`` is the text as it
is. ``reference`` is the first RF reference (check digits verified) or Slovak
``/VS…/SS…/KS…`` symbols found in the ``EREF+`` end-to-end reference, the
text, the whole ``:86:`` or the ``:61:`` customer reference. A ``:86:`` that
follows the closing balance is about the statement, not a transaction, and is
ignored.

Transaction id
--------------
The bank reference of the ``:61:`` line (after ``//``) unless it is missing or
``NONREF``; else ``<closing date YYYYMMDD>/<statement no>[/<sequence no>]/<n>``
with ``n`` the line's ordinal among the statement's ``:61:`` lines. Reversals and
returns get the ``/RVSL`` or ``/RTRN`` suffix (``common.suffixed_id``), and
their ``reverses`` is their bank reference, else their customer reference
(banks usually repeat the reversed payment's reference there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import mt940
from django.utils.translation import gettext as _

from .common import (
    PAYMENT,
    RETURN,
    REVERSAL,
    ZERO,
    FormatError,
    ParsedFile,
    StatementLine,
    check_unique_ids,
    find_reference,
    money,
    normalise_account,
    suffixed_id,
)

_OPTIONS = mt940.Options(
    reversal_sign=True,  # RC is a debit: the reversal of a credit takes money out
    case_insensitive_marks=True,
    unbounded_details=True,
    strip_bom=True,
    merge_keeps_values=True,
)
_TAG = re.compile(r":(\d{2}[A-Z]?|NS):")
_ENVELOPE = re.compile(r"\{\d:|-\}|-\s*$")
_SUBFIELDS = re.compile(r"(?:\d{3})?([~?<])\d{2}")
_SEPA_KEYWORD = re.compile(r"(EREF|KREF|MREF|CRED|DEBT|SVWZ|ABWA|ABWE|IBAN|BIC|COAM|OAMT)\+")
# The purpose (title) subfields: German ?20–?29 and ?60–?63; Polish ~20–~25
# (~60–~63 carry the counterparty's address there).
_PURPOSE_CODES = {
    "?": [str(code) for code in [*range(20, 30), *range(60, 64)]],
    "~": [str(code) for code in range(20, 26)],
}
_NO_REFERENCE = "NONREF"
# A :61: line as SWIFT defines it: value date, [entry date], mark, [funds code],
# amount, transaction type. The mt-940 package accepts far less strict lines.
_STATEMENT_LINE = re.compile(
    r"\d{6}(?:\d{4}|\s{4})?R?[DC][A-Z]?\s?\d+,\d*[NFS][A-Z0-9]{3}", re.IGNORECASE
)


@dataclass
class _Tag:
    """One field of the file: ``:61:`` and its continuation lines, with the first line's number."""

    tag: str
    line_no: int
    lines: list[str] = field(default_factory=list)

    def source(self) -> str:
        return f":{self.tag}:" + "\n".join(line.rstrip() for line in self.lines)


@dataclass
class _Details:
    text: str = ""
    payer_name: str = ""
    payer_account: str = ""
    end_to_end: str = ""
    raw: str = ""


@dataclass
class _Statement:
    first_line: int
    opening_line: int
    number: str
    account: str
    opening: Decimal
    closing: Decimal
    lines: list[StatementLine]


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1250"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("cp852")  # maps every byte


def _fields(text: str) -> list[_Tag]:
    tags: list[_Tag] = []
    current: _Tag | None = None
    for line_no, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        match = _TAG.match(line)
        if match:
            current = _Tag(match.group(1), line_no, [line[match.end() :]])
            tags.append(current)
        elif _ENVELOPE.match(line):
            current = None
        elif current is not None and line.strip():
            current.lines.append(line)
    return tags


def _statements(tags: list[_Tag]) -> list[list[_Tag]]:
    groups: list[list[_Tag]] = []
    for tag in tags:
        if tag.tag == "20":
            groups.append([tag])
        elif not groups:
            raise FormatError(
                _("Line %(line)d: the :%(tag)s: field comes before the first statement (:20:).")
                % {"line": tag.line_no, "tag": tag.tag},
                tag.line_no,
            )
        else:
            groups[-1].append(tag)
    return groups


def _sepa_fields(purpose: str) -> dict[str, str]:
    keywords = list(_SEPA_KEYWORD.finditer(purpose))
    found: dict[str, str] = {}
    for index, keyword in enumerate(keywords):
        end = keywords[index + 1].start() if index + 1 < len(keywords) else len(purpose)
        found.setdefault(keyword.group(1), " ".join(purpose[keyword.end() : end].split()))
    return found


def _join(pieces: list[str], width: int) -> str:
    """Subfield values as one text: a value cut at the full width runs on into the next."""
    text = previous = ""
    for piece in pieces:
        if text and len(previous) < width and not text.endswith(" ") and not piece.startswith(" "):
            text += " "
        text += piece
        previous = piece
    return " ".join(text.split())


def _details(tag: _Tag | None) -> _Details:
    if tag is None:
        return _Details()
    flat = " ".join(" ".join(tag.lines).split())
    # Subfields run on across the 65-character lines: join them without a separator.
    joined = "".join(tag.lines)
    start = _SUBFIELDS.match(joined)
    if start is None:
        return _Details(text=flat, raw=flat)
    separator = start.group(1)
    pieces = re.split(re.escape(separator) + r"(\d{2})", joined)
    subfields: dict[str, str] = {}
    for code, value in zip(pieces[1::2], pieces[2::2], strict=True):
        subfields[code] = subfields.get(code, "") + value
    # German banks fill purpose lines to 27 characters, Polish ones to 35.
    width = 27 if separator == "?" else 35
    codes = _PURPOSE_CODES["?" if separator == "?" else "~"]
    purpose = _join([subfields[code] for code in codes if code in subfields], width)
    sepa = _sepa_fields(purpose)
    text = sepa.get("SVWZ", "") if sepa else purpose
    text = " ".join((text or subfields.get("00", "")).split())
    account = subfields.get("38", "") if separator in "~<" else ""
    return _Details(
        text=text,
        payer_name=_join([subfields.get("32", ""), subfields.get("33", "")], width),
        payer_account=normalise_account(account or subfields.get("31", "")),
        end_to_end=sepa.get("EREF", ""),
        raw=flat,
    )


def _plain_date(value: Any) -> date:
    return date(value.year, value.month, value.day)


def _balance(data: dict[str, Any], kind: str) -> tuple[Decimal, date] | None:
    for key in (f"final_{kind}_balance", f"intermediate_{kind}_balance", f"{kind}_balance"):
        balance = data.get(key)
        amount = getattr(balance, "amount", None)
        if isinstance(amount, mt940.models.Amount) and balance is not None:
            return amount.amount, _plain_date(balance.date)
    return None


def _library_parse(tags: list[_Tag]) -> Any:
    """Parse one statement with the mt-940 package; on failure, name the field that broke it."""
    transactions = mt940.models.Transactions(options=_OPTIONS)
    source = "\n".join(tag.source() for tag in tags if tag.tag not in ("86", "NS"))
    try:
        transactions.parse(source)
    except Exception:
        for tag in tags:
            if tag.tag in ("86", "NS"):
                continue
            try:
                mt940.models.Transactions(options=_OPTIONS).parse(tag.source())
            except Exception:
                raise FormatError(
                    _("Line %(line)d: the :%(tag)s: field %(value)r cannot be read.")
                    % {"line": tag.line_no, "tag": tag.tag, "value": tag.source()[:80]},
                    tag.line_no,
                ) from None
        raise FormatError(
            _("Line %(line)d: the statement starting here cannot be read.")
            % {"line": tags[0].line_no},
            tags[0].line_no,
        ) from None
    return transactions


def _statement(tags: list[_Tag]) -> _Statement:
    first_line = tags[0].line_no
    for tag in tags:
        if tag.tag == "61" and not _STATEMENT_LINE.match(tag.lines[0]):
            raise FormatError(
                _(
                    "Line %(line)d: %(value)r is not a statement line (value date, credit or "
                    "debit mark, amount, transaction type)."
                )
                % {"line": tag.line_no, "value": tag.source()[:80]},
                tag.line_no,
            )
    transactions = _library_parse(tags)
    data = transactions.data
    number = str(data.get("statement_number") or "")
    if data.get("sequence_number"):
        number += f"/{data['sequence_number']}"
    account = normalise_account(str(data.get("account_identification") or ""))
    opening = _balance(data, "opening")
    closing = _balance(data, "closing")
    if not account or opening is None or closing is None:
        missing = ":25:" if not account else ":60F:" if opening is None else ":62F:"
        raise FormatError(
            _("Line %(line)d: the statement starting here has no %(field)s field.")
            % {"line": first_line, "field": missing},
            first_line,
        )
    closing_date = closing[1]
    currency = str(transactions.currency or "").upper()

    statement_tags = [tag for tag in tags if tag.tag == "61"]
    if len(statement_tags) != len(transactions.transactions):
        raise FormatError(
            _("Line %(line)d: the statement's :61: lines cannot be told apart.")
            % {"line": first_line},
            first_line,
        )
    following: dict[int, _Tag] = {}
    for previous, tag in zip(tags, tags[1:], strict=False):
        if tag.tag == "86" and previous.tag == "61":
            following[previous.line_no] = tag

    lines: list[StatementLine] = []
    total = ZERO
    for ordinal, (tag, transaction) in enumerate(
        zip(statement_tags, transactions.transactions, strict=True), start=1
    ):
        values = transaction.data
        amount: Decimal = values["amount"].amount
        total += amount
        mark = str(values.get("status") or "").upper()
        type_code = str(values.get("id") or "").upper()
        if mark == "C":
            kind = PAYMENT
        elif mark == "RC":
            kind = REVERSAL
        elif mark == "D" and type_code.endswith("RTI"):
            kind = RETURN
        else:
            continue  # our own outgoing payment (D), or one coming back (RD)

        bank_reference = str(values.get("bank_reference") or "").strip()
        if bank_reference.upper() == _NO_REFERENCE:
            bank_reference = ""
        customer_reference = str(values.get("customer_reference") or "").strip()
        if customer_reference.upper() == _NO_REFERENCE:
            customer_reference = ""
        txn_id = bank_reference or f"{closing_date:%Y%m%d}/{number}/{ordinal}"
        details = _details(following.get(tag.line_no))
        value_date = _plain_date(values["date"])
        entry_date = values.get("entry_date")
        lines.append(
            StatementLine(
                line_no=tag.line_no,
                txn_id=suffixed_id(txn_id, kind),
                booking_date=_plain_date(entry_date) if entry_date else value_date,
                value_date=value_date,
                amount=amount,
                currency=str(values.get("currency") or currency).upper(),
                fee=ZERO,
                payer_name=details.payer_name,
                payer_account=details.payer_account,
                reference=find_reference(
                    details.end_to_end,
                    details.text,
                    details.raw,
                    customer_reference,
                    str(values.get("extra_details") or ""),
                ),
                text=details.text,
                kind=kind,
                reverses="" if kind == PAYMENT else (bank_reference or customer_reference),
            )
        )

    if opening[0] + total != closing[0]:
        raise FormatError(
            _(
                "Line %(line)d: statement %(number)s opens at %(opening)s and its lines add up "
                "to %(total)s, so it should close at %(expected)s, but it closes at %(closing)s."
            )
            % {
                "line": first_line,
                "number": number,
                "opening": money(opening[0]),
                "total": money(total),
                "expected": money(opening[0] + total),
                "closing": money(closing[0]),
            },
            first_line,
        )
    opening_line = next(tag.line_no for tag in tags if tag.tag.startswith("60"))
    return _Statement(first_line, opening_line, number, account, opening[0], closing[0], lines)


def parse_mt940(data: bytes) -> ParsedFile:
    """Read an MT940 file; FormatError (saying what and where) if it is not a good one."""
    groups = _statements(_fields(_decode(data)))
    if not groups:
        raise FormatError(_("The file holds no MT940 statement (no :20: field)."))
    statements = [_statement(group) for group in groups]

    first = statements[0]
    for statement in statements[1:]:
        if statement.account != first.account:
            raise FormatError(
                _(
                    "Line %(line)d: this statement is for account %(account)s, the first one "
                    "for %(first)s. Import one account at a time."
                )
                % {
                    "line": statement.first_line,
                    "account": statement.account,
                    "first": first.account,
                },
                statement.first_line,
            )
    for previous, current in zip(statements, statements[1:], strict=False):
        if current.opening != previous.closing:
            raise FormatError(
                _(
                    "Line %(line)d: statement %(number)s opens at %(opening)s but statement "
                    "%(previous)s before it closed at %(closing)s: a statement is missing."
                )
                % {
                    "line": current.opening_line,
                    "number": current.number,
                    "opening": money(current.opening),
                    "previous": previous.number,
                    "closing": money(previous.closing),
                },
                current.opening_line,
            )

    lines = [line for statement in statements for line in statement.lines]
    check_unique_ids(lines)
    return ParsedFile(
        format="mt940",
        account=first.account,
        statement_id=(
            first.number if len(statements) == 1 else f"{first.number}..{statements[-1].number}"
        ),
        created_at=None,
        opening_balance=first.opening,
        closing_balance=statements[-1].closing,
        control_count=None,
        control_sum=None,
        lines=lines,
        business_date=None,
    )
