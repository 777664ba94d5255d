"""Import readings from a CSV or XLSX file: staged, validated, posted whole.

The file (a utility's or a post office's) has one reading per line:

    supply_point_code | meter   the point's code, or the meter's serial number
    register                    the register code (1.8.0, day, night…)
    read_on                     the date (2025-03-31, 31.03.2025 or 31/03/2025)
    value                       the index (decimal point or decimal comma)
    reason                      optional: periodic, move_in, … (default periodic)

``stage_import`` stores and hashes the upload (the same file is refused a
second time), then ``validate_import`` streams its rows in chunks: each chunk
is resolved to registers and checked by the plausibility rules set-wise
(``load_contexts`` once per chunk, ``check`` per row). Rows that pass are
written to a staged CSV ready for ``COPY``; a temporary table holds
(line, register, date, value) of the rows seen so far, so duplicates in the
file and the previous reading of a register earlier in the file are found
with one query per chunk, and memory does not grow with the file.

``commit_import`` posts every staged row in one transaction with ``COPY``;
a flagged row is posted as flagged, and one review task is made per file.
A rejected row fails the file: nothing is posted unless the whole file is good.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import IO, Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from meters import plausibility
from meters.models import (
    ImportStatus,
    Reading,
    ReadingImport,
    ReadingReason,
    ReadingSource,
    ReadingStatus,
    Register,
)
from portal import services
from portal.imports import ImportFileError, chunked, iter_rows, sha256_of
from portal.models import TaskKind, User
from portal.roles import Role
from portal.services import ServiceError

CHUNK_ROWS = 5_000
# The page shows the errors; beyond this many, only their count is kept.
MAX_STORED_ERRORS = 10_000
STAGE_TABLE = "meters_import_stage"

POINT_COLUMNS = ("supply_point_code", "supply_point", "pod", "eic")
METER_COLUMNS = ("meter", "meter_serial", "serial_number", "meter_serial_number")
REGISTER_COLUMNS = ("register", "register_code")
DATE_COLUMNS = ("read_on", "date", "reading_date")
VALUE_COLUMNS = ("value", "index", "reading")
REASON_COLUMNS = ("reason",)

_NOON = time(12, 0)
_REASONS = {value: value for value in ReadingReason.values}

# The columns of meters_reading filled by the staged file, in its order.
COPY_COLUMNS = (
    "public_id", "register_id", "value", "read_at", "read_on", "source", "reason", "status",
    "findings", "consumption", "used_for_billing", "entered_by_id", "import_batch_id",
    "photo", "photo_sha256", "created_at",
)
_NULL = "\\N"


class DuplicateFile(ServiceError):
    """The same file (by content) was already uploaded and not discarded."""


@dataclass(frozen=True)
class Columns:
    point: str | None
    meter: str | None
    register: str
    read_on: str
    value: str
    reason: str | None


@dataclass
class ParsedRow:
    line: int
    point: str
    serial: str
    register_code: str
    read_on: date
    value: Decimal
    reason: str


@dataclass
class Outcome:
    """What a validation found (kept small: counts and the first errors)."""

    row_count: int = 0
    error_count: int = 0
    flagged_count: int = 0
    errors: list[dict[str, Any]] | None = None

    def error(self, line: int, column: str, message: str) -> None:
        self.error_count += 1
        if self.errors is None:
            self.errors = []
        if len(self.errors) < MAX_STORED_ERRORS:
            self.errors.append({"line": line, "column": column, "message": message})


@lru_cache(maxsize=4096)
def _read_at(day: date, zone: ZoneInfo) -> str:
    """A file gives a date only: the reading counts as taken at noon, operator's time."""
    return datetime.combine(day, _NOON, tzinfo=zone).isoformat()


def staged_name(imp: ReadingImport) -> str:
    return f"imports/readings/staged/{imp.public_id}.csv"


# --- Upload --------------------------------------------------------------------------


def stage_import(*, upload: UploadedFile, uploaded_by: User) -> ReadingImport:
    """Store and hash the upload, refuse a file already posted or pending, validate it."""
    digest = sha256_of(upload.chunks())
    _refuse_duplicate(digest)
    name = (upload.name or "readings.csv")[-255:]
    imp = ReadingImport(
        original_name=name, sha256=digest, status=ImportStatus.VALIDATED,
        uploaded_by=uploaded_by,
    )
    upload.seek(0)
    imp.file.save(name, upload, save=False)
    try:
        with transaction.atomic():
            imp.save()
    except IntegrityError as exc:  # uploaded twice at the same moment
        imp.file.delete(save=False)
        raise DuplicateFile(_("This file has already been uploaded.")) from exc
    services.record(action="meters.import_uploaded", actor=uploaded_by, obj=imp,
                    after={"name": name, "sha256": digest})
    validate_import(imp)
    return imp


def _refuse_duplicate(digest: str) -> None:
    earlier = (
        ReadingImport.objects.filter(sha256=digest)
        .exclude(status__in=[ImportStatus.FAILED, ImportStatus.DISCARDED])
        .first()
    )
    if earlier is not None:
        when = timezone.localtime(earlier.created_at).strftime("%Y-%m-%d %H:%M")
        if earlier.status == ImportStatus.COMMITTED:
            message = _("This file was already posted (uploaded as “%(name)s” on %(when)s).")
        else:
            message = _("This file is already waiting to be posted (uploaded as “%(name)s” on "
                        "%(when)s).")
        raise DuplicateFile(message % {"name": earlier.original_name, "when": when})


# --- Validation ----------------------------------------------------------------------


def _pick(headers: set[str], names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in headers), None)


def _columns(first: dict[str, Any], outcome: Outcome, line: int) -> Columns | None:
    headers = set(first)
    point = _pick(headers, POINT_COLUMNS)
    meter = _pick(headers, METER_COLUMNS)
    register = _pick(headers, REGISTER_COLUMNS)
    read_on = _pick(headers, DATE_COLUMNS)
    value = _pick(headers, VALUE_COLUMNS)
    missing = []
    if point is None and meter is None:
        missing.append("supply_point_code / meter")
    for wanted, name in ((register, "register"), (read_on, "read_on"), (value, "value")):
        if wanted is None:
            missing.append(name)
    if missing:
        outcome.error(1, ", ".join(missing), _("The header lacks the column(s): %(names)s.")
                      % {"names": ", ".join(missing)})
        return None
    assert register and read_on and value  # noqa: S101
    return Columns(point, meter, register, read_on, value, _pick(headers, REASON_COLUMNS))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def parse_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    for sep in (".", "/"):
        parts = text.split(sep)
        if len(parts) == 3 and len(parts[2]) == 4:
            try:
                return date(int(parts[2]), int(parts[1]), int(parts[0]))
            except ValueError:
                return None
    return None


def parse_number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        value = repr(value)
    text = _text(value).replace(" ", "")
    if "," in text:
        if "." in text or text.count(",") > 1:
            return None
        text = text.replace(",", ".")
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _parse(line: int, row: dict[str, Any], cols: Columns, outcome: Outcome) -> ParsedRow | None:
    ok = True
    point = _text(row.get(cols.point)) if cols.point else ""
    serial = _text(row.get(cols.meter)) if cols.meter else ""
    if not point and not serial:
        outcome.error(line, cols.point or cols.meter or "",
                      _("The supply point code or the meter serial number is missing."))
        ok = False
    register_code = _text(row.get(cols.register))
    if not register_code:
        outcome.error(line, cols.register, _("The register code is missing."))
        ok = False
    raw_date = row.get(cols.read_on)
    read_on = parse_date(raw_date)
    if read_on is None:
        outcome.error(line, cols.read_on,
                      _("“%(value)s” is not a date (write 2025-03-31 or 31.03.2025).")
                      % {"value": _text(raw_date)[:40]})
        ok = False
    raw_value = row.get(cols.value)
    value = parse_number(raw_value)
    if value is None:
        outcome.error(line, cols.value, _("“%(value)s” is not a number.")
                      % {"value": _text(raw_value)[:40]})
        ok = False
    reason = ReadingReason.PERIODIC.value
    if cols.reason:
        raw_reason = _text(row.get(cols.reason)).lower().replace("-", "_").replace(" ", "_")
        if raw_reason:
            if raw_reason not in _REASONS:
                outcome.error(line, cols.reason, _("“%(value)s” is not a reading reason (one of "
                                                   "%(choices)s).")
                              % {"value": raw_reason[:40], "choices": ", ".join(_REASONS)})
                ok = False
            reason = raw_reason
    if not ok:
        return None
    assert read_on is not None and value is not None  # noqa: S101
    return ParsedRow(line, point, serial, register_code, read_on, value, reason)


# (key, register code) → [(installed_on, removed_on, register id)]
Candidates = dict[tuple[str, str], list[tuple[date, date | None, int]]]


def _resolve(rows: list[ParsedRow]) -> tuple[Candidates, Candidates]:
    """The registers the chunk names, by point code and by meter serial: two queries."""
    points = {r.point for r in rows if r.point}
    serials = {r.serial for r in rows if r.serial and not r.point}
    by_point: Candidates = {}
    by_serial: Candidates = {}
    fields = ("id", "code", "meter__installed_on", "meter__removed_on")
    if points:
        for rid, code, on, off, point in Register.objects.filter(
            meter__supply_point__code__in=points
        ).values_list(*fields, "meter__supply_point__code"):
            by_point.setdefault((point, code), []).append((on, off, rid))
    if serials:
        for rid, code, on, off, serial in Register.objects.filter(
            meter__serial_number__in=serials
        ).values_list(*fields, "meter__serial_number"):
            by_serial.setdefault((serial, code), []).append((on, off, rid))
    return by_point, by_serial


def _register_for(row: ParsedRow, by_point: Candidates, by_serial: Candidates) -> int | None:
    """The register of the meter in place on the reading's date (meter exchange)."""
    found = by_point.get((row.point, row.register_code)) if row.point else by_serial.get(
        (row.serial, row.register_code))
    if not found:
        return None
    if len(found) == 1:
        return found[0][2]
    for on, off, rid in found:
        if on <= row.read_on and (off is None or row.read_on <= off):
            return rid
    return max(found)[2]


def _unknown_register_message(row: ParsedRow, by_point: Candidates, by_serial: Candidates) -> str:
    if row.point:
        if not any(key[0] == row.point for key in by_point):
            return _("Unknown supply point “%(code)s”.") % {"code": row.point[:40]}
        return _("The supply point %(code)s has no register “%(register)s”.") % {
            "code": row.point[:40], "register": row.register_code[:16]}
    if not any(key[0] == row.serial for key in by_serial):
        return _("Unknown meter “%(serial)s”.") % {"serial": row.serial[:40]}
    return _("The meter %(serial)s has no register “%(register)s”.") % {
        "serial": row.serial[:40], "register": row.register_code[:16]}


def validate_import(imp: ReadingImport) -> ReadingImport:
    """Check every row; write the good ones to the staged file; set the import's status."""
    outcome = Outcome()
    staged = tempfile.TemporaryFile()  # noqa: SIM115 - handed to storage below
    try:
        with imp.file.open("rb") as source, transaction.atomic():
            _validate_rows(imp, source, staged, outcome)
        if outcome.error_count == 0 and outcome.row_count == 0:
            outcome.error(1, "", _("The file has no readings."))
        if outcome.error_count == 0:
            staged.seek(0)
            default_storage.delete(staged_name(imp))
            default_storage.save(staged_name(imp), File(staged))
    finally:
        staged.close()
    imp.row_count = outcome.row_count
    imp.error_count = outcome.error_count
    imp.errors = outcome.errors or []
    imp.status = ImportStatus.FAILED if outcome.error_count else ImportStatus.VALIDATED
    imp.save(update_fields=["row_count", "error_count", "errors", "status"])
    return imp


def _validate_rows(
    imp: ReadingImport, source: IO[bytes], staged: IO[bytes], outcome: Outcome
) -> None:
    rules = plausibility.active_rules()
    today = timezone.localdate()
    zone = ZoneInfo(settings.TIME_ZONE)
    created = timezone.now().isoformat()
    text = io.TextIOWrapper(staged, encoding="utf-8", newline="", write_through=False)
    writer = csv.writer(text)
    constant_tail = (ReadingSource.IMPORTED.value,)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {STAGE_TABLE}")
        cursor.execute(
            f"CREATE TEMP TABLE {STAGE_TABLE} (line integer, register_id integer, "
            "read_on date, value numeric) ON COMMIT DROP"
        )
        cursor.execute(f"CREATE INDEX ON {STAGE_TABLE} (register_id, read_on)")
        columns: Columns | None = None
        try:
            for chunk in chunked(iter_rows(source, imp.original_name), CHUNK_ROWS):
                if columns is None:
                    columns = _columns(chunk[0][1], outcome, chunk[0][0])
                    if columns is None:
                        break
                parsed = []
                for line, row in chunk:
                    outcome.row_count += 1
                    item = _parse(line, row, columns, outcome)
                    if item is not None:
                        parsed.append(item)
                del chunk
                good = _check_chunk(cursor, parsed, outcome, rules, today)
                if outcome.error_count:
                    continue  # keep finding errors; nothing will be posted
                user_id = str(imp.uploaded_by_id)
                batch_id = str(imp.pk)
                for row, register_id, verdict in good:
                    writer.writerow((
                        uuid.uuid4(), register_id, row.value,
                        _read_at(row.read_on, zone),
                        row.read_on, *constant_tail, row.reason, verdict.status,
                        json.dumps([f.as_json() for f in verdict.findings]) if verdict.findings
                        else "[]",
                        _NULL if verdict.consumption is None else verdict.consumption,
                        "t", user_id, batch_id, "", "", created,
                    ))
                    if verdict.flagged:
                        outcome.flagged_count += 1
        except ImportFileError as exc:
            outcome.error(0, "", str(exc))
        cursor.execute(f"DROP TABLE IF EXISTS {STAGE_TABLE}")
    text.flush()
    text.detach()


def _check_chunk(
    cursor: Any, rows: list[ParsedRow], outcome: Outcome, rules: plausibility.RuleSet,
    today: date,
) -> list[tuple[ParsedRow, int, plausibility.Verdict]]:
    """Resolve, deduplicate and check one chunk; stage its good rows. Fixed queries."""
    by_point, by_serial = _resolve(rows)
    resolved: list[tuple[ParsedRow, int]] = []
    for row in rows:
        register_id = _register_for(row, by_point, by_serial)
        if register_id is None:
            outcome.error(row.line, "register", _unknown_register_message(row, by_point, by_serial))
        else:
            resolved.append((row, register_id))
    if not resolved:
        return []
    ids = list({rid for _row, rid in resolved})
    # Rows earlier in the file with the same register and date.
    cursor.execute(
        "SELECT c.line, MIN(s.line) FROM unnest(%s::int[], %s::int[], %s::date[]) "
        "AS c(line, register_id, read_on) JOIN meters_import_stage s "
        "ON s.register_id = c.register_id AND s.read_on = c.read_on GROUP BY c.line",
        [[r.line for r, _ in resolved], [rid for _, rid in resolved],
         [r.read_on for r, _ in resolved]],
    )
    earlier_line = dict(cursor.fetchall())
    # The latest reading of each register earlier in the file.
    cursor.execute(
        "SELECT DISTINCT ON (register_id) register_id, value, read_on "
        "FROM meters_import_stage WHERE register_id = ANY(%s) ORDER BY register_id, read_on DESC",
        [ids],
    )
    in_file: dict[int, tuple[Decimal, date]] = {
        rid: (value, on) for rid, value, on in cursor.fetchall()
    }
    contexts = plausibility.load_contexts(ids)
    seen: dict[tuple[int, date], int] = {}
    good: list[tuple[ParsedRow, int, plausibility.Verdict]] = []
    for row, register_id in resolved:
        key = (register_id, row.read_on)
        first = earlier_line.get(row.line) or seen.get(key)
        if first is not None:
            outcome.error(row.line, "read_on", _("Duplicate: line %(line)d has a reading of the "
                                                 "same register on the same day.")
                          % {"line": first})
            continue
        seen[key] = row.line
        ctx = contexts[register_id]
        previous = in_file.get(register_id)
        if previous is not None and (ctx.last_on is None or previous[1] >= ctx.last_on):
            ctx = replace(ctx, previous_value=previous[0], previous_on=previous[1],
                          last_on=previous[1], zero_days=0)
        verdict = plausibility.check(ctx, row.value, row.read_on, today=today, rules=rules)
        if verdict.rejected:
            outcome.error(row.line, "value", " ".join(
                f.message for f in verdict.findings if f.severity == plausibility.REJECT))
            continue
        if previous is None or row.read_on > previous[1]:
            in_file[register_id] = (row.value, row.read_on)
        good.append((row, register_id, verdict))
    with cursor.copy(f"COPY {STAGE_TABLE} (line, register_id, read_on, value) FROM STDIN") as copy:
        for row, register_id, _verdict in good:
            copy.write_row((row.line, register_id, row.read_on, row.value))
    return good


# --- Commit and discard ----------------------------------------------------------------


def _stream(fileobj: IO[bytes], size: int = 1024 * 1024) -> Iterator[bytes]:
    while block := fileobj.read(size):
        yield block


def commit_import(*, imp: ReadingImport, committed_by: User) -> ReadingImport:
    """Post every staged reading of a validated import in one transaction (COPY)."""
    with transaction.atomic():
        imp = ReadingImport.objects.select_for_update().get(pk=imp.pk)
        if imp.status != ImportStatus.VALIDATED:
            raise ServiceError(_("Only a checked file without errors can be posted."))
        columns = ", ".join(COPY_COLUMNS)
        try:
            with (
                transaction.atomic(),
                default_storage.open(staged_name(imp), "rb") as staged,
                connection.cursor() as cursor,
                cursor.copy(f"COPY {Reading._meta.db_table} ({columns}) FROM STDIN "
                            "WITH (FORMAT csv, NULL '\\N')") as copy,
            ):
                for block in _stream(staged):
                    copy.write(block)
        except IntegrityError as exc:
            raise ServiceError(_("Readings for the same registers and days were posted since "
                                 "the file was checked; check it again.")) from exc
        except FileNotFoundError as exc:
            raise ServiceError(
                _("The checked rows of this file are gone; upload it again.")
            ) from exc
        flagged = Reading.objects.filter(import_batch=imp, status=ReadingStatus.FLAGGED).count()
        if flagged:
            services.create_task(
                subject=_("Review %(count)d flagged readings imported from %(name)s")
                % {"count": flagged, "name": imp.original_name},
                kind=TaskKind.READING_REVIEW, team=Role.METER_READING, source=imp,
            )
        imp.status = ImportStatus.COMMITTED
        imp.committed_at = timezone.now()
        imp.save(update_fields=["status", "committed_at"])
        services.record(action="meters.import_committed", actor=committed_by, obj=imp,
                        after={"rows": imp.row_count, "flagged": flagged})
    default_storage.delete(staged_name(imp))
    return imp


def discard_import(*, imp: ReadingImport, discarded_by: User) -> ReadingImport:
    """Drop a file that was not posted (it may then be uploaded again)."""
    with transaction.atomic():
        imp = ReadingImport.objects.select_for_update().get(pk=imp.pk)
        if imp.status == ImportStatus.COMMITTED:
            raise ServiceError(_("This file is posted; it cannot be discarded."))
        if imp.status == ImportStatus.DISCARDED:
            return imp
        imp.status = ImportStatus.DISCARDED
        imp.save(update_fields=["status"])
        services.record(action="meters.import_discarded", actor=discarded_by, obj=imp)
    default_storage.delete(staged_name(imp))
    return imp
