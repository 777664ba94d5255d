"""Payment files: upload → check → post, like every import (ARCHITECTURE: imports are staged).

1. :func:`stage_file` stores and hashes the upload; the same content twice,
   renamed or not, is refused (also when ten arrive at once: a partial unique
   index decides). A Celery task checks it.
2. :func:`check_file` parses it (camt.053/054, MT940 or the collector's
   layout; control totals and every line checked with its line number),
   derives each line's matching keys (receivables.keys) and streams the lines
   into an unlogged staging table with ``COPY``. Nothing is posted yet.
3. :func:`request_post` queues :func:`post_file`, which matches and posts every
   new line in ONE transaction (receivables.matching): payments, allocations,
   ledger entries, invoice statuses. Lines whose transaction id was posted
   before (an overlapping file) are skipped and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.models import InvoiceSeries
from portal.imports import sha256_of
from portal.models import TaskKind, TaskPriority, User
from portal.roles import Role
from portal.services import ServiceError, create_task, record
from receivables import matching
from receivables.formats import detect_and_parse
from receivables.formats.collector import Layout
from receivables.formats.common import FormatError, LineErrors, ParsedFile, StatementLine
from receivables.keys import keys_for
from receivables.models import Collector, CollectorKind, ImportStatus, PaymentImport

log = logging.getLogger(__name__)

MAX_STORED_ERRORS = 500

STAGE_COLUMNS = (
    "line_no", "txn_id", "booking_date", "value_date", "amount", "fee", "currency",
    "payer_name", "payer_account", "reference", "text", "kind", "reverses", "office_code",
    "settlement_ref", "ref_key", "doc_key", "doc_from_text", "cust_digits",
)

_STAGE_TABLE_SQL = """
CREATE UNLOGGED TABLE {table} (
    line_no integer NOT NULL,
    txn_id text NOT NULL,
    booking_date date NOT NULL,
    value_date date,
    amount numeric(14, 2) NOT NULL,
    fee numeric(14, 2) NOT NULL,
    currency text NOT NULL,
    payer_name text NOT NULL,
    payer_account text NOT NULL,
    reference text NOT NULL,
    text text NOT NULL,
    kind text NOT NULL,
    reverses text NOT NULL,
    office_code text NOT NULL,
    settlement_ref text NOT NULL,
    ref_key text NOT NULL,
    doc_key text NOT NULL,
    doc_from_text boolean NOT NULL,
    cust_digits numeric
)
"""


class DuplicateFile(ServiceError):
    """The same content was uploaded before (and not discarded)."""


def stage_table(imp: PaymentImport) -> str:
    return f"receivables_import_stage_{int(imp.pk)}"


def add_working_days(day: date, count: int) -> date:
    """``day`` + ``count`` working days (Monday to Friday)."""
    while count > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day


# --- Upload ----------------------------------------------------------------------


def stage_file(*, collector: Collector, upload: UploadedFile, uploaded_by: User) -> PaymentImport:
    """Store and hash the upload and queue its check; refuse content already pending or posted."""
    from receivables.payment_tasks import check_payment_file

    if upload.size and upload.size > settings.PAYMENT_IMPORT_MAX_BYTES:
        raise ServiceError(
            _("The file is too large (at most %(mb)d MB).")
            % {"mb": settings.PAYMENT_IMPORT_MAX_BYTES // 1024**2}
        )
    if not upload.size:
        raise ServiceError(_("The file is empty."))
    digest = sha256_of(upload.chunks())
    _refuse_duplicate(digest)
    name = (upload.name or "payments")[-255:]
    imp = PaymentImport(
        collector=collector, file_name=name, sha256=digest, size=upload.size or 0,
        uploaded_by=uploaded_by,
    )
    upload.seek(0)
    imp.file.save(name, upload, save=False)
    try:
        with transaction.atomic():
            imp.save()
            record(action="receivables.file_uploaded", actor=uploaded_by, obj=imp,
                   after={"name": name, "sha256": digest, "collector": collector.code})
            check_payment_file.delay_on_commit(imp.pk)  # type: ignore[attr-defined]
    except IntegrityError as exc:  # the same file uploaded at the same moment
        imp.file.delete(save=False)
        raise DuplicateFile(_("This file has already been uploaded.")) from exc
    return imp


def _refuse_duplicate(digest: str) -> None:
    earlier = (
        PaymentImport.objects.filter(sha256=digest)
        .exclude(status__in=[ImportStatus.FAILED, ImportStatus.DISCARDED])
        .first()
    )
    if earlier is None:
        return
    when = timezone.localtime(earlier.created_at).strftime("%Y-%m-%d %H:%M")
    if earlier.status == ImportStatus.POSTED:
        message = _("This file was already posted (uploaded as “%(name)s” on %(when)s).")
    else:
        message = _(
            "This file is already waiting to be posted (uploaded as “%(name)s” on %(when)s)."
        )
    raise DuplicateFile(message % {"name": earlier.file_name, "when": when})


# --- Checking --------------------------------------------------------------------


def _parse(imp: PaymentImport) -> ParsedFile:
    collector = imp.collector
    layout = Layout.from_dict(collector.layout) if collector.layout else None
    with imp.file.open("rb") as fh:
        data = fh.read(settings.PAYMENT_IMPORT_MAX_BYTES + 1)
    if len(data) > settings.PAYMENT_IMPORT_MAX_BYTES:
        raise FormatError(_("The file is too large."))
    return detect_and_parse(data, layout=layout)


def _check_fits_collector(imp: PaymentImport, parsed: ParsedFile) -> None:
    collector = imp.collector
    if collector.kind == CollectorKind.BANK and parsed.format.startswith("collector"):
        raise FormatError(_("%(name)s is a bank account: upload its camt or MT940 statements.")
                          % {"name": collector.name})
    if parsed.account and collector.account and parsed.account != collector.account.replace(
        " ", ""
    ).upper():
        raise FormatError(
            _("The statement is for account %(file)s, not for %(name)s (%(ours)s).")
            % {"file": parsed.account, "name": collector.name, "ours": collector.account}
        )
    wrong = [
        (line.line_no, _("the amount is in %(found)s, the collector pays in %(expected)s")
         % {"found": line.currency, "expected": collector.currency})
        for line in parsed.lines if line.currency != collector.currency
    ]
    if wrong:
        raise LineErrors(wrong)
    if not parsed.lines:
        raise FormatError(_("The file has no payments in it."))


def _settlement_accounts() -> frozenset[str]:
    """Accounts collectors settle from: a bank credit from one is a settlement, not a payment."""
    return frozenset(
        a.replace(" ", "").upper()
        for a in Collector.objects.exclude(kind=CollectorKind.BANK)
        .exclude(account="").values_list("account", flat=True)
    )


def _rows(parsed: ParsedFile) -> Iterator[tuple[object, ...]]:
    """The staging rows of the file. Reads the database first, never while it is COPYing."""
    prefixes = tuple(InvoiceSeries.objects.values_list("prefix", flat=True).distinct())
    paddings = list(InvoiceSeries.objects.values_list("padding", flat=True))
    padding = max(paddings) if paddings else 6
    settlement_accounts = _settlement_accounts()

    def rows() -> Iterator[tuple[object, ...]]:
        for line in parsed.lines:
            kind = line.kind
            if kind == "payment" and line.payer_account in settlement_accounts:
                kind = "settlement"
            keys = keys_for(line, prefixes=prefixes, padding=padding)
            yield _row(line, kind, keys.reference, keys.doc_key, keys.doc_from_text,
                       keys.customer_digits)

    return rows()


def _row(line: StatementLine, kind: str, *keys: object) -> tuple[object, ...]:
    return (
        line.line_no, line.txn_id[:120], line.booking_date, line.value_date, line.amount,
        line.fee, line.currency, line.payer_name[:140], line.payer_account[:40],
        line.reference[:60], line.text[:500], kind, line.reverses[:120], line.office_code[:20],
        line.settlement_ref[:80], *keys,
    )


def check_file(imp: PaymentImport) -> PaymentImport:
    """Parse and stage the file; on any problem the file fails with the reason and its lines."""
    claimed = PaymentImport.objects.filter(pk=imp.pk, status=ImportStatus.UPLOADED).update(
        problem=""
    )
    if not claimed:
        return imp
    try:
        parsed = _parse(imp)
        _check_fits_collector(imp, parsed)
    except LineErrors as error:
        return _fail(imp, error.message, [list(e) for e in error.errors[:MAX_STORED_ERRORS]])
    except FormatError as error:
        lines = [[error.line_no, error.message]] if error.line_no else []
        return _fail(imp, error.message, lines)
    rows = _rows(parsed)
    with transaction.atomic():
        table = stage_table(imp)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute(_STAGE_TABLE_SQL.format(table=table))
            with cursor.copy(f"COPY {table} ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(f"ANALYZE {table}")  # the matching plans need its size
            cursor.execute(
                f"SELECT count(*) FROM {table} s JOIN receivables_payment p "  # noqa: S608
                "ON p.source = %s AND p.txn_id = s.txn_id",
                [imp.collector.code],
            )
            (already,) = cursor.fetchone()
        business_date = parsed.business_date or max(line.booking_date for line in parsed.lines)
        deadline = add_working_days(business_date, imp.collector.report_days)
        received = timezone.localdate(imp.created_at)
        PaymentImport.objects.filter(pk=imp.pk).update(
            status=ImportStatus.CHECKED,
            format=parsed.format,
            statement_id=parsed.statement_id[:80],
            business_date=business_date,
            deadline=deadline,
            late=received > deadline,
            line_count=len(parsed.lines),
            total=parsed.total,
            fees=sum((line.fee for line in parsed.lines), Decimal("0")),
            duplicate_count=already,
            errors=[],
        )
    imp.refresh_from_db()
    if imp.late:
        _late_file_task(imp)
    return imp


def _fail(imp: PaymentImport, problem: str, errors: list[list[object]]) -> PaymentImport:
    PaymentImport.objects.filter(pk=imp.pk).update(
        status=ImportStatus.FAILED, problem=problem[:5000], errors=errors
    )
    imp.refresh_from_db()
    return imp


def _late_file_task(imp: PaymentImport) -> None:
    subject = _("%(collector)s: the file for %(day)s arrived after its deadline %(deadline)s") % {
        "collector": imp.collector.name, "day": imp.business_date, "deadline": imp.deadline,
    }
    create_task(subject=subject, kind=TaskKind.COLLECTIONS, team=Role.COLLECTIONS,
                priority=TaskPriority.NORMAL, source=imp)


# --- Posting ---------------------------------------------------------------------


def request_post(*, imp: PaymentImport, by: User) -> None:
    """Queue the posting of a checked file (once: a second request does nothing)."""
    from receivables.payment_tasks import post_payment_file

    with transaction.atomic():
        moved = PaymentImport.objects.filter(pk=imp.pk, status=ImportStatus.CHECKED).update(
            status=ImportStatus.POSTING
        )
        if not moved:
            raise ServiceError(_("Only a checked file can be posted."))
        record(action="receivables.file_post_requested", actor=by, obj=imp)
        post_payment_file.delay_on_commit(imp.pk, by.pk)  # type: ignore[attr-defined]


def post_file(imp: PaymentImport, *, by: User | None = None) -> PaymentImport:
    """Match and post every new line of the file, all in one transaction."""
    try:
        with transaction.atomic():
            locked = PaymentImport.objects.select_for_update().select_related("collector").get(
                pk=imp.pk
            )
            if locked.status != ImportStatus.POSTING:
                return locked
            if not _stage_exists(locked):
                raise matching.PostingFailed(
                    _("The checked lines are gone (the database restarted); upload the file "
                      "again.")
                )
            outcome = matching.post_staged(
                table=stage_table(locked), imp=locked, by=by,
            )
            locked.status = ImportStatus.POSTED
            locked.posted_at = timezone.now()
            locked.matched_count = outcome.matched
            locked.unmatched_count = outcome.unmatched
            locked.duplicate_count = outcome.duplicates
            locked.save(update_fields=[
                "status", "posted_at", "matched_count", "unmatched_count", "duplicate_count",
            ])
            record(action="receivables.file_posted", actor=by, obj=locked,
                   after={"payments": outcome.posted, "matched": outcome.matched,
                          "unmatched": outcome.unmatched, "already_posted": outcome.duplicates})
    except matching.PostingFailed as failure:
        PaymentImport.objects.filter(pk=imp.pk, status=ImportStatus.POSTING).update(
            status=ImportStatus.FAILED, problem=str(failure)
        )
    else:
        drop_stage(imp)
    imp.refresh_from_db()
    return imp


def _stage_exists(imp: PaymentImport) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [stage_table(imp)])
        return bool(cursor.fetchone()[0])


def drop_stage(imp: PaymentImport) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {stage_table(imp)}")


def discard(*, imp: PaymentImport, by: User) -> None:
    with transaction.atomic():
        moved = PaymentImport.objects.filter(
            pk=imp.pk, status__in=[ImportStatus.UPLOADED, ImportStatus.CHECKED, ImportStatus.FAILED]
        ).update(status=ImportStatus.DISCARDED)
        if not moved:
            raise ServiceError(_("A file that is posting or posted cannot be discarded."))
        record(action="receivables.file_discarded", actor=by, obj=imp)
    drop_stage(imp)


# --- Deadlines ---------------------------------------------------------------------


def check_missing_files(*, today: date | None = None, days_back: int = 14) -> int:
    """A task for each working day a collector that files daily has sent nothing by its deadline."""
    today = today or timezone.localdate()
    created = 0
    for collector in Collector.objects.filter(active=True, expects_daily_files=True):
        received = set(
            PaymentImport.objects.filter(
                collector=collector, business_date__gte=today - timedelta(days=days_back)
            ).exclude(status=ImportStatus.DISCARDED).values_list("business_date", flat=True)
        )
        day = today - timedelta(days=days_back)
        while day < today:
            if day.weekday() < 5 and day not in received and day >= collector_start(collector):
                deadline = add_working_days(day, collector.report_days)
                if deadline < today and _missing_file_task(collector, day, deadline):
                    created += 1
            day += timedelta(days=1)
    return created


def collector_start(collector: Collector) -> date:
    """Days before a collector was set up are not missing."""
    return timezone.localdate(collector.created_at)


def _missing_file_task(collector: Collector, day: date, deadline: date) -> bool:
    from portal.models import Task

    subject = _("%(collector)s: no file for %(day)s (due by %(deadline)s)") % {
        "collector": collector.name, "day": day.isoformat(), "deadline": deadline.isoformat(),
    }
    if Task.objects.filter(subject=subject[:200]).exists():
        return False
    create_task(subject=subject, kind=TaskKind.COLLECTIONS, team=Role.COLLECTIONS,
                priority=TaskPriority.HIGH, source=collector)
    return True
