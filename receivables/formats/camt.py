"""ISO 20022 camt.053 (statement) and camt.054 (debit/credit notification).

Every version of the two messages is read (``camt.053.001.02`` … ``.13``,
``camt.054.001.02`` …): the namespace is taken from the file, and the places
where versions differ (``Sts`` vs ``Sts/Cd``, ``Dbtr/Nm`` vs ``Dbtr/Pty/Nm``,
``Chrgs/Amt`` vs ``Chrgs/Rcrd/Amt``) are read both ways. The XML parser
resolves no entities, loads no DTD and fetches nothing; a file that declares a
DTD or an entity (XXE, "billion laughs") is refused.

Which entries become lines
--------------------------
Only booked entries (``Sts`` = ``BOOK``). An entry with several
``NtryDtls/TxDtls`` (a batch booking) gives one line per ``TxDtls``. The
direction of a transaction is its own ``TxDtls/CdtDbtInd`` when given, else
the entry's ``CdtDbtInd``.

* a credit that is neither a reversal nor a return: kind "payment", amount > 0;
* a debit with ``RtrInf``: kind "return" (a payment to us sent back), amount < 0;
* a debit with ``RvslInd`` true: kind "reversal" (a credit to us cancelled), amount < 0;
* skipped: ordinary debits (our own outgoing payments), and credits that are
  reversals or returns (one of our own outgoing payments coming back).

``CdtDbtInd`` is the direction of the booking itself, reversals included: ISO
20022 defines a DBIT entry with ``RvslInd`` true as the reversal of a credit.
A reversed credit is therefore a DBIT entry and is negative here; its sign is
*not* flipped, which keeps closing = opening + Σ entries true.

Amounts and charges
-------------------
``amount`` is what the payer paid and ``fee`` the charges netted from it (see
``common``). Charges come from ``Chrgs/Rcrd/Amt`` (or ``Chrgs/Amt``,
``Chrgs/TtlChrgsAndTaxAmt``), skipping records with ``ChrgInclInd`` false
(charges billed separately, not netted). An entry with one transaction:
booked = the entry amount, fee = the transaction's charges or else the
entry's, amount = booked + fee. A batch: each ``TxDtls`` needs an amount
(``AmtDtls/TxAmt/Amt`` or ``TxDtls/Amt``); when they add up to the entry
amount they are what was booked (amount = TxAmt + fee); when they add up to
the entry amount only after the charges are taken off, they are what the
payers paid (amount = TxAmt; charges stated on the entry alone cannot be put
on a line and stay with the entry). Anything else is refused.

Transaction id
--------------
In this order: the bank's ``TxDtls/Refs/AcctSvcrRef``; the entry's
``AcctSvcrRef`` (with ``/<n>``, the transaction's ordinal in the entry, for a
batch); the interbank ``Refs/TxId``; then ``<EndToEndId>/<booking day
YYYYMMDD>/<amount>`` when the EndToEndId is not ``NOTPROVIDED`` and that id is
unique in the file (payers repeat an EndToEndId, e.g. the same Slovak symbols on
every instalment of an invoice, so it is never used alone); else the position
``<statement id>/<entry ordinal>/<transaction ordinal>``. Reversals and returns
get the ``/RVSL`` or ``/RTRN`` suffix (``common.suffixed_id``).

``line_no`` is the transaction's ordinal in the file, counting every entry
(pending and skipped ones too, one per transaction, at least one per entry),
so that it points at the same place whatever is skipped. Error messages give
the entry's ordinal and its line in the XML text.

Checks
------
The stated totals (``TxsSummry/TtlNtries``, ``TtlCdtNtries``, ``TtlDbtNtries``:
``NbOfNtries`` and ``Sum``) must match the entries (all of them, or the booked
ones); a batch's ``NbOfTxs``/``TtlAmt`` must match its ``TxDtls``; a
statement with an opening (``OPBD``, or ``PRCD``) and a closing (``CLBD``)
balance must close at opening + Σ booked entries; consecutive statements of one
file must chain (opening = previous closing); one file is one account.
``created_at`` is the file's own ``CreDtTm``, naive when the file gives no offset.

How it is read
--------------
The file is streamed (``iterparse``): entries leave the tree once read, so
memory stays flat however many entries a statement has (a whole 200,000-entry
tree takes some 700 MB). Entries are turned into tab-separated ``code=value``
text by an XSLT stylesheet, a thousand at a time: a call into lxml costs about a
microsecond from Python and an entry has some thirty elements, while libxslt
walks them in C. Values come out whitespace-normalised (``normalize-space``),
so they hold no tab or newline.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.utils.translation import gettext as _
from lxml import etree

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
    sk_symbols,
    suffixed_id,
)

Element = Any  # lxml.etree._Element; lxml ships no type stubs

_DECLARATION = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_XML_DECIMAL = re.compile(r"\d{1,18}(?:\.\d{1,5})?")
_COUNT = re.compile(r"\d{1,15}")
_NOT_PROVIDED = "NOTPROVIDED"
_BATCH = 1000  # entries per XSLT run

# message element → (statement element, format name)
_MESSAGES = {
    "BkToCstmrStmt": ("Stmt", "camt.053"),
    "BkToCstmrDbtCdtNtfctn": ("Ntfctn", "camt.054"),
}
_REPORT = "BkToCstmrAcctRpt"  # camt.052


def _refused_dtd() -> FormatError:
    return FormatError(
        _(
            "The XML file declares a DTD or entities. Bank statements never do; "
            "the file is refused for safety."
        )
    )


def _local(element: Element) -> str:
    tag = element.tag
    return str(tag[tag.rfind("}") + 1 :]) if isinstance(tag, str) else ""


def _namespace(element: Element) -> str:
    tag = element.tag
    return str(tag[1 : tag.index("}")]) if tag.startswith("{") else ""


# --- The stylesheet --------------------------------------------------------------------
#
# The output is records, one a line, opening with a marker; fields follow as tab-separated
# "code=value" pairs, only for the elements present (values are whitespace-normalised, so
# they hold no tab or newline):
#   S, B, U   the statement (Id, account, CreDtTm), each balance, each TxsSummry total
#   E         an entry; G a new NtryDtls group in it; H its Btch; T a TxDtls in the group
#   C         a charge of the entry or transaction being read; "^" goes back to that one
#   ^E        back to the entry (its elements after NtryDtls)
# Each entry is walked once, element by element, by template rules matched on names:
# far cheaper than evaluating a path per field.

# (match pattern, code): an element whose text is a field of the record being read.
_LEAVES = (
    ("c:Ntry/c:CdtDbtInd", "d"),
    ("c:Ntry/c:Sts", "s"),  # "BOOK" from <Sts>BOOK</Sts> or <Sts><Cd>BOOK</Cd></Sts>
    ("c:Ntry/c:BookgDt", "b"),  # Dt or DtTm
    ("c:Ntry/c:ValDt", "v"),
    ("c:Ntry/c:AcctSvcrRef", "r"),
    ("c:Ntry/c:RvslInd", "rv"),
    ("c:Ntry/c:AddtlNtryInf", "i"),
    ("c:Refs/c:AcctSvcrRef", "tr"),
    ("c:Refs/c:EndToEndId", "te"),
    ("c:Refs/c:TxId", "ti"),
    ("c:TxDtls/c:CdtDbtInd", "d"),
    ("c:CdtrRefInf/c:Ref", "ref"),
    ("c:RmtInf/c:Ustrd", "u"),
    ("c:TxDtls/c:AddtlTxInf", "i"),
    ("c:Btch/c:NbOfTxs", "n"),
    *(
        (f"c:{party}/{path}", f"{code}{suffix}")
        for party, code in (
            ("Dbtr", "d"),
            ("UltmtDbtr", "ud"),
            ("Cdtr", "c"),
            ("UltmtCdtr", "uc"),
        )
        for path, suffix in (("c:Nm", "n"), ("c:Pty/c:Nm", "n"))
    ),
    ("c:DbtrAcct/c:Id/c:IBAN", "da"),
    ("c:DbtrAcct/c:Id/c:Othr/c:Id", "da"),
    ("c:CdtrAcct/c:Id/c:IBAN", "ca"),
    ("c:CdtrAcct/c:Id/c:Othr/c:Id", "ca"),
)
# Amounts: the value and its currency ("<code>c").
_AMOUNTS = (
    ("c:Ntry/c:Amt", "a"),
    ("c:TxDtls/c:Amt", "a"),
    ("c:TxAmt/c:Amt", "ta"),
    ("c:Btch/c:TtlAmt", "t"),
)
# Subtrees with nothing we read: not walked.
_SKIPPED = (
    *("c:BkTxCd", "c:RltdAgts", "c:RltdDts", "c:RltdPric", "c:RltdQties", "c:Purp", "c:Tax"),
    *("c:PstlAdr", "c:CtctDtls", "c:InstdAmt", "c:CntrValAmt", "c:AnncdPstngAmt", "c:PrtryAmt"),
    *("c:Dbtr/c:Id", "c:Cdtr/c:Id", "c:Pty/c:Id", "c:UltmtDbtr/c:Id", "c:UltmtCdtr/c:Id"),
    *("c:CardTx", "c:FinInstrmId", "c:CshDpst", "c:SfkpgAcct", "c:CorpActn", "c:AddtlDataSetInf"),
)


def _text_out(text: str) -> str:
    return f"<xsl:text>{text}</xsl:text>"


def _value(code: str, select: str = ".") -> str:
    return _text_out(f"&#9;{code}=") + f'<xsl:value-of select="normalize-space({select})"/>'


def _record(kind: str, fields: list[tuple[str, str]]) -> str:
    return _text_out(f"&#10;{kind}") + "".join(_value(code, path) for code, path in fields)


_STYLESHEET = (
    '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"{xmlns}>'
    '<xsl:output method="text" encoding="utf-8"/>'
    '<xsl:param name="part" select="\'all\'"/>'
    '<xsl:param name="count" select="-1"/>'
    # Applied to a Stmt / Ntfctn element: its own data (when part is "all"), then the first
    # ``count`` (all: -1) entries not read yet (read ones are deleted, or emptied: Ntry[*]).
    # The parser runs ahead of its events: entries after the last one it reported may be
    # in the tree already, the last of them half built.
    '<xsl:template match="/">'
    '<xsl:if test="$part = \'all\'"><xsl:for-each select="/*">'
    + _record(
        "S",
        [
            ("id", "c:Id"),
            ("iban", "c:Acct/c:Id/c:IBAN"),
            ("other", "c:Acct/c:Id/c:Othr/c:Id"),
            ("created", "c:CreDtTm"),
        ],
    )
    + '<xsl:for-each select="c:Bal">'
    + _record(
        "B",
        [
            ("code", "c:Tp/c:CdOrPrtry/c:Cd"),
            ("prtry", "c:Tp/c:CdOrPrtry/c:Prtry"),
            ("a", "c:Amt"),
            ("d", "c:CdtDbtInd"),
        ],
    )
    + '</xsl:for-each><xsl:for-each select="c:TxsSummry/*">'
    + _record("U", [("name", "local-name()"), ("n", "c:NbOfNtries"), ("sum", "c:Sum")])
    + "</xsl:for-each></xsl:for-each></xsl:if>"
    '<xsl:for-each select="/*/c:Ntry[*][$count &lt; 0 or position() &lt;= $count]">'
    + _text_out("&#10;E")
    + '<xsl:apply-templates select="*"/></xsl:for-each></xsl:template>'
    # walking an entry
    '<xsl:template match="*"><xsl:apply-templates select="*"/></xsl:template>'
    '<xsl:template match="c:NtryDtls">'
    + _text_out("&#10;G")
    + '<xsl:apply-templates select="*"/>'
    + _text_out("&#10;^E")
    + "</xsl:template>"
    '<xsl:template match="c:Btch">'
    + _text_out("&#10;H")
    + '<xsl:apply-templates select="*"/></xsl:template>'
    '<xsl:template match="c:TxDtls">'
    + _text_out("&#10;T")
    + '<xsl:apply-templates select="*"/></xsl:template>'
    '<xsl:template match="c:RtrInf">' + _text_out("&#9;rt=1") + "</xsl:template>"
    # charges: one C record per Chrgs/Rcrd (.04 and later), else per Chrgs (.02, .03)
    '<xsl:template match="c:Chrgs"><xsl:choose>'
    '<xsl:when test="c:Rcrd"><xsl:for-each select="c:Rcrd">'
    + _record(
        "C",
        [
            ("k", "'R'"),
            ("a", "c:Amt"),
            ("ac", "c:Amt/@Ccy"),
            ("d", "c:CdtDbtInd"),
            ("inc", "c:ChrgInclInd"),
        ],
    )
    + '</xsl:for-each></xsl:when><xsl:when test="c:Amt">'
    + _record("C", [("k", "'A'"), ("a", "c:Amt"), ("ac", "c:Amt/@Ccy")])
    + '</xsl:when><xsl:when test="c:TtlChrgsAndTaxAmt">'
    + _record(
        "C",
        [("k", "'T'"), ("a", "c:TtlChrgsAndTaxAmt"), ("ac", "c:TtlChrgsAndTaxAmt/@Ccy")],
    )
    + "</xsl:when></xsl:choose>"
    + _text_out("&#10;^")
    + "</xsl:template>"
    + "".join(
        f'<xsl:template match="{pattern}">{_value(code)}</xsl:template>'
        for pattern, code in _LEAVES
    )
    + "".join(
        f'<xsl:template match="{pattern}">{_value(code)}{_value(code + "c", "@Ccy")}</xsl:template>'
        for pattern, code in _AMOUNTS
    )
    + f'<xsl:template match="{" | ".join(_SKIPPED)}"/>'
    + "</xsl:stylesheet>"
)
_ENTRIES_ONLY = etree.XSLT.strparam("entries")

_transforms = threading.local()  # lxml XSLT objects are best not shared between threads


def _transform(namespace: str) -> Any:
    cache: dict[str, Any] = _transforms.__dict__.setdefault("by_namespace", {})
    if namespace not in cache:
        if namespace:
            text = _STYLESHEET.replace("{xmlns}", f' xmlns:c="{namespace}"')
        else:  # no namespace: plain names
            text = _STYLESHEET.replace("{xmlns}", "").replace("c:", "")
        cache[namespace] = etree.XSLT(
            etree.XML(text.encode()), access_control=etree.XSLTAccessControl.DENY_ALL
        )
    return cache[namespace]


# --- Records ---------------------------------------------------------------------------


def _fields(pairs: list[str], into: dict[str, str], texts: list[str] | None = None) -> None:
    """Add "code=value" pairs to ``into``: the first value of a code counts, except the
    unstructured remittance ("u"), every line of which goes to ``texts``."""
    for pair in pairs:
        code, _equals, value = pair.partition("=")
        if code == "u":
            if texts is not None and value:
                texts.append(value)
        elif code not in into:
            into[code] = value


class _Tx:
    """A TxDtls, from its T record."""

    __slots__ = ("charges", "fields", "group", "texts")

    def __init__(self, group: int) -> None:
        self.group = group  # ordinal of its NtryDtls in the entry
        self.fields: dict[str, str] = {}
        self.texts: list[str] = []  # the Ustrd lines
        self.charges: list[dict[str, str]] = []

    def get(self, code: str) -> str:
        return self.fields.get(code, "")

    def party(self, role: str) -> tuple[str, str]:
        """(name, account) of the debtor ("d") or the creditor ("c")."""
        fields = self.fields
        name = fields.get(f"{role}n") or fields.get(f"u{role}n", "")
        account = fields.get(f"{role}a", "")
        return name, normalise_account(account) if account else ""


@dataclass(slots=True)
class _Entry:
    ordinal: int  # in the file
    line: int | None  # where it starts in the XML text
    fields: dict[str, str] = field(default_factory=dict)
    charges: list[dict[str, str]] = field(default_factory=list)
    batches: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    transactions: list[_Tx] = field(default_factory=list)

    def get(self, code: str) -> str:
        return self.fields.get(code, "")

    def error(self, problem: str) -> FormatError:
        return FormatError(
            _("Entry %(entry)d (line %(line)s of the file): %(problem)s")
            % {"entry": self.ordinal, "line": self.line or "?", "problem": problem},
            self.line,
        )


def _entries(chunks: list[str], lines: list[int | None], first_ordinal: int) -> Iterator[_Entry]:
    """The entries of the stylesheet's output, in file order."""
    entry: _Entry | None = None
    owner: dict[str, str] = {}  # the record fields go to
    charges_to: list[dict[str, str]] = []
    back_to: dict[str, str] = {}
    texts: list[str] | None = None
    group = 0
    ordinal = first_ordinal - 1
    for chunk in chunks:
        for record in chunk.split("\n"):
            marker, *pairs = record.split("\t")
            if marker == "E":
                if entry is not None:
                    yield entry
                ordinal += 1
                entry = _Entry(ordinal, lines[ordinal - first_ordinal])
                owner, charges_to, texts, group = entry.fields, entry.charges, None, 0
            elif entry is None:
                continue
            elif marker == "T":
                tx = _Tx(group)
                entry.transactions.append(tx)
                owner, charges_to, texts = tx.fields, tx.charges, tx.texts
            elif marker == "G":
                group += 1
            elif marker == "H":
                batch: dict[str, str] = {}
                entry.batches.append((group, batch))
                owner, texts = batch, None
            elif marker == "C":
                if not charges_to or owner is not charges_to[-1]:
                    back_to = owner
                charge: dict[str, str] = {}
                charges_to.append(charge)
                owner = charge
            elif marker == "^":
                owner = back_to
            elif marker == "^E":
                owner, charges_to, texts = entry.fields, entry.charges, None
            _fields(pairs, owner, texts)
    if entry is not None:
        yield entry


# --- Values ----------------------------------------------------------------------------


def _amount(text: str, what: str, entry: _Entry) -> Decimal:
    if not text:
        raise entry.error(_("the amount (%(element)s) is missing.") % {"element": what})
    if not _XML_DECIMAL.fullmatch(text):
        raise entry.error(_("the amount %(value)r is not a number.") % {"value": text})
    return Decimal(text)


def _direction(code: str, entry: _Entry, *, default: int | None = None) -> int:
    """+1 for CRDT, -1 for DBIT."""
    if code == "CRDT":
        return 1
    if code == "DBIT":
        return -1
    if not code and default is not None:
        return default
    raise entry.error(
        _("the credit/debit indicator %(value)r is neither CRDT nor DBIT.") % {"value": code}
    )


@lru_cache(maxsize=4096)
def _iso_date(text: str) -> date:
    # A statement holds a handful of distinct dates, on every one of its entries.
    return date.fromisoformat(text[:10])


def _date(text: str, what: str, entry: _Entry) -> date | None:
    if not text:
        return None
    try:
        return _iso_date(text)
    except ValueError:
        raise entry.error(
            _("the date %(value)r in %(element)s is not a date.") % {"value": text, "element": what}
        ) from None


def _datetime(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _charges(charges: list[dict[str, str]], currency: str, entry: _Entry) -> Decimal:
    """Charges netted (``ChrgInclInd`` not false), 0 when none."""
    total = ZERO
    for charge in charges:
        if charge.get("inc", "").lower() == "false":
            continue  # billed separately, not taken from this amount
        amount = _amount(charge.get("a", ""), "Chrgs", entry)
        charge_currency = charge.get("ac", "").upper()
        if charge_currency and charge_currency != currency:
            raise entry.error(
                _("the charges are in %(charges)s, the entry in %(entry)s.")
                % {"charges": charge_currency, "entry": currency}
            )
        # A charge record is a debit unless it says CRDT (a charge refunded).
        total += -amount if charge.get("d") == "CRDT" else amount
    if total < 0:
        raise entry.error(_("the charges add up to a negative amount."))
    return total


def _payer(tx: _Tx | None, direction: int, our_account: str) -> tuple[str, str]:
    """The customer's side: the debtor of a credit; of a debit (a return or reversal),
    whichever party is not us."""
    if tx is None:
        return "", ""
    for role in ("d", "c") if direction > 0 else ("c", "d"):
        name, account = tx.party(role)
        if (name or account) and not (account and account == our_account):
            return name, account
    return "", ""


# --- Reading ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Candidate:
    line: StatementLine
    weak: bool  # the id is built on an EndToEndId: used only if unique in the file
    positional: str


@dataclass
class _Statement:
    statement_id: str
    account: str
    line: int | None
    created_at: datetime | None
    opening: Decimal | None
    closing: Decimal | None
    control_count: int | None
    control_sum: Decimal | None


class _StatementError:
    def __init__(self, line: int | None) -> None:
        self.line = line

    def __call__(self, problem: str) -> FormatError:
        return FormatError(
            _("Line %(line)s of the file: %(problem)s")
            % {"line": self.line or "?", "problem": problem},
            self.line,
        )


class _Reader:
    def __init__(self) -> None:
        self.entry_no = 0  # entries in the file so far
        self.tx_no = 0  # transactions in the file so far (line_no)
        self.candidates: list[_Candidate] = []

    def statement(
        self, last: str, chunks: list[str], entry_lines: list[int | None], line: int | None
    ) -> _Statement:
        """``last`` is the stylesheet's output for the whole statement: its own records, then
        the entries not yet in ``chunks``."""
        error = _StatementError(line)
        head, _separator, rest = last.partition("\nE")
        chunks = [*chunks, "\nE" + rest] if _separator else chunks
        records: list[tuple[str, dict[str, str]]] = []
        for record in head.split("\n"):
            marker, *pairs = record.split("\t")
            fields: dict[str, str] = {}
            _fields(pairs, fields)
            records.append((marker, fields))
        statement = next((fields for marker, fields in records if marker == "S"), {})
        statement_id = statement.get("id", "")
        if not statement_id:
            raise error(_("the statement has no identification (Id)."))
        account = normalise_account(statement.get("iban") or statement.get("other", ""))
        if not account:
            raise error(_("the statement names no account (Acct/Id)."))
        created = statement.get("created", "")
        opening, closing = self.balances([f for marker, f in records if marker == "B"], error)

        booked_net = ZERO
        rows: list[tuple[int, Decimal, str]] = []  # (direction, amount, status) of every entry
        entries = _entries(chunks, entry_lines, self.entry_no + 1)
        for entry_in_statement, entry in enumerate(entries, start=1):
            self.entry_no = entry.ordinal
            direction, amount, status = self.entry(entry, statement_id, entry_in_statement, account)
            rows.append((direction, amount, status))
            if status == "BOOK":
                booked_net += direction * amount
        summary = [fields for marker, fields in records if marker == "U"]
        control_count, control_sum = self.check_summary(summary, statement_id, rows, error)
        if opening is not None and closing is not None and opening + booked_net != closing:
            raise error(
                _(
                    "statement %(id)s opens at %(opening)s and its booked entries add up to "
                    "%(net)s, so it should close at %(expected)s, but it closes at %(closing)s."
                )
                % {
                    "id": statement_id,
                    "opening": money(opening),
                    "net": money(booked_net),
                    "expected": money(opening + booked_net),
                    "closing": money(closing),
                }
            )
        return _Statement(
            statement_id=statement_id,
            account=account,
            line=line,
            created_at=_datetime(created),
            opening=opening,
            closing=closing,
            control_count=control_count,
            control_sum=control_sum,
        )

    def balances(
        self, balances: list[dict[str, str]], error: _StatementError
    ) -> tuple[Decimal | None, Decimal | None]:
        found: dict[str, Decimal] = {}
        for balance in balances:
            code = balance.get("code") or balance.get("prtry", "")
            amount, direction = balance.get("a", ""), balance.get("d", "")
            if code not in ("OPBD", "PRCD", "CLBD") or code in found:
                continue
            if not _XML_DECIMAL.fullmatch(amount):
                raise error(
                    _("the %(code)s balance %(value)r is not a number.")
                    % {"code": code, "value": amount}
                )
            if direction not in ("CRDT", "DBIT"):
                raise error(
                    _("the credit/debit indicator %(value)r is neither CRDT nor DBIT.")
                    % {"value": direction}
                )
            found[code] = Decimal(amount) if direction == "CRDT" else -Decimal(amount)
        opening = found.get("OPBD", found.get("PRCD"))
        return opening, found.get("CLBD")

    def check_summary(
        self,
        summary: list[dict[str, str]],
        statement_id: str,
        rows: list[tuple[int, Decimal, str]],
        error: _StatementError,
    ) -> tuple[int | None, Decimal | None]:
        totals: tuple[int | None, Decimal | None] = (None, None)
        wanted_of = {"TtlNtries": 0, "TtlCdtNtries": 1, "TtlDbtNtries": -1}
        for stated in summary:
            name, count_text, sum_text = stated.get("name"), stated.get("n"), stated.get("sum")
            if name not in wanted_of:
                continue
            wanted = wanted_of[name]
            if count_text and not _COUNT.fullmatch(count_text):
                raise error(_("the count %(value)r is not a number.") % {"value": count_text})
            if sum_text and not _XML_DECIMAL.fullmatch(sum_text):
                raise error(_("the amount %(value)r is not a number.") % {"value": sum_text})
            stated_count = int(count_text) if count_text else None
            stated_sum = Decimal(sum_text) if sum_text else None
            populations = []
            for booked_only in (False, True):
                chosen = [
                    amount
                    for direction, amount, status in rows
                    if wanted in (0, direction) and (status == "BOOK" or not booked_only)
                ]
                populations.append((len(chosen), sum(chosen, ZERO)))
            if not any(
                (stated_count is None or stated_count == count)
                and (stated_sum is None or stated_sum == total)
                for count, total in populations
            ):
                count, total = populations[0]
                raise error(
                    _(
                        "statement %(id)s says it has %(stated_count)s entries (%(what)s) "
                        "totalling %(stated_sum)s, but it has %(count)d totalling %(sum)s."
                    )
                    % {
                        "id": statement_id,
                        "what": name,
                        "stated_count": "?" if stated_count is None else stated_count,
                        "stated_sum": "?" if stated_sum is None else money(stated_sum),
                        "count": count,
                        "sum": money(total),
                    }
                )
            if wanted == 0:
                totals = (stated_count, stated_sum)
        return totals

    def entry(
        self, entry: _Entry, statement_id: str, entry_in_statement: int, our_account: str
    ) -> tuple[int, Decimal, str]:
        """Read one entry, add its lines; return (direction, amount, status) for the totals."""
        amount = _amount(entry.get("a"), "Amt", entry)
        currency = entry.get("ac").upper()
        if not currency:
            raise entry.error(_("the amount has no currency (Ccy)."))
        direction = _direction(entry.get("d"), entry)
        status = entry.get("s").upper()
        if not status:
            raise entry.error(_("the entry has no status (Sts)."))
        transactions = entry.transactions
        first_tx_no = self.tx_no + 1
        self.tx_no += max(1, len(transactions))
        self.check_batches(entry, amount)
        if status != "BOOK":
            return direction, amount, status

        booking_date = _date(entry.get("b"), "BookgDt", entry)
        if booking_date is None:
            raise entry.error(_("the booked entry has no booking date (BookgDt)."))
        value_date = _date(entry.get("v"), "ValDt", entry)
        reversal = entry.get("rv").lower() in ("true", "1")
        entry_fee = _charges(entry.charges, currency, entry)

        parts: list[tuple[_Tx | None, int, Decimal, Decimal]]
        if len(transactions) <= 1:
            tx = transactions[0] if transactions else None
            tx_fee = ZERO if tx is None else _charges(tx.charges, currency, entry)
            fee = tx_fee or entry_fee
            tx_direction = (
                direction if tx is None else _direction(tx.get("d"), entry, default=direction)
            )
            parts = [(tx, tx_direction, direction * amount + fee, fee)]
        else:
            parts = list(self.batch(entry, direction, amount, currency, entry_fee))

        batch = len(parts) > 1
        for index, (tx, tx_direction, line_amount, fee) in enumerate(parts, start=1):
            returned = tx is not None and "rt" in tx.fields
            if tx_direction > 0:
                if returned or reversal:
                    continue  # one of our own outgoing payments coming back
                kind = PAYMENT
            elif returned:
                kind = RETURN
            elif reversal:
                kind = REVERSAL
            else:
                continue  # our own outgoing payment
            entry_ref = entry.get("r")
            self.add_line(
                tx,
                entry=entry,
                kind=kind,
                line_no=first_tx_no + index - 1,
                txn_id=(f"{entry_ref}/{index}" if batch else entry_ref) if entry_ref else "",
                positional=f"{statement_id}/{entry_in_statement}/{index}",
                booking_date=booking_date,
                value_date=value_date,
                amount=line_amount,
                fee=fee,
                currency=currency,
                direction=tx_direction,
                our_account=our_account,
            )
        return direction, amount, status

    def batch(
        self, entry: _Entry, direction: int, amount: Decimal, currency: str, entry_fee: Decimal
    ) -> list[tuple[_Tx | None, int, Decimal, Decimal]]:
        """(tx, direction, amount, fee) of each TxDtls of a batch entry; see the module notes."""
        rows = []
        transactions = entry.transactions
        for index, tx in enumerate(transactions, start=1):
            if "ta" in tx.fields:
                tx_amount, tx_currency = tx.get("ta"), tx.get("tac")
            elif "a" in tx.fields:
                tx_amount, tx_currency = tx.get("a"), tx.get("ac")
            else:
                raise entry.error(
                    _(
                        "the entry holds %(count)d transactions and transaction %(index)d has "
                        "no amount of its own."
                    )
                    % {"count": len(transactions), "index": index}
                )
            if tx_currency and tx_currency.upper() != currency:
                raise entry.error(
                    _("transaction %(index)d is in %(tx)s, the entry in %(entry)s.")
                    % {"index": index, "tx": tx_currency, "entry": currency}
                )
            tx_direction = _direction(tx.get("d"), entry, default=direction)
            signed = tx_direction * _amount(tx_amount, "TxAmt", entry)
            rows.append((tx, tx_direction, signed, _charges(tx.charges, currency, entry)))
        booked = direction * amount
        signed_sum = sum((signed for _tx, _d, signed, _fee in rows), ZERO)
        fees = sum((fee for *_rest, fee in rows), ZERO)
        if signed_sum == booked:  # TxAmt is what was booked; the payer paid it plus the charges
            return [(tx, d, signed + fee, fee) for tx, d, signed, fee in rows]
        if signed_sum - fees - entry_fee == booked:  # TxAmt is what the payer paid
            return [(tx, d, signed, fee) for tx, d, signed, fee in rows]
        raise entry.error(
            _(
                "its %(count)d transactions add up to %(sum)s, which is not the entry amount "
                "%(amount)s (charges: %(fees)s)."
            )
            % {
                "count": len(rows),
                "sum": money(signed_sum),
                "amount": money(booked),
                "fees": money(fees + entry_fee),
            }
        )

    def check_batches(self, entry: _Entry, entry_amount: Decimal) -> None:
        for group, batch in entry.batches:
            transactions = [tx for tx in entry.transactions if tx.group == group]
            if not transactions:
                continue
            stated = batch.get("n", "")
            if stated:
                if not _COUNT.fullmatch(stated):
                    raise entry.error(_("the count %(value)r is not a number.") % {"value": stated})
                if int(stated) != len(transactions):
                    raise entry.error(
                        _("the batch says it has %(stated)s transactions but lists %(count)d.")
                        % {"stated": stated, "count": len(transactions)}
                    )
            if "t" not in batch:
                continue
            stated_total = _amount(batch["t"], "TtlAmt", entry)
            amounts = [
                _amount(tx.get("ta") if "ta" in tx.fields else tx.get("a"), "TxAmt", entry)
                for tx in transactions
                if "ta" in tx.fields or "a" in tx.fields
            ]
            if stated_total not in (sum(amounts, ZERO), entry_amount):
                raise entry.error(
                    _("the batch says it totals %(stated)s but its transactions add up to %(sum)s.")
                    % {"stated": money(stated_total), "sum": money(sum(amounts, ZERO))}
                )

    def add_line(
        self,
        tx: _Tx | None,
        *,
        entry: _Entry,
        kind: str,
        line_no: int,
        txn_id: str,
        positional: str,
        booking_date: date,
        value_date: date | None,
        amount: Decimal,
        fee: Decimal,
        currency: str,
        direction: int,
        our_account: str,
    ) -> None:
        end_to_end = tx_id = own_ref = reference = text = ""
        if tx is not None:
            end_to_end, tx_id = tx.get("te"), tx.get("ti")
            end_to_end = "" if end_to_end.upper() == _NOT_PROVIDED else end_to_end
            tx_id = "" if tx_id.upper() == _NOT_PROVIDED else tx_id
            own_ref = tx.get("tr")
            reference = tx.get("ref")
            text = " ".join(tx.texts) or tx.get("i")
        text = text or entry.get("i")
        weak = False
        if own_ref:
            txn_id = own_ref
        elif not txn_id and tx_id:
            txn_id = tx_id
        elif not txn_id and end_to_end:
            # The payer's EndToEndId repeats (the same VS/SS/KS on every instalment of an
            # invoice); the booking day and amount make a repeat a different payment.
            txn_id, weak = f"{end_to_end}/{booking_date:%Y%m%d}/{abs(amount)}", True
        reference = reference or sk_symbols(end_to_end) or find_reference(text)
        payer_name, payer_account = _payer(tx, direction, our_account)

        self.candidates.append(
            _Candidate(
                line=StatementLine(
                    line_no=line_no,
                    txn_id=txn_id,
                    booking_date=booking_date,
                    value_date=value_date,
                    amount=amount,
                    currency=currency,
                    fee=fee,
                    payer_name=payer_name,
                    payer_account=payer_account,
                    reference=reference,
                    text=text,
                    kind=kind,
                    reverses="" if kind == PAYMENT else (end_to_end or tx_id),
                ),
                weak=weak,
                positional=positional,
            )
        )

    def lines(self) -> list[StatementLine]:
        uses: dict[str, int] = {}
        for candidate in self.candidates:
            uses[candidate.line.txn_id] = uses.get(candidate.line.txn_id, 0) + 1
        lines = []
        for candidate in self.candidates:
            line = candidate.line
            txn_id = line.txn_id
            if not txn_id or (candidate.weak and uses[txn_id] > 1):
                txn_id = candidate.positional
            txn_id = suffixed_id(txn_id, line.kind)
            if txn_id != line.txn_id:
                # StatementLine is frozen with slots; object.__setattr__ is how its own
                # __init__ sets fields, and it saves building the line twice.
                object.__setattr__(line, "txn_id", txn_id)
            lines.append(line)
        check_unique_ids(lines, xml=True)
        return lines


# --- The file ----------------------------------------------------------------------------


def _check_no_dtd(element: Element) -> None:
    info = element.getroottree().docinfo
    if info.internalDTD is not None or info.doctype:
        raise _refused_dtd()


def _message(element: Element) -> tuple[str, str]:
    """(statement element name, format name) of the message ``element`` (a Stmt/Ntfctn or an
    Ntry in one) belongs to; FormatError if it is not a camt.053/054 document."""
    node = element
    while node is not None and _local(node) not in _MESSAGES and _local(node) != _REPORT:
        node = node.getparent()
    name = "" if node is None else _local(node)
    if name == _REPORT:
        raise FormatError(
            _(
                "This is a camt.052 intraday account report. Import the day's camt.053 "
                "statement or camt.054 notification instead: only they carry final bookings."
            )
        )
    parent = None if node is None else node.getparent()
    if name not in _MESSAGES or parent is None or _local(parent) != "Document":
        raise FormatError(
            _("This XML file is not a camt.053 bank statement or a camt.054 notification.")
        )
    return _MESSAGES[name]


def parse_camt(data: bytes) -> ParsedFile:
    """Read a camt.053 or camt.054 file; FormatError (saying what and where) if it is not one."""
    if _DECLARATION.search(data):
        raise _refused_dtd()
    reader = _Reader()
    statements: list[_Statement] = []
    message: Element = None
    statement_tag, format_name = "", ""
    transform: Any = None
    chunks: list[str] = []  # the current statement's entries as records
    entry_lines: list[int | None] = []
    first_entry = -1  # index of the current statement's first unread entry among its children

    events = etree.iterparse(
        io.BytesIO(data),
        events=("end",),
        tag=("{*}Ntry", "{*}Stmt", "{*}Ntfctn", "{*}Rpt"),
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        for _event, element in events:
            if transform is None:
                _check_no_dtd(element)
                statement_tag, format_name = _message(element)
                transform = _transform(_namespace(element))
            name = _local(element)
            if name == "Ntry":
                parent = element.getparent()
                if _local(parent) != statement_tag:
                    _message(parent)  # explains what the file is instead
                    continue
                entry_lines.append(element.sourceline)
                if first_entry < 0:
                    first_entry = parent.index(element)
                if len(entry_lines) % _BATCH == 0:
                    chunks.append(str(transform(parent, part=_ENTRIES_ONLY, count=str(_BATCH))))
                    # Memory stays flat: the entries read leave the tree. The one just
                    # parsed is only emptied (the parser may still hold it).
                    del parent[first_entry : parent.index(element)]
                    element.clear()
            elif name == statement_tag:
                records = str(transform(element))
                statements.append(
                    reader.statement(records, chunks, entry_lines, element.sourceline)
                )
                message = element.getparent()
                chunks, entry_lines, first_entry = [], [], -1
                element.clear()
    except etree.XMLSyntaxError as error:
        line = error.lineno or None
        raise FormatError(
            _("The file is not well-formed XML (line %(line)s): %(detail)s")
            % {"line": line or "?", "detail": error.msg},
            line,
        ) from None

    if transform is None:  # no statement, no entry: say what the file is
        root = events.root
        _check_no_dtd(root)
        first = next(iter(root), None) if _local(root) == "Document" else None
        if first is None or (_local(first) not in _MESSAGES and _local(first) != _REPORT):
            raise FormatError(
                _("This XML file is not a camt.053 bank statement or a camt.054 notification.")
            )
        _message(first)
    if not statements:
        raise FormatError(
            _("The file holds no statement (%(element)s).") % {"element": statement_tag or "Stmt"}
        )
    return _parsed(format_name, message, statements, reader)


def _parsed(
    format_name: str, message: Element, statements: list[_Statement], reader: _Reader
) -> ParsedFile:
    accounts = {statement.account for statement in statements}
    if len(accounts) > 1:
        raise FormatError(
            _("The file holds statements of several accounts (%(accounts)s); import one at a time.")
            % {"accounts": ", ".join(sorted(accounts))}
        )
    for previous, current in zip(statements, statements[1:], strict=False):
        if previous.closing is None or current.opening is None:
            continue
        if previous.closing != current.opening:
            raise _StatementError(current.line)(
                _(
                    "statement %(id)s opens at %(opening)s but the statement before it "
                    "(%(previous)s) closed at %(closing)s: a statement is missing."
                )
                % {
                    "id": current.statement_id,
                    "opening": money(current.opening),
                    "previous": previous.statement_id,
                    "closing": money(previous.closing),
                }
            )

    namespace = _namespace(message)
    prefix = f"{{{namespace}}}" if namespace else ""
    message_id = message.findtext(f"{prefix}GrpHdr/{prefix}MsgId") or ""
    created = message.findtext(f"{prefix}GrpHdr/{prefix}CreDtTm") or ""
    counts = [statement.control_count for statement in statements]
    sums = [statement.control_sum for statement in statements]
    return ParsedFile(
        format=format_name,
        account=statements[0].account,
        statement_id=(
            statements[0].statement_id
            if len(statements) == 1
            else message_id.strip() or statements[0].statement_id
        ),
        created_at=statements[0].created_at or _datetime(created.strip()),
        opening_balance=statements[0].opening,
        closing_balance=statements[-1].closing,
        control_count=None if None in counts else sum(c for c in counts if c is not None),
        control_sum=None if None in sums else sum((s for s in sums if s is not None), ZERO),
        lines=reader.lines(),
        business_date=None,
    )
