"""Import readings from a CSV or XLSX file: staged, checked set-wise, posted whole.

The file (a utility's or a post office's) has one reading per line:

    supply_point_code | meter   the point's code, or the meter's serial number
    register                    the register code (1.8.0, day, night…)
    read_on                     the date (2025-03-31, 31.03.2025 or 31/03/2025)
    value                       the index (decimal point or decimal comma)
    reason                      optional: periodic, move_in, … (default periodic)

Three steps, each safe to run again:

1. ``stage_import`` stores and hashes the upload; the same file (renamed or
   not) is refused while an earlier copy is pending or posted. The check runs
   as a Celery task (``meters.tasks.check_reading_import``).
2. ``check_import`` streams the rows into an unlogged staging table with
   ``COPY`` (Python only splits the lines and normalises dates and numbers),
   then one statement resolves every row to its register (meter exchange:
   the meter in place on the day), finds duplicates, orders each register's
   rows with its last reading in the database, and sorts the rows into
   errors, plain readings and readings that need a closer look. Only the
   last kind goes through the Python plausibility rules
   (``meters.plausibility.check``) — a reading whose index moved forward,
   within the expected band and without a slipped decimal point is accepted
   by SQL, which is exactly when the rules find nothing. The outcome stays in
   an unlogged table until the file is posted or discarded.
3. ``commit_import`` posts every checked row in one ``INSERT … SELECT``.
   A flagged row is posted as flagged, with one review task per file;
   a rejected row fails the file: nothing is posted unless the whole file is good.

Memory does not depend on the file's length: rows stream through in blocks,
and only the first MAX_STORED_ERRORS errors are kept.
"""

from __future__ import annotations

import json
import operator
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
from django.conf import settings
from django.core.cache import cache
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from meters import plausibility
from meters.models import (
    ImportStatus,
    Meter,
    Reading,
    ReadingImport,
    ReadingReason,
    ReadingSource,
    ReadingStatus,
    Register,
    SupplyPoint,
)
from portal import services
from portal.imports import ImportFileError, read_table, sha256_of
from portal.models import TaskKind, User
from portal.roles import Role
from portal.services import ServiceError

# Rows between two progress reports while the file is staged.
PROGRESS_EVERY_ROWS = 10_000
# The page shows the errors; beyond this many, only their count is kept.
MAX_STORED_ERRORS = 10_000
# Memory PostgreSQL may use for the sorts of one check (the default spills to disk).
CHECK_WORK_MEM = "256MB"

POINT_COLUMNS = ("supply_point_code", "supply_point", "pod", "eic")
METER_COLUMNS = ("meter", "meter_serial", "serial_number", "meter_serial_number")
REGISTER_COLUMNS = ("register", "register_code")
DATE_COLUMNS = ("read_on", "date", "reading_date")
VALUE_COLUMNS = ("value", "index", "reading")
REASON_COLUMNS = ("reason",)

_REASONS = frozenset(ReadingReason.values)
_MISSING = object()
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_LOCAL_DATE = re.compile(r"(\d{1,2})([./])(\d{1,2})\2(\d{4})")
# An index as people write it, once spaces are gone and a decimal comma is a point.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,2})?")


class DuplicateFile(ServiceError):
    """The same file (by content) was already uploaded and not discarded."""


class PostingFailed(ServiceError):
    """The checked rows can no longer be posted as they are; the file must be uploaded again."""


@dataclass(frozen=True)
class Columns:
    """Where each field is in the file's rows (None: the file has no such column)."""

    point: str | None
    meter: str | None
    register: str
    read_on: str
    value: str
    reason: str | None

    def indexes(self, header: list[str]) -> list[int | None]:
        names = (self.point, self.meter, self.register, self.read_on, self.value, self.reason)
        return [header.index(n) if n is not None else None for n in names]


@dataclass
class Outcome:
    """What a check found (kept small: counts and the first errors)."""

    row_count: int = 0
    error_count: int = 0
    flagged_count: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def error(self, line: int, column: str, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_STORED_ERRORS:
            self.errors.append({"line": line, "column": column, "message": message})


def stage_table(imp: ReadingImport) -> str:
    return f"meters_import_stage_{int(imp.pk)}"


def checked_table(imp: ReadingImport) -> str:
    return f"meters_import_checked_{int(imp.pk)}"


# --- Upload --------------------------------------------------------------------------


def stage_import(*, upload: UploadedFile, uploaded_by: User) -> ReadingImport:
    """Store and hash the upload and queue its check; refuse a file already pending or posted."""
    from meters.tasks import check_reading_import

    digest = sha256_of(upload.chunks())
    _refuse_duplicate(digest)
    name = (upload.name or "readings.csv")[-255:]
    imp = ReadingImport(
        original_name=name, sha256=digest, status=ImportStatus.UPLOADED, uploaded_by=uploaded_by,
    )
    upload.seek(0)
    imp.file.save(name, upload, save=False)
    try:
        with transaction.atomic():
            imp.save()
            services.record(action="meters.import_uploaded", actor=uploaded_by, obj=imp,
                            after={"name": name, "sha256": digest})
            check_reading_import.delay_on_commit(imp.pk)  # type: ignore[attr-defined]
    except IntegrityError as exc:  # uploaded twice at the same moment
        imp.file.delete(save=False)
        raise DuplicateFile(_("This file has already been uploaded.")) from exc
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


# --- Reading the file ----------------------------------------------------------------


def _pick(headers: list[str], names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in headers), None)


def _columns(header: list[str], outcome: Outcome) -> Columns | None:
    point = _pick(header, POINT_COLUMNS)
    meter = _pick(header, METER_COLUMNS)
    register = _pick(header, REGISTER_COLUMNS)
    read_on = _pick(header, DATE_COLUMNS)
    value = _pick(header, VALUE_COLUMNS)
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
    return Columns(point, meter, register, read_on, value, _pick(header, REASON_COLUMNS))


def parse_date(text: str) -> date | None:
    """2025-03-31, 31.03.2025 or 31/03/2025 (a file gives the day, not the time)."""
    try:
        if match := _ISO_DATE.fullmatch(text):
            return date(int(match[1]), int(match[2]), int(match[3]))
        if match := _LOCAL_DATE.fullmatch(text):
            return date(int(match[4]), int(match[3]), int(match[1]))
    except ValueError:
        return None
    return None


def normalise_number(text: str) -> str | None:
    """The index as PostgreSQL reads it ("1 234,5" → "1234.5"), None when it is no number."""
    text = text.replace(" ", "").replace("\u00a0", "")
    if "," in text:
        if "." in text or text.count(",") > 1:
            return None
        text = text.replace(",", ".")
    return text if _NUMBER.fullmatch(text) else None


def _staged_rows(
    rows: Iterator[tuple[int, list[str]]], indexes: list[int | None], outcome: Outcome
) -> Iterator[tuple[object, ...]]:
    """(line, point, serial, register, read_on, value, reason, raw date, raw value, raw reason).

    Dates, numbers and reasons are normalised here (a file repeats its dates
    and reasons: each is parsed once); what does not parse is kept raw for
    the error message. This loop runs for every row of a million-row file,
    hence the plain code.
    """
    dates: dict[str, str | None] = {}
    reasons: dict[str, str] = {"": ReadingReason.PERIODIC.value}
    width = max(i for i in indexes if i is not None) + 1
    # Absent columns read an always-empty cell appended to each row.
    pick = operator.itemgetter(*[width if i is None else i for i in indexes])
    padding = [""] * (width + 1)
    for line, values in rows:
        outcome.row_count += 1
        if len(values) != width:
            values = (values + padding)[:width]
        values.append("")
        point, serial, register, raw_date, raw_value, raw_reason = pick(values)
        day = dates.get(raw_date, _MISSING)
        if day is _MISSING:
            if len(dates) > 10_000:
                dates.clear()
            parsed = parse_date(raw_date.strip())
            day = dates[raw_date] = parsed.isoformat() if parsed is not None else None
        number = raw_value if raw_value.isdigit() else normalise_number(raw_value.strip())
        reason = reasons.get(raw_reason)
        if reason is None:
            reason = raw_reason.strip().lower().replace("-", "_").replace(" ", "_") or (
                ReadingReason.PERIODIC.value)
            if len(reasons) < 1_000:
                reasons[raw_reason] = reason
        yield (
            line, point.strip(), serial.strip(), register.strip(), day, number,
            reason if reason in _REASONS else None,
            None if day is not None else raw_date.strip()[:40],
            None if number is not None else raw_value.strip()[:40],
            None if reason in _REASONS else reason[:40],
        )


def progress_key(imp: ReadingImport) -> str:
    return f"meters:import-progress:{imp.pk}"


def progress_of(imp: ReadingImport) -> int:
    """Rows read so far by the check of this file (0 when unknown)."""
    return int(cache.get(progress_key(imp)) or 0)


def _copy_into_stage(imp: ReadingImport, rows: Iterator[tuple[object, ...]]) -> None:
    """COPY the rows into the staging table as one stream.

    PostgreSQL stores a block while Python prepares the next: the two
    halves of the work run side by side. The progress goes to the cache
    (the connection is busy with the COPY until the end).
    """
    sql = (f"COPY {stage_table(imp)} (line, point, serial, register, read_on, value, reason, "
           "raw_date, raw_value, raw_reason) FROM STDIN")
    key = progress_key(imp)
    done = 0
    with connection.cursor() as cursor, cursor.copy(sql) as copy:
        write_row = copy.write_row
        for done, row in enumerate(rows, 1):  # noqa: B007 - counted for the progress
            write_row(row)
            if done % PROGRESS_EVERY_ROWS == 0:
                cache.set(key, done, 3600)


# --- Checking ------------------------------------------------------------------------


# Each (supply point or meter, register code) of the file with its candidate
# registers. Materialised and analysed, so the planner knows its size.
_CHOICES_SQL = """
CREATE TEMP TABLE meters_import_choices ON COMMIT DROP AS
WITH keys AS (
    SELECT DISTINCT CASE WHEN point <> '' THEN 'P' || point ELSE 'S' || serial END AS key,
           register
    FROM {stage}
    WHERE register <> '' AND (point <> '' OR serial <> '')
),
candidates AS (
    SELECT k.key, k.register, r.id, m.installed_on, m.removed_on
    FROM keys k
    JOIN {point} sp ON left(k.key, 1) = 'P' AND sp.code = substr(k.key, 2)
    JOIN {meter} m ON m.supply_point_id = sp.id
    JOIN {register} r ON r.meter_id = m.id AND r.code = k.register
    UNION ALL
    SELECT k.key, k.register, r.id, m.installed_on, m.removed_on
    FROM keys k
    JOIN {meter} m ON left(k.key, 1) = 'S' AND m.serial_number = substr(k.key, 2)
    JOIN {register} r ON r.meter_id = m.id AND r.code = k.register
)
-- Most keys name one register; a meter exchange leaves several, latest installed first.
SELECT key, register,
       array_agg(id ORDER BY installed_on DESC, id DESC) AS ids,
       array_agg(installed_on ORDER BY installed_on DESC, id DESC) AS ons,
       array_agg(removed_on ORDER BY installed_on DESC, id DESC) AS offs
FROM candidates GROUP BY key, register
"""

# The plausibility context of every candidate register (meters.plausibility).
_CONTEXT_TABLE_SQL = """
CREATE TEMP TABLE meters_import_ctx (
    register_id, integer_digits, decimals, multiplier, installed_on, removed_on,
    last_value, last_on, first_on, moved, last_move_on
) ON COMMIT DROP AS {context}
"""

_CHECK_SQL = """
CREATE UNLOGGED TABLE {checked} AS
WITH resolved AS (
    -- Only what the checks need travels on; the error messages read the staging table.
    SELECT s.line, s.read_on, s.value, s.reason,
           (s.point = '' AND s.serial = '') AS no_key, s.register = '' AS no_register,
           CASE WHEN c.ids IS NULL THEN NULL
                WHEN cardinality(c.ids) = 1 OR s.read_on IS NULL THEN c.ids[1]
                ELSE (SELECT u.id FROM unnest(c.ids, c.ons, c.offs) WITH ORDINALITY
                                       AS u(id, installed_on, removed_on, n)
                      ORDER BY (s.read_on >= u.installed_on
                                AND (u.removed_on IS NULL OR s.read_on <= u.removed_on)) DESC,
                               u.n
                      LIMIT 1)
           END AS register_id,
           (s.read_on IS NOT NULL AND s.value IS NOT NULL AND s.reason IS NOT NULL) AS parsed
    FROM {stage} s
    LEFT JOIN meters_import_choices c
      ON c.key = CASE WHEN s.point <> '' THEN 'P' || s.point ELSE 'S' || s.serial END
     AND c.register = s.register
),
ordered AS (
    SELECT r.*, c.integer_digits, c.decimals, c.multiplier, c.installed_on, c.removed_on,
           c.last_value, c.last_on,
           coalesce(c.last_move_on, c.first_on, c.last_on) AS still_since,
           CASE WHEN c.last_on - c.first_on >= %(min_history_days)s
                THEN c.moved / (c.last_on - c.first_on) END AS expected_daily,
           lag(r.line) OVER w AS lag_line,
           lag(r.value) OVER w AS lag_value,
           lag(r.read_on) OVER w AS lag_on,
           first_value(r.read_on) OVER w AS first_in_file
    FROM resolved r LEFT JOIN meters_import_ctx c ON c.register_id = r.register_id
    -- Rows that did not parse stay out of the sequence (one sort serves every window).
    WINDOW w AS (PARTITION BY r.register_id, r.parsed ORDER BY r.read_on, r.line)
),
previous AS (
    -- The previous reading: the file's own earlier row, unless the database has a later one.
    SELECT o.*, (o.lag_on IS NOT NULL AND (o.last_on IS NULL OR o.lag_on >= o.last_on))
               AS in_file
    FROM ordered o
),
moves AS (
    SELECT p.*,
           CASE WHEN p.in_file THEN p.lag_value ELSE p.last_value END AS prev_value,
           CASE WHEN p.in_file THEN p.lag_on ELSE p.last_on END AS prev_on
    FROM previous p
),
still AS (
    SELECT m.*,
           max(CASE WHEN m.prev_value IS NOT NULL AND m.value <> m.prev_value THEN m.read_on END)
               OVER (PARTITION BY m.register_id, m.parsed ORDER BY m.read_on, m.line
                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS moved_before
    FROM moves m
),
found AS (
    SELECT s.*,
           CASE WHEN s.no_key OR s.no_register OR NOT s.parsed OR s.register_id IS NULL
                     OR s.lag_on = s.read_on THEN array_remove(ARRAY[
               CASE WHEN s.no_key THEN 'no_key' END,
               CASE WHEN s.no_register THEN 'no_register' END,
               CASE WHEN s.read_on IS NULL THEN 'bad_date' END,
               CASE WHEN s.value IS NULL THEN 'bad_value' END,
               CASE WHEN s.reason IS NULL THEN 'bad_reason' END,
               CASE WHEN s.register_id IS NULL AND NOT s.no_register AND NOT s.no_key
                         AND s.parsed THEN 'unknown' END,
               CASE WHEN s.register_id IS NOT NULL AND s.parsed
                         AND s.lag_on = s.read_on THEN 'duplicate' END
           ], NULL) END AS errors,
           s.value - s.prev_value AS movement,
           s.read_on - s.prev_on AS days
    FROM still s
    OFFSET 0  -- computed once per row, not once per use
),
judged AS (
    SELECT f.*,
           CASE
               WHEN cardinality(f.errors) > 0 THEN 'error'
               -- Dates, the meter's period and the dial: the rules say why.
               WHEN f.read_on > %(today)s
                    OR f.read_on < f.installed_on OR f.read_on > f.removed_on
                    OR f.read_on <= f.prev_on
                    OR f.value < 0 OR f.value >= power(10::numeric, f.integer_digits)
                    OR min_scale(f.value) > f.decimals THEN 'check'
               WHEN f.prev_value IS NULL THEN 'ok'
               -- A drop (monotonic or rollover) or no movement (zero consumption, low band).
               WHEN f.movement <= 0 THEN 'check'
               -- About ten or a hundred times the previous index: a slipped decimal point.
               WHEN f.prev_value > 0 AND ({slipped}) THEN 'check'
               -- Outside the band expected from history (borderline cases too).
               WHEN f.expected_daily IS NOT NULL AND %(high_factor)s::numeric IS NOT NULL
                    AND (f.movement >= f.expected_daily * f.days * %(high_factor)s * 0.999999
                         OR f.movement <= f.expected_daily * f.days * %(low_factor)s * 1.000001)
                    THEN 'check'
               ELSE 'ok'
           END AS verdict
    FROM found f
    OFFSET 0
)
SELECT j.line, j.register_id, j.read_on, j.value, j.reason, j.verdict,
       CASE WHEN j.verdict = 'ok' THEN j.movement * j.multiplier END AS consumption,
       NULL::text AS status, NULL::jsonb AS findings,
       -- What the Python rules need for a closer look.
       CASE WHEN j.verdict = 'check' THEN j.in_file END AS in_file,
       CASE WHEN j.verdict = 'check' THEN j.prev_value END AS prev_value,
       CASE WHEN j.verdict = 'check' THEN j.prev_on END AS prev_on,
       CASE WHEN j.verdict = 'check' AND j.in_file
            THEN j.prev_on - coalesce(j.moved_before, j.still_since, j.first_in_file) END
           AS zero_days,
       -- What an error message needs.
       CASE WHEN j.verdict = 'error' THEN j.errors END AS errors,
       -- A duplicate names the line before it with the same register and day.
       CASE WHEN j.verdict = 'error' THEN j.lag_line END AS first_line
FROM judged j
"""


def check_import(imp: ReadingImport) -> ReadingImport:
    """Check every row of an uploaded file; safe to run again (a rerun starts over)."""
    claimed = ReadingImport.objects.filter(
        pk=imp.pk, status__in=[ImportStatus.UPLOADED, ImportStatus.CHECKING]
    ).update(status=ImportStatus.CHECKING)
    cache.delete(progress_key(imp))
    imp.refresh_from_db()
    if not claimed:
        return imp
    outcome = Outcome()
    _drop_tables(imp)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE UNLOGGED TABLE {stage_table(imp)} (line integer, point text, serial text, "
            "register text, read_on date, value numeric, reason text, raw_date text, "
            "raw_value text, raw_reason text)"
        )
    try:
        with transaction.atomic():  # a file that breaks off mid-way aborts its COPY
            columns = _stage(imp, outcome)
        if columns is not None and outcome.row_count and not outcome.error_count:
            with transaction.atomic():
                _check_rows(imp, columns, outcome)
    except ImportFileError as exc:
        outcome.error(0, "", str(exc))
    if outcome.error_count == 0 and outcome.row_count == 0:
        outcome.error(1, "", _("The file has no readings."))
    failed = outcome.error_count > 0
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {stage_table(imp)}")
        if failed:
            cursor.execute(f"DROP TABLE IF EXISTS {checked_table(imp)}")
    outcome.errors.sort(key=lambda e: e["line"])
    # Conditional: a file discarded while it was being checked stays discarded.
    saved = ReadingImport.objects.filter(pk=imp.pk, status=ImportStatus.CHECKING).update(
        row_count=outcome.row_count, error_count=outcome.error_count,
        flagged_count=outcome.flagged_count, errors=outcome.errors,
        status=ImportStatus.FAILED if failed else ImportStatus.VALIDATED,
    )
    if not saved:
        _drop_tables(imp)
    cache.delete(progress_key(imp))
    imp.refresh_from_db()
    return imp


def _stage(imp: ReadingImport, outcome: Outcome) -> Columns | None:
    """Stream the file into the staging table; the header's columns, None if it lacks some."""
    with imp.file.open("rb") as source:
        header, rows = read_table(source, imp.original_name)
        columns = _columns(header, outcome)
        if columns is None:
            return None
        _copy_into_stage(imp, _staged_rows(rows, columns.indexes(header), outcome))
    return columns


def _check_rows(imp: ReadingImport, columns: Columns, outcome: Outcome) -> None:
    """Judge the staged rows set-wise; the unusual ones go through the Python rules."""
    rules = plausibility.active_rules()
    factors = rules.factors() if rules.is_on("decimal_slip") else []
    # |value − previous × factor| ≤ previous × factor × tolerance, for each factor.
    slipped = " OR ".join(
        f"abs(f.value - f.prev_value * %(factor_{n})s) "
        f"<= f.prev_value * %(factor_{n})s * %(tolerance)s * 1.000001"
        for n in range(len(factors))
    ) or "false"
    high_low = rules.is_on("high_low")
    tables = {"stage": stage_table(imp), "point": SupplyPoint._meta.db_table,
              "meter": Meter._meta.db_table, "register": Register._meta.db_table}
    context = plausibility.context_sql(ids="SELECT unnest(ids) FROM meters_import_choices")
    sql = _CHECK_SQL.format(checked=checked_table(imp), slipped=slipped, **tables)
    params = {
        "today": timezone.localdate(),
        "min_history_days": plausibility.MIN_HISTORY_DAYS,
        **{f"factor_{n}": factor for n, factor in enumerate(factors)},
        "tolerance": rules.decimal("decimal_slip", "tolerance"),
        "high_factor": rules.decimal("high_low", "high_factor") if high_low else None,
        "low_factor": rules.decimal("high_low", "low_factor") if high_low else None,
    }
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {stage_table(imp)}")
        cursor.execute(f"SET LOCAL work_mem = '{CHECK_WORK_MEM}'")
        # One pass over every row: hash joins. A nested loop over a badly estimated
        # intermediate result would be quadratic in the file's length.
        cursor.execute("SET LOCAL enable_nestloop = off")
        cursor.execute("DROP TABLE IF EXISTS meters_import_choices, meters_import_ctx")
        cursor.execute(_CHOICES_SQL.format(**tables))
        cursor.execute("ANALYZE meters_import_choices")
        cursor.execute(_CONTEXT_TABLE_SQL.format(context=context), plausibility.context_params())
        cursor.execute("ANALYZE meters_import_ctx")
        cursor.execute(sql, params)
        cursor.execute("DROP TABLE meters_import_choices, meters_import_ctx")
        cursor.execute("SET LOCAL enable_nestloop = on")
    _report_errors(imp, columns, outcome)
    _look_closer(imp, rules, outcome)


def _report_errors(imp: ReadingImport, columns: Columns, outcome: Outcome) -> None:
    """The messages of the rows SQL found wrong (the first MAX_STORED_ERRORS of them)."""
    key_column = columns.point or columns.meter or ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT coalesce(sum(cardinality(errors)), 0) FROM {checked_table(imp)} "
            "WHERE verdict = 'error'"
        )
        total = cursor.fetchone()[0]
        cursor.execute(
            "WITH e AS ("
            f"  SELECT line, errors, first_line FROM {checked_table(imp)} WHERE verdict = 'error' "
            "   ORDER BY line LIMIT %s) "
            "SELECT e.line, e.errors, s.point, s.serial, s.register, s.raw_date, s.raw_value, "
            "s.raw_reason, e.first_line, "
            "CASE WHEN 'unknown' = ANY(e.errors) THEN CASE WHEN s.point <> '' "
            f"  THEN EXISTS (SELECT 1 FROM {SupplyPoint._meta.db_table} p WHERE p.code = s.point) "
            f"  ELSE EXISTS (SELECT 1 FROM {Meter._meta.db_table} m "
            "                WHERE m.serial_number = s.serial) END END "
            f"FROM e JOIN {stage_table(imp)} s ON s.line = e.line ORDER BY e.line",
            [MAX_STORED_ERRORS],
        )
        rows = cursor.fetchall()
    listed = 0
    for line, codes, point, serial, register, raw_date, raw_value, raw_reason, first, known in rows:
        for code in codes:
            listed += 1
            outcome.error(line, *_error_message(
                code, columns, key_column, point=point, serial=serial, register=register,
                raw_date=raw_date, raw_value=raw_value, raw_reason=raw_reason, first_line=first,
                known=known,
            ))
    outcome.error_count += int(total) - listed


def _error_message(
    code: str, columns: Columns, key_column: str, *, point: str, serial: str, register: str,
    raw_date: str | None, raw_value: str | None, raw_reason: str | None, first_line: int,
    known: bool | None,
) -> tuple[str, str]:
    """(column, message) of one error SQL found."""
    if code == "no_key":
        return key_column, _("The supply point code or the meter serial number is missing.")
    if code == "no_register":
        return columns.register, _("The register code is missing.")
    if code == "bad_date":
        return columns.read_on, _("“%(value)s” is not a date (write 2025-03-31 or "
                                  "31.03.2025).") % {"value": raw_date or ""}
    if code == "bad_value":
        return columns.value, _("“%(value)s” is not a number.") % {"value": raw_value or ""}
    if code == "bad_reason":
        return columns.reason or "reason", _(
            "“%(value)s” is not a reading reason (one of %(choices)s).") % {
            "value": raw_reason or "", "choices": ", ".join(ReadingReason.values)}
    if code == "duplicate":
        return columns.read_on, _("Duplicate: line %(line)d has a reading of the same register "
                                  "on the same day.") % {"line": first_line}
    # unknown
    if point:
        if not known:
            return "register", _("Unknown supply point “%(code)s”.") % {"code": point[:40]}
        return "register", _("The supply point %(code)s has no register “%(register)s”.") % {
            "code": point[:40], "register": register[:16]}
    if not known:
        return "register", _("Unknown meter “%(serial)s”.") % {"serial": serial[:40]}
    return "register", _("The meter %(serial)s has no register “%(register)s”.") % {
        "serial": serial[:40], "register": register[:16]}


def _look_closer(imp: ReadingImport, rules: plausibility.RuleSet, outcome: Outcome) -> None:
    """Run the plausibility rules on the rows SQL could not accept on sight."""
    checked = checked_table(imp)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT register_id FROM {checked} WHERE verdict = 'check'")
        register_ids = [row[0] for row in cursor.fetchall()]
    if not register_ids:
        return
    contexts = plausibility.load_contexts(register_ids)
    today = timezone.localdate()
    verdicts: list[tuple[int, str, str, Decimal | None]] = []
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT line, register_id, read_on, value, in_file, prev_value, prev_on, zero_days "
            f"FROM {checked} WHERE verdict = 'check' ORDER BY line"
        )
        while batch := cursor.fetchmany(5_000):
            for line, register_id, read_on, value, in_file, prev_value, prev_on, zero in batch:
                ctx = contexts[register_id]
                if in_file:
                    ctx = replace(ctx, previous_value=prev_value, previous_on=prev_on,
                                  last_on=prev_on, zero_days=zero or 0)
                verdict = plausibility.check(ctx, value, read_on, today=today, rules=rules)
                if verdict.rejected:
                    outcome.error(line, "value", " ".join(
                        f.message for f in verdict.findings if f.severity == plausibility.REJECT))
                    continue
                if verdict.flagged:
                    outcome.flagged_count += 1
                verdicts.append((line, verdict.status,
                                 json.dumps([f.as_json() for f in verdict.findings]),
                                 verdict.consumption))
    if outcome.error_count or not verdicts:
        return
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE meters_import_verdicts (line integer, status text, "
                       "findings jsonb, consumption numeric) ON COMMIT DROP")
        with cursor.copy("COPY meters_import_verdicts FROM STDIN") as copy:
            for row in verdicts:
                copy.write_row(row)
        cursor.execute(
            f"UPDATE {checked} c SET verdict = 'ok', status = v.status, findings = v.findings, "
            "consumption = v.consumption FROM meters_import_verdicts v WHERE c.line = v.line"
        )


# --- Commit and discard ----------------------------------------------------------------


# The checked rows as meters_reading rows, in the table's binary COPY format.
_POST_SELECT = """
COPY (
    SELECT gen_random_uuid(), c.register_id::bigint, c.value::numeric,
           ((c.read_on + time '12:00') AT TIME ZONE %(zone)s)::timestamptz,  -- noon, local
           c.read_on::date, %(source)s::varchar, c.reason::varchar,
           coalesce(c.status, %(accepted)s)::varchar, coalesce(c.findings, '[]'::jsonb),
           c.consumption::numeric, true, %(user)s::bigint, %(import)s::bigint,
           ''::varchar, ''::varchar, now()::timestamptz
    FROM {checked} c
    -- Sorting by register and date was measured: it does not pay for itself.
) TO STDOUT (FORMAT binary)
"""
_POST_COLUMNS = (
    "public_id, register_id, value, read_at, read_on, source, reason, status, findings, "
    "consumption, used_for_billing, entered_by_id, import_batch_id, photo, photo_sha256, "
    "created_at"
)
# Rows of the binary COPY spooled in memory before going to a temporary file.
_SPOOL_BYTES = 32 * 1024 * 1024


def _post_rows(imp: ReadingImport, committed_by: User) -> int:
    """Copy the checked rows into meters_reading; the number of rows posted.

    INSERT … SELECT would insert row by row; COPY writes whole pages at a
    time, so the rows go out of the checked table and back in by COPY, in
    PostgreSQL's binary format (nothing is parsed in Python).
    """
    params = {"zone": settings.TIME_ZONE, "source": ReadingSource.IMPORTED.value,
              "accepted": ReadingStatus.ACCEPTED.value, "user": committed_by.pk,
              "import": imp.pk}
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool, \
            connection.cursor() as cursor:
        with cursor.copy(_POST_SELECT.format(checked=checked_table(imp)), params) as out:
            for block in out:
                spool.write(block)
        spool.seek(0)
        with cursor.copy(f"COPY {Reading._meta.db_table} ({_POST_COLUMNS}) "
                         "FROM STDIN (FORMAT binary)") as into:
            while block := spool.read(1024 * 1024):
                into.write(block)
        return cursor.rowcount


def request_post(*, imp: ReadingImport, requested_by: User) -> ReadingImport:
    """Queue the posting of a checked file (the office page shows it under way)."""
    from meters.tasks import post_reading_import

    with transaction.atomic():
        moved = ReadingImport.objects.filter(pk=imp.pk, status=ImportStatus.VALIDATED).update(
            status=ImportStatus.POSTING)
        if not moved:
            raise ServiceError(_("Only a checked file without errors can be posted."))
        post_reading_import.delay_on_commit(imp.pk, requested_by.pk)  # type: ignore[attr-defined]
    imp.refresh_from_db()
    return imp


def commit_import(*, imp: ReadingImport, committed_by: User) -> ReadingImport:
    """Post every checked row of a file in one transaction; a rerun posts nothing twice."""
    with transaction.atomic():
        imp = ReadingImport.objects.select_for_update().get(pk=imp.pk)
        if imp.status == ImportStatus.COMMITTED:
            return imp
        if imp.status not in (ImportStatus.VALIDATED, ImportStatus.POSTING):
            raise ServiceError(_("Only a checked file without errors can be posted."))
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s)", [checked_table(imp)])
            if cursor.fetchone()[0] is None:
                # The checked rows live in an unlogged table, which a database crash empties.
                raise PostingFailed(_("The checked rows of this file are gone; upload it again."))
        try:
            with transaction.atomic():
                posted = _post_rows(imp, committed_by)
        except (IntegrityError, psycopg.errors.IntegrityError) as exc:  # COPY raises psycopg's
            raise PostingFailed(_("Readings for the same registers and days were posted since "
                                  "the file was checked; upload it again.")) from exc
        if posted != imp.row_count:
            raise PostingFailed(_("The checked rows of this file are gone; upload it again."))
        if imp.flagged_count:
            services.create_task(
                subject=_("Review %(count)d flagged readings imported from %(name)s")
                % {"count": imp.flagged_count, "name": imp.original_name},
                kind=TaskKind.READING_REVIEW, team=Role.METER_READING, source=imp,
            )
        imp.status = ImportStatus.COMMITTED
        imp.committed_at = timezone.now()
        imp.save(update_fields=["status", "committed_at"])
        services.record(action="meters.import_committed", actor=committed_by, obj=imp,
                        after={"rows": imp.row_count, "flagged": imp.flagged_count})
        _drop_tables(imp)
    return imp


def fail_posting(*, imp: ReadingImport, problem: str) -> None:
    """A file that cannot be posted any more: failed, with the reason (it may be uploaded again)."""
    ReadingImport.objects.filter(
        pk=imp.pk, status__in=[ImportStatus.VALIDATED, ImportStatus.POSTING]
    ).update(status=ImportStatus.FAILED, problem=problem[:300])
    _drop_tables(imp)


def discard_import(*, imp: ReadingImport, discarded_by: User) -> ReadingImport:
    """Drop a file that was not posted (it may then be uploaded again)."""
    with transaction.atomic():
        imp = ReadingImport.objects.select_for_update().get(pk=imp.pk)
        if imp.status in (ImportStatus.COMMITTED, ImportStatus.POSTING):
            raise ServiceError(_("This file is posted; it cannot be discarded."))
        if imp.status == ImportStatus.DISCARDED:
            return imp
        imp.status = ImportStatus.DISCARDED
        imp.save(update_fields=["status"])
        services.record(action="meters.import_discarded", actor=discarded_by, obj=imp)
        _drop_tables(imp)
    return imp


def _drop_tables(imp: ReadingImport) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {stage_table(imp)}, {checked_table(imp)}")
