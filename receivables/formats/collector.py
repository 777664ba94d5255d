"""Payments collected at post-office counters and by other collectors.

Each collector defines its own file, so the layout is data (``Layout``, stored
as JSON per collector and rebuilt with ``Layout.from_dict``): CSV or fixed
width, encoding, date format, decimal separator, where each field is, and the
record-type markers of header, detail and trailer records.

Fields of a detail record: ``txn_id``, ``payment_date`` (the booking date),
``amount`` and ``reference`` (the barcode payload or the client code) are
required; ``fee``, ``payer_name``, ``payer_account``, ``office_code``,
``settlement_ref``, ``value_date``, ``currency`` and ``text`` are optional.
A negative amount is a cancellation at the counter (kind "reversal"); a zero
amount is an error. A header record may carry ``business_date`` (the
collection day Z the file reports; without it, the latest payment date is
taken) and ``file_id``. A trailer record may carry ``count`` (detail records)
and ``sum`` (their signed amounts); both are verified, and a layout that
names trailer fields refuses a file without its trailer (it was cut short).

Positions: a CSV field is a 0-based column index; a fixed-width field is a
``(start, end)`` pair with Python slice semantics (0-based, end excluded:
"columns 2–9" of a specification is ``(1, 9)``).

Every bad line is reported with its line number (``LineErrors``), not just
the first one; a trailer that does not match raises ``FormatError`` naming
both figures.

Ready layouts
-------------
``SEMICOLON_CSV`` (code ``csv-semicolon``), UTF-8 (a BOM is allowed), one line
of column titles, ``;``-separated, dates ``31.12.2025``, amounts ``1234,50``::

    type;txn_id;date;office;reference;payer;amount;fee;settlement
    P;PR-000001;03.03.2025;010203;4100123456789;Ion Popescu;120,50;1,20;DEC-20250303-01
    S;1;120,50

column 0 is the record type (``P`` a payment, ``S`` the trailer: count in
column 1, sum in column 2), then txn_id 1, payment_date 2, office_code 3,
reference 4, payer_name 5, amount 6, fee 7, settlement_ref 8. Currency RON.

``FIXED_WIDTH`` (code ``fixed-hdt``), Windows-1250, one record per line, the
first character is the record type; positions below are Python slices::

    H  [0:1] "H"   [1:9] business_date YYYYMMDD   [9:29] file_id
    D  [0:1] "D"   [1:17] txn_id   [17:25] payment_date YYYYMMDD
       [25:31] office_code   [31:71] reference   [71:106] payer_name
       [106:118] amount, 12 digits in grosze (implied 2 decimals)
       [118:124] fee, 6 digits in grosze   [124:140] settlement_ref
    T  [0:1] "T"   [1:9] count   [9:23] sum, 14 digits in grosze

Currency PLN. Both are starting points: ``dataclasses.replace`` or a copy of
``to_dict()`` adapts them to a collector's contract.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.utils.translation import gettext as _

from .common import (
    PAYMENT,
    REVERSAL,
    ZERO,
    FormatError,
    LineErrors,
    ParsedFile,
    StatementLine,
    money,
    normalise_account,
)

Position = int | tuple[int, int]

REQUIRED_FIELDS = ("txn_id", "payment_date", "amount", "reference")
OPTIONAL_FIELDS = (
    "fee",
    "payer_name",
    "payer_account",
    "office_code",
    "settlement_ref",
    "value_date",
    "currency",
    "text",
)
HEADER_FIELDS = ("business_date", "file_id")
TRAILER_FIELDS = ("count", "sum")
KINDS = ("csv", "fixed")

_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,49}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_DIGITS = re.compile(r"\d{1,18}")
_DECIMAL_SEPARATORS = (",", ".")
_THOUSANDS_SEPARATORS = ("", " ", ".", ",", "'")
_PROBE_DATE = date(2031, 12, 25)
_UTF8 = {"utf-8", "utf8", "utf_8", "utf-8-sig"}


def _is_position(value: object, kind: str) -> bool:
    if kind == "csv":
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1000
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(part, int) and not isinstance(part, bool) for part in value)
        and 0 <= value[0] < value[1] <= 10_000
    )


def _as_position(value: object) -> object:
    """JSON has no tuples: [start, end] → (start, end)."""
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class Layout:
    code: str
    kind: str  # "csv" | "fixed"
    fields: Mapping[str, Position]
    currency: str
    encoding: str = "utf-8"
    delimiter: str = ";"
    quotechar: str = '"'
    has_header: bool = False  # CSV: a first line of column titles to skip
    date_format: str = "%d.%m.%Y"
    decimal_separator: str = ","
    thousands_separator: str = ""
    implied_decimals: int = 0  # "12345" means 123.45 when 2 (and the value has no separator)
    record_type: Position | None = None  # where the record-type marker is; None: all details
    header_marker: str = ""
    detail_marker: str = ""
    trailer_marker: str = ""
    header_fields: Mapping[str, Position] = field(default_factory=dict)
    trailer_fields: Mapping[str, Position] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            code = self.code if isinstance(self.code, str) else "?"
            raise FormatError(
                _("The collector file layout %(code)s is not valid: %(problem)s")
                % {"code": code or "?", "problem": problem}
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Layout:
        """A layout from its stored JSON form; FormatError saying what is wrong with it."""
        if not isinstance(data, Mapping):
            raise FormatError(_("The collector file layout must be a JSON object."))
        names = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - names)
        missing = [name for name in ("code", "kind", "fields", "currency") if name not in data]
        if unknown or missing:
            raise FormatError(
                _(
                    "The collector file layout is not valid: unknown keys %(unknown)s, "
                    "missing keys %(missing)s."
                )
                % {"unknown": ", ".join(unknown) or "-", "missing": ", ".join(missing) or "-"}
            )
        values = dict(data)
        for name in ("fields", "header_fields", "trailer_fields"):
            if name in values and isinstance(values[name], Mapping):
                values[name] = {key: _as_position(pos) for key, pos in values[name].items()}
        if "record_type" in values:
            values["record_type"] = _as_position(values["record_type"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``from_dict`` reads back."""

        def plain(value: object) -> object:
            return list(value) if isinstance(value, tuple) else value

        result: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, Mapping):
                value = {key: plain(pos) for key, pos in value.items()}
            result[item.name] = plain(value)
        return result

    def _problem(self) -> str:  # noqa: C901 - one check after the other
        """What is wrong with the layout, in words for staff; "" when nothing is."""
        if not isinstance(self.code, str) or not _CODE.fullmatch(self.code):
            return _("the code must be 1 to 50 letters, digits, dots, dashes or underscores.")
        if self.kind not in KINDS:
            return _('the kind must be "csv" or "fixed".')
        if not isinstance(self.currency, str) or not _CURRENCY.fullmatch(self.currency):
            return _("the currency must be a three-letter code such as EUR.")
        if not isinstance(self.encoding, str):
            return _("the encoding must be a text.")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            return _("the encoding %(value)s is unknown.") % {"value": self.encoding}
        for name in ("delimiter", "quotechar", "date_format", "decimal_separator"):
            if not isinstance(getattr(self, name), str):
                return _("%(name)s must be a text.") % {"name": name}
        for name in ("thousands_separator", "header_marker", "detail_marker", "trailer_marker"):
            if not isinstance(getattr(self, name), str):
                return _("%(name)s must be a text.") % {"name": name}
        if self.kind == "csv" and (
            len(self.delimiter) != 1
            or len(self.quotechar) != 1
            or self.delimiter in "\r\n"
            or self.delimiter == self.quotechar
        ):
            return _("a CSV layout needs a one-character delimiter and quote character.")
        if not isinstance(self.has_header, bool):
            return _("has_header must be true or false.")
        if "%" not in self.date_format or not _date_format_works(self.date_format):
            return _(
                "the date format %(value)s does not read dates back (use e.g. %%d.%%m.%%Y)."
            ) % {"value": self.date_format}
        if self.decimal_separator not in _DECIMAL_SEPARATORS:
            return _('the decimal separator must be "," or ".".')
        if (
            self.thousands_separator not in _THOUSANDS_SEPARATORS
            or self.thousands_separator == self.decimal_separator
        ):
            return _("the thousands separator must differ from the decimal separator.")
        if (
            not isinstance(self.implied_decimals, int)
            or isinstance(self.implied_decimals, bool)
            or not 0 <= self.implied_decimals <= 4
        ):
            return _("implied_decimals must be a whole number from 0 to 4.")

        problem = self._map_problem("fields", self.fields, REQUIRED_FIELDS, OPTIONAL_FIELDS)
        problem = problem or self._map_problem(
            "header_fields", self.header_fields, (), HEADER_FIELDS
        )
        problem = problem or self._map_problem(
            "trailer_fields", self.trailer_fields, (), TRAILER_FIELDS
        )
        if problem:
            return problem

        if self.record_type is not None and not _is_position(self.record_type, self.kind):
            return _("record_type is not a valid position for a %(kind)s layout.") % {
                "kind": self.kind
            }
        markers = [m for m in (self.header_marker, self.detail_marker, self.trailer_marker) if m]
        if len(set(markers)) != len(markers):
            return _("the record-type markers must differ from each other.")
        if self.record_type is not None and not self.detail_marker:
            return _("a layout with record types needs the detail record's marker.")
        if self.header_fields and (self.record_type is None or not self.header_marker):
            return _("header fields need record types and a header marker.")
        if self.trailer_fields and (self.record_type is None or not self.trailer_marker):
            return _("trailer fields need record types and a trailer marker.")
        return ""

    def _map_problem(
        self,
        name: str,
        mapping: object,
        required: tuple[str, ...],
        optional: tuple[str, ...],
    ) -> str:
        if not isinstance(mapping, Mapping):
            return _("%(name)s must map field names to positions.") % {"name": name}
        missing = [key for key in required if key not in mapping]
        unknown = sorted(key for key in mapping if key not in required + optional)
        if missing:
            return _("%(name)s lacks %(fields)s.") % {"name": name, "fields": ", ".join(missing)}
        if unknown:
            return _("%(name)s has unknown fields %(fields)s (known: %(known)s).") % {
                "name": name,
                "fields": ", ".join(map(str, unknown)),
                "known": ", ".join(required + optional),
            }
        for key, position in mapping.items():
            if not _is_position(position, self.kind):
                if self.kind == "csv":
                    return _("%(field)s must be a column number (0 is the first column).") % {
                        "field": key
                    }
                return _("%(field)s must be a [start, end] pair with start < end.") % {"field": key}
        return ""


def _date_format_works(date_format: str) -> bool:
    try:
        text = _PROBE_DATE.strftime(date_format)
        return datetime.strptime(text, date_format).date() == _PROBE_DATE  # noqa: DTZ007
    except (ValueError, TypeError):
        return False


SEMICOLON_CSV = Layout(
    code="csv-semicolon",
    kind="csv",
    currency="RON",
    encoding="utf-8",
    delimiter=";",
    has_header=True,
    date_format="%d.%m.%Y",
    decimal_separator=",",
    record_type=0,
    detail_marker="P",
    trailer_marker="S",
    fields={
        "txn_id": 1,
        "payment_date": 2,
        "office_code": 3,
        "reference": 4,
        "payer_name": 5,
        "amount": 6,
        "fee": 7,
        "settlement_ref": 8,
    },
    trailer_fields={"count": 1, "sum": 2},
)

FIXED_WIDTH = Layout(
    code="fixed-hdt",
    kind="fixed",
    currency="PLN",
    encoding="cp1250",
    date_format="%Y%m%d",
    decimal_separator=".",
    implied_decimals=2,
    record_type=(0, 1),
    header_marker="H",
    detail_marker="D",
    trailer_marker="T",
    fields={
        "txn_id": (1, 17),
        "payment_date": (17, 25),
        "office_code": (25, 31),
        "reference": (31, 71),
        "payer_name": (71, 106),
        "amount": (106, 118),
        "fee": (118, 124),
        "settlement_ref": (124, 140),
    },
    header_fields={"business_date": (1, 9), "file_id": (9, 29)},
    trailer_fields={"count": (1, 9), "sum": (9, 23)},
)


class _Bad(Exception):
    """A problem with one value; collected into the line's errors."""


Record = list[str] | str


def _decode(data: bytes, layout: Layout) -> str:
    encoding = "utf-8-sig" if layout.encoding.lower() in _UTF8 else layout.encoding
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise FormatError(
            _("Line %(line)d: the file is not in the %(encoding)s encoding the layout expects.")
            % {"line": line, "encoding": layout.encoding},
            line,
        ) from None
    return text.removeprefix("\ufeff")


def _value(record: Record, position: Position) -> str | None:
    """The stripped value at ``position``; None when the record is too short to have it."""
    if isinstance(record, str):
        assert isinstance(position, tuple)
        start, end = position
        return record[start:end].strip() if start < len(record) else None
    assert isinstance(position, int)
    return record[position].strip() if position < len(record) else None


def _amount(text: str, layout: Layout) -> Decimal:
    raw = text.strip()
    negative = raw.startswith("-") or raw.endswith("-")
    digits = raw.strip("+-").strip()
    if layout.thousands_separator:
        digits = digits.replace(layout.thousands_separator, "")
    if layout.implied_decimals and layout.decimal_separator not in digits:
        if not _DIGITS.fullmatch(digits):
            raise _Bad(_("the amount %(value)r is not a number.") % {"value": text})
        value = Decimal(digits).scaleb(-layout.implied_decimals)
    else:
        number = digits.replace(layout.decimal_separator, ".", 1)
        if not re.fullmatch(r"\d{1,18}(?:\.\d{1,6})?", number):
            raise _Bad(
                _("the amount %(value)r is not a number written like %(example)s.")
                % {"value": text, "example": "1234" + layout.decimal_separator + "50"}
            )
        value = Decimal(number)
    return -value if negative else value


@lru_cache(maxsize=4096)
def _parse_date(text: str, date_format: str) -> date:
    # strptime is slow, and a file holds a handful of distinct days.
    return datetime.strptime(text, date_format).date()  # noqa: DTZ007 - a calendar day


def _date(text: str, layout: Layout, name: str) -> date:
    try:
        return _parse_date(text, layout.date_format)
    except ValueError:
        raise _Bad(
            _("the %(what)s %(value)r is not a date written like %(example)s.")
            % {
                "what": _label(name),
                "value": text,
                "example": _PROBE_DATE.strftime(layout.date_format),
            }
        ) from None


def _records(text: str, layout: Layout) -> list[tuple[int, Record | None, str]]:
    """(line number, record, problem) of every non-blank line, the CSV title line left out;
    the record is None when the line cannot be split into fields (the problem says why)."""
    records: list[tuple[int, Record | None, str]] = []
    skip_title = layout.has_header
    for line_no, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if skip_title:
            skip_title = False
            continue
        if layout.kind == "fixed":
            records.append((line_no, line, ""))
            continue
        if layout.quotechar not in line:  # what the csv module would make of it, faster
            records.append((line_no, line.split(layout.delimiter), ""))
            continue
        try:
            row = next(
                csv.reader(
                    [line], delimiter=layout.delimiter, quotechar=layout.quotechar, strict=True
                )
            )
        except csv.Error as error:
            problem = _("the line is not valid CSV (%(error)s).") % {"error": error}
            records.append((line_no, None, problem))
        else:
            records.append((line_no, row, ""))
    return records


def _record_kind(record: Record, layout: Layout) -> str:
    if layout.record_type is None:
        return "detail"
    marker = _value(record, layout.record_type)
    for kind, expected in (
        ("detail", layout.detail_marker),
        ("header", layout.header_marker),
        ("trailer", layout.trailer_marker),
    ):
        if expected and marker == expected:
            return kind
    raise _Bad(
        _("the record type %(value)r is not one the layout knows.") % {"value": marker or ""}
    )


def _label(name: str) -> str:
    """A field's name for a message to staff."""
    labels = {
        "txn_id": _("transaction id"),
        "payment_date": _("payment date"),
        "amount": _("amount"),
        "reference": _("reference"),
        "fee": _("fee"),
        "payer_name": _("payer's name"),
        "payer_account": _("payer's account"),
        "office_code": _("office code"),
        "settlement_ref": _("settlement reference"),
        "value_date": _("value date"),
        "currency": _("currency"),
        "text": _("text"),
        "business_date": _("business date"),
    }
    return labels.get(name, name)


class _Detail:
    """Reads one detail record into a StatementLine, gathering every problem it has."""

    def __init__(self, record: Record, line_no: int, layout: Layout) -> None:
        self.record = record
        self.line_no = line_no
        self.layout = layout
        self.problems: list[str] = []

    def text(self, name: str, *, required: bool = False) -> str:
        position = self.layout.fields.get(name)
        if position is None:
            return ""
        value = _value(self.record, position)
        if value is None or (required and not value):
            self.problems.append(_("the %(field)s is missing.") % {"field": _label(name)})
            return ""
        return value

    def read(self, name: str, reader: Any, *, required: bool = False) -> Any:
        value = self.text(name, required=required)
        if not value:
            return None
        try:
            return reader(value)
        except _Bad as error:
            self.problems.append(str(error))
            return None

    def line(self) -> StatementLine | None:
        layout = self.layout
        txn_id = self.text("txn_id", required=True)
        reference = self.text("reference")
        payment_date = self.read(
            "payment_date", lambda v: _date(v, layout, "payment_date"), required=True
        )
        value_date = self.read("value_date", lambda v: _date(v, layout, "value_date"))
        amount = self.read("amount", lambda v: _amount(v, layout), required=True)
        fee = self.read("fee", lambda v: _amount(v, layout)) or ZERO
        currency = (self.text("currency") or layout.currency).upper()
        if amount is not None and amount == 0:
            self.problems.append(_("the amount is zero."))
        if fee < 0:
            self.problems.append(_("the fee %(value)s is negative.") % {"value": money(fee)})
        if not _CURRENCY.fullmatch(currency):
            self.problems.append(
                _("the currency %(value)r is not a three-letter code.") % {"value": currency}
            )
        if self.problems or payment_date is None or amount is None:
            return None
        return StatementLine(
            line_no=self.line_no,
            txn_id=txn_id,
            booking_date=payment_date,
            value_date=value_date,
            amount=amount,
            currency=currency,
            fee=fee,
            payer_name=self.text("payer_name"),
            payer_account=normalise_account(self.text("payer_account")),
            reference=reference,
            text=self.text("text"),
            kind=PAYMENT if amount > 0 else REVERSAL,
            reverses="",
            office_code=self.text("office_code"),
            settlement_ref=self.text("settlement_ref"),
        )


def parse_collector(data: bytes, layout: Layout) -> ParsedFile:
    """Read a collector's file with its layout; LineErrors lists every bad line."""
    text = _decode(data, layout)
    records = _records(text, layout)
    errors: list[tuple[int, str]] = []
    lines: list[StatementLine] = []
    first_use: dict[str, int] = {}
    header: tuple[int, Record] | None = None
    trailer: tuple[int, Record] | None = None

    for line_no, record, problem in records:
        if record is None:
            errors.append((line_no, problem))
            continue
        try:
            kind = _record_kind(record, layout)
        except _Bad as error:
            errors.append((line_no, str(error)))
            continue
        if trailer is not None:
            errors.append(
                (line_no, _("a record follows the trailer (line %(line)d).") % {"line": trailer[0]})
            )
            continue
        if kind == "header":
            if header is not None or lines:
                errors.append((line_no, _("a header record must come first, and only once.")))
            header = (line_no, record)
            continue
        if kind == "trailer":
            trailer = (line_no, record)
            continue
        detail = _Detail(record, line_no, layout)
        line = detail.line()
        if line is not None and line.txn_id in first_use:
            detail.problems.append(
                _("the transaction id %(id)s was already used on line %(line)d.")
                % {"id": line.txn_id, "line": first_use[line.txn_id]}
            )
        if detail.problems:
            errors.append((line_no, " ".join(detail.problems)))
        elif line is not None:
            first_use[line.txn_id] = line_no
            lines.append(line)

    business_date, file_id = None, ""
    if header is not None:
        business_date, file_id = _header(header, layout, errors)
    control_count, control_sum = _trailer(trailer, layout, errors)
    if errors:
        raise LineErrors(errors)
    if layout.trailer_fields and trailer is None:
        raise FormatError(
            _("The file has no trailer record (marker %(marker)s): it may have been cut short.")
            % {"marker": layout.trailer_marker}
        )

    total = sum((line.amount for line in lines), ZERO)
    if trailer is not None and (
        (control_count is not None and control_count != len(lines))
        or (control_sum is not None and control_sum != total)
    ):
        raise FormatError(
            _(
                "The trailer on line %(line)d states %(stated_count)s payments totalling "
                "%(stated_sum)s, but the file holds %(count)d payments totalling %(sum)s."
            )
            % {
                "line": trailer[0],
                "stated_count": "?" if control_count is None else control_count,
                "stated_sum": "?" if control_sum is None else money(control_sum),
                "count": len(lines),
                "sum": money(total),
            },
            trailer[0],
        )
    if business_date is None and lines:
        business_date = max(line.booking_date for line in lines)
    return ParsedFile(
        format=f"collector:{layout.code}",
        account="",
        statement_id=file_id,
        created_at=None,
        opening_balance=None,
        closing_balance=None,
        control_count=control_count,
        control_sum=control_sum,
        lines=lines,
        business_date=business_date,
    )


def _header(
    header: tuple[int, Record], layout: Layout, errors: list[tuple[int, str]]
) -> tuple[date | None, str]:
    line_no, record = header
    business_date = None
    position = layout.header_fields.get("business_date")
    if position is not None:
        try:
            business_date = _date(_value(record, position) or "", layout, "business_date")
        except _Bad as error:
            errors.append((line_no, str(error)))
    position = layout.header_fields.get("file_id")
    file_id = (_value(record, position) or "") if position is not None else ""
    return business_date, file_id


def _trailer(
    trailer: tuple[int, Record] | None, layout: Layout, errors: list[tuple[int, str]]
) -> tuple[int | None, Decimal | None]:
    if not layout.trailer_fields:
        return None, None
    if trailer is None:
        return None, None  # parse_collector refuses the file once its lines are known good
    line_no, record = trailer
    count = total = None
    position = layout.trailer_fields.get("count")
    if position is not None:
        value = _value(record, position) or ""
        if _DIGITS.fullmatch(value):
            count = int(value)
        else:
            errors.append(
                (line_no, _("the trailer's count %(value)r is not a number.") % {"value": value})
            )
    position = layout.trailer_fields.get("sum")
    if position is not None:
        try:
            total = _amount(_value(record, position) or "", layout)
        except _Bad as error:
            errors.append((line_no, str(error)))
    return count, total
