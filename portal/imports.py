"""Staged file imports: store and hash the upload, then stream its rows.

An import is uploaded, stored and hashed (the same file is refused a second
time), validated row by row, shown with its errors, and posted all or
nothing. This module holds the parts every import shares:

- ``sha256_of`` hashes an upload without reading it into memory;
- ``iter_rows`` streams a CSV (UTF-8, optional BOM, ``;`` or ``,``) or an
  XLSX (openpyxl read-only; defusedxml is installed) as
  ``(line_number, {header: value})`` pairs, one at a time, so a file of a
  million rows needs no more memory than one of ten thousand;
- ``ImportFileError`` says, in words for the user, why a file cannot be read
  (not a spreadsheet, a zip bomb, an XML entity, a line too long…).
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Generator, Iterable, Iterator
from datetime import date, datetime, time
from typing import IO, Any

from django.utils.translation import gettext as _

from portal.services import ServiceError

Row = dict[str, Any]

# A cell longer than this is not data we import (and a "line" of 100 MB is an attack).
MAX_FIELD_CHARS = 10_000
MAX_COLUMNS = 50
# XLSX: total uncompressed size of the archive and the largest credible
# compression ratio of one member (sheet XML compresses 10–30×).
MAX_XLSX_UNCOMPRESSED = 2 * 1024**3
MAX_XLSX_RATIO = 200
_SNIFF_BYTES = 64 * 1024


class ImportFileError(ServiceError):
    """The file cannot be read as a spreadsheet; the message says why."""


def sha256_of(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def normalise_header(name: object) -> str:
    """ "Supply point code " → "supply_point_code"."""
    return "_".join(str(name or "").strip().lower().replace("-", " ").split())


def kind_of(name: str, head: bytes) -> str:
    """ "xlsx" or "csv", from the file's first bytes and its name."""
    lowered = name.lower()
    if head.startswith(b"PK\x03\x04"):
        if lowered.endswith((".xlsx", ".xlsm")):
            return "xlsx"
        raise ImportFileError(_("This is a zip archive, not a CSV or an .xlsx workbook."))
    if lowered.endswith((".xlsx", ".xlsm")):
        raise ImportFileError(_("This file is named .xlsx but is not an Excel workbook."))
    if lowered.endswith(".xls") or head.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportFileError(
            _("Old Excel files (.xls) cannot be read; save the sheet as .xlsx or CSV.")
        )
    if b"\x00" in head:
        raise ImportFileError(_("This is not a text (CSV) file or an .xlsx workbook."))
    return "csv"


def iter_rows(fileobj: IO[bytes], name: str) -> Iterator[tuple[int, Row]]:
    """The rows of an uploaded CSV or XLSX, as (line number, {header: text}).

    ``fileobj`` is a binary, seekable file. Raises ImportFileError (possibly
    after some rows were produced) when the file cannot be read further.
    """
    columns, rows = read_table(fileobj, name)
    for line, values in rows:
        yield line, {c: v for c, v in zip(columns, values, strict=False) if c}


def read_table(fileobj: IO[bytes], name: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The normalised header and the rows (line number, [cell text]) of a CSV or XLSX.

    The header is read at once (ImportFileError when the file is empty or not
    a spreadsheet); the rows are read as they are asked for. Cells are text:
    XLSX dates become ISO dates, whole numbers lose their ".0". A row may be
    shorter than the header; blank rows are skipped.
    """
    head = fileobj.read(1024)
    fileobj.seek(0)
    if kind_of(name, head) == "xlsx":
        return _xlsx_table(fileobj)
    return _csv_table(fileobj)


def cell_text(value: object) -> str:
    """A spreadsheet cell as the text a person would read in it."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, datetime):
        if value.time() == time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value).strip()


# --- CSV -------------------------------------------------------------------------


def _delimiter(sample: str) -> str:
    first_line = sample.split("\n", 1)[0]
    return ";" if first_line.count(";") > first_line.count(",") else ","


def _csv_table(fileobj: IO[bytes]) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    sample_bytes = fileobj.read(_SNIFF_BYTES)
    fileobj.seek(0)
    sample = sample_bytes.decode("utf-8-sig", errors="replace")
    text = io.TextIOWrapper(fileobj, encoding="utf-8-sig", newline="")
    previous_limit = csv.field_size_limit(MAX_FIELD_CHARS)
    reader = csv.reader(text, delimiter=_delimiter(sample))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError(_("The file is empty.")) from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise _csv_error(exc, 1) from exc
    finally:
        csv.field_size_limit(previous_limit)
    columns = [normalise_header(h) for h in header]
    if len(columns) > MAX_COLUMNS:
        raise ImportFileError(_("The first line has too many columns; is it the header?"))
    return columns, _csv_body(reader, text, len(columns))


def _csv_body(
    reader: Any, text: io.TextIOWrapper, width: int
) -> Iterator[tuple[int, list[str]]]:
    previous_limit = csv.field_size_limit(MAX_FIELD_CHARS)
    line = reader.line_num + 1
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                line = reader.line_num + 1
                continue
            if len(row) > MAX_COLUMNS:
                raise ImportFileError(
                    _("Line %(line)d has %(count)d columns; the header has %(width)d.")
                    % {"line": reader.line_num, "count": len(row), "width": width}
                )
            yield reader.line_num, row
            line = reader.line_num + 1
    except (csv.Error, UnicodeDecodeError) as exc:
        raise _csv_error(exc, line) from exc
    finally:
        csv.field_size_limit(previous_limit)
        text.detach()


def _csv_error(exc: Exception, line: int) -> ImportFileError:
    if isinstance(exc, UnicodeDecodeError):
        return ImportFileError(
            _("The file is not UTF-8 text (near line %(line)d); save it as “CSV UTF-8”.")
            % {"line": line}
        )
    return ImportFileError(
        _("Line %(line)d cannot be read (longer than %(limit)d characters or badly quoted).")
        % {"line": line, "limit": MAX_FIELD_CHARS}
    )


# --- XLSX ------------------------------------------------------------------------


def check_xlsx_archive(fileobj: IO[bytes]) -> None:
    """Refuse zip bombs and XML with DTDs/entities before openpyxl opens the file."""
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportFileError(_("The .xlsx workbook is damaged and cannot be opened.")) from exc
    with archive:
        members = archive.infolist()
        if "xl/workbook.xml" not in {m.filename for m in members}:
            raise ImportFileError(_("This zip file is not an Excel workbook."))
        total = 0
        for member in members:
            total += member.file_size
            ratio = member.file_size / max(member.compress_size, 1)
            if total > MAX_XLSX_UNCOMPRESSED or (
                member.file_size > 10 * 1024**2 and ratio > MAX_XLSX_RATIO
            ):
                raise ImportFileError(
                    _("The workbook unpacks to an implausible size (a “zip bomb”); it was refused.")
                )
        for member in members:
            if not member.filename.endswith((".xml", ".rels")):
                continue
            try:
                with archive.open(member) as part:
                    start = part.read(4096)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                raise ImportFileError(
                    _("The .xlsx workbook is damaged and cannot be opened.")
                ) from exc
            if b"<!DOCTYPE" in start.upper() or b"<!ENTITY" in start.upper():
                raise ImportFileError(
                    _("The workbook contains XML declarations (DTD/entities) that are not allowed.")
                )
    fileobj.seek(0)


def _xlsx_table(fileobj: IO[bytes]) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    import openpyxl

    check_xlsx_archive(fileobj)
    try:
        book = openpyxl.load_workbook(fileobj, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a broken workbook
        raise ImportFileError(_("The .xlsx workbook is damaged and cannot be opened.")) from exc
    rows = _xlsx_values(book)
    try:
        for _line, values in rows:
            columns = [normalise_header(v) for v in values]
            if len([c for c in columns if c]) > MAX_COLUMNS:
                raise ImportFileError(
                    _("The first line has too many columns; is it the header?")
                )
            return columns, rows
    except BaseException:
        rows.close()
        raise
    rows.close()
    raise ImportFileError(_("The file is empty."))


def _xlsx_values(book: Any) -> Generator[tuple[int, list[str]], None, None]:
    """The non-blank rows of the first sheet as text, with their row numbers."""
    try:
        sheet = book.worksheets[0]
        line = 0
        rows = sheet.iter_rows(values_only=True)
        while True:
            try:
                values = next(rows)
            except StopIteration:
                break
            except Exception as exc:
                raise ImportFileError(
                    _("The workbook cannot be read after line %(line)d.") % {"line": line}
                ) from exc
            line += 1
            texts = [cell_text(v) for v in values]
            if not any(texts):
                continue
            if any(len(t) > MAX_FIELD_CHARS for t in texts):
                raise ImportFileError(
                    _("Line %(line)d has a cell longer than %(limit)d characters.")
                    % {"line": line, "limit": MAX_FIELD_CHARS}
                )
            yield line, texts
    finally:
        book.close()
