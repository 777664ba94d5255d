"""Readers of the files payments arrive in: bank statements and collectors' files.

Pure parsing: bytes in, a ``ParsedFile`` out, or a ``FormatError`` whose
message (translated, shown to staff) says what is wrong and where. No database.

* ``camt.parse_camt``: ISO 20022 camt.053 / camt.054, any version;
* ``mt940.parse_mt940``: SWIFT MT940, several statements of one account;
* ``collector.parse_collector``: post-office and collector files, CSV or fixed
  width, with a ``Layout`` configured per collector;
* ``detect_and_parse``: picks one of them from the file's first bytes.

The size of an upload is the caller's business.
"""

from __future__ import annotations

import re

from django.utils.translation import gettext as _

from .camt import parse_camt
from .collector import FIXED_WIDTH, SEMICOLON_CSV, Layout, parse_collector
from .common import FormatError, LineErrors, ParsedFile, StatementLine
from .mt940 import parse_mt940

__all__ = [
    "FIXED_WIDTH",
    "SEMICOLON_CSV",
    "FormatError",
    "Layout",
    "LineErrors",
    "ParsedFile",
    "StatementLine",
    "detect_and_parse",
    "parse_camt",
    "parse_collector",
    "parse_mt940",
]

_SNIFF = 4096
_BINARY_SIGNATURES = {
    b"%PDF": "PDF",
    b"PK\x03\x04": "ZIP / XLSX / DOCX",
    b"\x1f\x8b": "gzip",
    b"\xd0\xcf\x11\xe0": "XLS / DOC",
    b"\x89PNG": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"Rar!": "RAR",
    b"7z\xbc\xaf": "7-Zip",
}
_MT940_START = re.compile(rb"^:20:", re.MULTILINE)
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def _head_text(head: bytes) -> bytes:
    """The first bytes without BOM and leading blanks; UTF-16 turned into ASCII-compatible bytes."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        head = head.decode("utf-16", errors="ignore").encode("utf-8", errors="ignore")
    return head.removeprefix(_BOMS[0]).lstrip()


def _is_binary(head: bytes) -> str:
    """The kind of binary file ``head`` starts, "" for text."""
    for signature, name in _BINARY_SIGNATURES.items():
        if head.startswith(signature):
            return name
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return ""  # UTF-16 text carries NUL bytes
    control = sum(1 for byte in head if byte < 32 and byte not in b"\t\n\r\x0c\x1a")
    return _("binary") if b"\x00" in head or control > len(head) // 20 else ""


def detect_and_parse(data: bytes, *, layout: Layout | None = None) -> ParsedFile:
    """Recognise camt (XML), MT940 (``:20:`` near the start) or, given its layout, a
    collector's file, and read it; FormatError for anything else."""
    head = data[:_SNIFF]
    if not head.strip():
        raise FormatError(_("The file is empty."))
    binary = _is_binary(head)
    if binary:
        raise FormatError(
            _(
                "This is a %(kind)s file, not a bank statement (camt.053/054, MT940) "
                "or a collector's payment file."
            )
            % {"kind": binary}
        )
    text = _head_text(head)
    if text.startswith(b"<"):
        return parse_camt(data)
    if _MT940_START.search(text[:1024]) or text.startswith(b"{1:"):
        return parse_mt940(data)
    if layout is not None:
        return parse_collector(data, layout)
    raise FormatError(
        _(
            "The file is not a bank statement (camt.053/054 XML or MT940). If it comes from "
            "a post office or another collector, import it with that collector's layout."
        )
    )
