"""What every statement and collection-file parser returns, and what they share.

Sign and fee convention, the same for every format:

``amount``
    what the payer paid, which is what settles the customer's open items:
    positive for a payment to us, negative for a reversal or a return of one.
``fee``
    what the bank or the collector kept out of it (``>= 0``).

The money that actually moved on our account for a line is ``amount - fee``.
A bank credit of 99.50 for a payment of 100.00 with 0.50 charges netted is
``amount=100.00, fee=0.50``; a return of that payment debited as 100.50
(100.00 plus 0.50 return charges) is ``amount=-100.00, fee=0.50``.

``txn_id`` is the idempotency key of a line: stable (the same transaction in an
overlapping or re-sent file gets the same id) and unique within the file (the
parsers refuse a file where it is not). Reversal and return lines get a
``/RVSL`` or ``/RTRN`` suffix, so a bank that gives a reversal the reference of
the payment it reverses cannot make the reversal look like a duplicate of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from billing.references import is_valid_rf

PAYMENT = "payment"
REVERSAL = "reversal"
RETURN = "return"
KINDS = (PAYMENT, REVERSAL, RETURN)

ZERO = Decimal("0")

# How many per-line problems a LineErrors message spells out; .errors keeps them all.
_ERRORS_IN_MESSAGE = 20

# Slovak payment symbols in a SEPA EndToEndId (DOMAIN §3.3). Banks and payers
# leave out empty trailing symbols, so SS and KS are optional here.
_SK_SYMBOLS = r"/VS\d{1,10}(?:/SS\d{0,10})?(?:/KS\d{0,4})?"
_SK_FULL = re.compile(_SK_SYMBOLS + r"/?")
_SK_IN_TEXT = re.compile(r"(?<![0-9A-Z])" + _SK_SYMBOLS + r"(?![0-9])", re.IGNORECASE)
# An ISO 11649 creditor reference: "RF", two check digits, 1–21 letters or digits,
# often printed in groups of four ("RF18 5390 0754 7034").
_RF_START = re.compile(r"(?<![0-9A-Z])RF\d{2}", re.IGNORECASE)
_RF_WORDS = re.compile(r" ?([0-9A-Z]+(?: [0-9A-Z]+)*)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class StatementLine:
    line_no: int  # position in the file: XML transaction ordinal (1-based) or text line number
    txn_id: str  # the bank's / collector's unique id of this transaction (idempotency key)
    booking_date: date
    value_date: date | None
    amount: Decimal  # > 0 credit to us; < 0 debit (returns/reversals of credits)
    currency: str
    fee: Decimal  # fee netted by the collector (>= 0), Decimal("0") if none
    payer_name: str
    payer_account: str  # IBAN or account number, normalised (no spaces, upper)
    reference: str  # structured reference as given (RF…, /VS../SS../KS.., IUV, barcode…)
    text: str  # unstructured remittance / :86: text / title
    kind: str  # "payment" | "reversal" | "return"
    reverses: str  # reversal/return: txn_id or end-to-end id of the original if known
    office_code: str = ""  # collector office (post-office files)
    settlement_ref: str = ""  # aggregated bank credit this line belongs to (collector files)


@dataclass(frozen=True)
class ParsedFile:
    format: str  # "camt.053", "camt.054", "mt940", "collector:<layout code>"
    account: str  # our account (IBAN) the statement is for, "" for collector files
    statement_id: str
    created_at: datetime | None
    opening_balance: Decimal | None
    closing_balance: Decimal | None
    control_count: int | None  # trailer / TxsSummry totals when the file has them
    control_sum: Decimal | None
    lines: list[StatementLine]
    business_date: date | None  # collector files: the collection day (Z) the file reports

    @property
    def total(self) -> Decimal:
        """The sum of the lines' amounts (what the payers paid, net of reversals)."""
        return sum((line.amount for line in self.lines), ZERO)


class FormatError(ValueError):
    """The file cannot be imported; the message (shown to staff) says what and where."""

    def __init__(self, message: str, line_no: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line_no = line_no

    def __str__(self) -> str:
        return self.message


class LineErrors(FormatError):
    """Several lines of the file are wrong; ``errors`` lists every one as (line_no, message)."""

    def __init__(self, errors: Iterable[tuple[int, str]]) -> None:
        self.errors: list[tuple[int, str]] = sorted(errors, key=lambda error: error[0])
        count = len(self.errors)
        shown = "; ".join(
            _("line %(line)d: %(message)s") % {"line": line_no, "message": message}
            for line_no, message in self.errors[:_ERRORS_IN_MESSAGE]
        )
        if count > _ERRORS_IN_MESSAGE:
            shown += " " + _("(and %(count)d more)") % {"count": count - _ERRORS_IN_MESSAGE}
        message = ngettext(
            "%(count)d line of the file is wrong: %(errors)s",
            "%(count)d lines of the file are wrong: %(errors)s",
            count,
        ) % {"count": count, "errors": shown}
        super().__init__(message, self.errors[0][0] if self.errors else None)


def normalise_account(value: str) -> str:
    """ "pl61 1090 1014 …" → "PL6110901014…": no spaces, upper case."""
    return "".join(value.split()).upper()


def sk_symbols(value: str) -> str:
    """``value`` when it is a Slovak ``/VS…/SS…/KS…`` EndToEndId, else ""."""
    value = value.strip()
    return value if _SK_FULL.fullmatch(value) else ""


def find_reference(*texts: str) -> str:
    """The first structured reference written in free text: a valid RF reference or VS/SS/KS.

    An RF reference is returned compacted and upper case, and only when its
    check digits are right (a word that merely starts with "RF12" is not one).
    """
    for text in texts:
        for start in _RF_START.finditer(text):
            words = _RF_WORDS.match(text, start.end())
            parts = words.group(1).split(" ") if words else []
            # Longest first: "RF18 5390 0754 7034 invoice 12" must stop before "invoice".
            for count in range(len(parts), 0, -1):
                candidate = (start.group(0) + "".join(parts[:count])).upper()
                if len(candidate) <= 25 and is_valid_rf(candidate):
                    return candidate
        symbols = _SK_IN_TEXT.search(text)
        if symbols:
            return symbols.group(0).upper()
    return ""


def suffixed_id(txn_id: str, kind: str) -> str:
    """The id of a reversal or return never equals the id of the payment it undoes."""
    if kind == REVERSAL:
        return f"{txn_id}/RVSL"
    if kind == RETURN:
        return f"{txn_id}/RTRN"
    return txn_id


def check_unique_ids(lines: Sequence[StatementLine], *, xml: bool = False) -> None:
    """Refuse a file in which two lines carry the same transaction id."""
    seen: dict[str, int] = {}
    for line in lines:
        first = seen.setdefault(line.txn_id, line.line_no)
        if first == line.line_no:
            continue
        if xml:
            message = _(
                "The transaction id %(id)s appears twice (transactions %(first)d and %(second)d "
                "of the file); the two payments cannot be told apart."
            )
        else:
            message = _(
                "The transaction id %(id)s appears twice (lines %(first)d and %(second)d); "
                "the two payments cannot be told apart."
            )
        raise FormatError(
            message % {"id": line.txn_id, "first": first, "second": line.line_no}, line.line_no
        )


def money(value: Decimal) -> str:
    """An amount for a message: "1234.50", never in exponent notation."""
    return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else f"{value:f}"
