"""Dunning: the nightly run, sending, approvals, outcomes, cancellation on payment.

The run works set-wise in SQL: one statement selects the items that reached
a level not yet noticed, one inserts the notices (a customer's items of one
level and currency make one notice), one inserts their items, and the
e-mails and SMS are written into the outbox with one COPY. Correctness
comes from the constraints, not from the advisory lock: an item gets a
level's notice once because of ``UNIQUE(invoice, level)`` and
``INSERT … ON CONFLICT DO NOTHING``; a notice that lost every item to a
concurrent run is removed before anything is sent.

Effectively once: a notice moves from queued to sent only through its outbox
message's outcome (:func:`sync_outcomes`); a message whose outcome is
unknown puts the notice on the reconciliation list, where staff decide.
Fees, interest and compensation enter the ledger when the notice is sent.

The outbox messages are written by receivables.dunning_outbox; letters
(rendering, S10 numbers, batches) are in receivables.dunning_letters.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal.models import TaskKind, TaskPriority, User
from portal.roles import Role
from portal.services import ServiceError, close_tasks_of, create_task, record
from receivables import dunning_outbox as outbox
from receivables.dunning_models import (
    DunningChannel,
    DunningNotice,
    DunningRun,
    NoticeStatus,
)

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key of the run ("dunn"): two runs don't do the work twice.
RUN_LOCK_KEY = 0x64756E6E
# Notices whose outcome is still open: a payment may cancel them.
CANCELLABLE = (NoticeStatus.PENDING_APPROVAL, NoticeStatus.APPROVED, NoticeStatus.QUEUED)
STALE_SENDING = timedelta(hours=1)
# Letters per rendering task.
LETTER_CHUNK = 100


# --- the run ---------------------------------------------------------------------------

# The items to notice today, one row per item, with the level it reached.
# %(day)s is the run's date. Items are open invoices (what allocations left
# open), of customers neither excluded nor paused, not disputed; the level is
# the highest one reached (due date + its days <= day) of the customer's
# policy, and only if the item has no notice of that level or a higher one.
# The policy's minimum applies to the customer's dunned total, the level's to
# the notice's total. Interest (companies only, where the level says so) is
# simple interest from the day after the due date (or after the last interest
# charged on the item) to the run's day, each day at the rate in force that
# day: round(Σ rate × days × open / 36500, 2).
CANDIDATES_SQL = """
CREATE TEMP TABLE dunning_candidates ON COMMIT DROP AS
WITH open_items AS (
    SELECT i.id AS invoice_id, i.customer_id, i.currency, i.due_date,
           i.amount_due - COALESCE(paid.amount, 0) AS open_amount,
           COALESCE(cd.policy_id, dp.id) AS policy_id,
           c.kind = 'company' AS is_company, c.mobile <> '' AS has_mobile,
           c.email <> '' AS has_email, c.language
    FROM billing_invoice i
    JOIN portal_customer c ON c.id = i.customer_id
    LEFT JOIN receivables_customerdunning cd ON cd.customer_id = i.customer_id
    LEFT JOIN receivables_dunningpolicy dp ON dp.is_default
    LEFT JOIN LATERAL (
        SELECT SUM(a.amount) AS amount FROM receivables_allocation a WHERE a.invoice_id = i.id
    ) paid ON true
    WHERE i.status IN ('issued', 'partly_paid')
      AND i.kind <> 'credit_note'
      AND i.amount_due > 0
      AND i.due_date <= %(day)s - (
          SELECT COALESCE(MIN(days_after_due), 0) FROM receivables_dunninglevel
      )
      AND NOT COALESCE(cd.excluded, false)
      AND (cd.paused_until IS NULL OR cd.paused_until < %(day)s)
      AND NOT EXISTS (
          SELECT 1 FROM receivables_dunningpause p
          WHERE p.customer_id = i.customer_id AND p.lifted_at IS NULL
            AND (p.until IS NULL OR p.until >= %(day)s)
            AND (p.invoice_id IS NULL OR p.invoice_id = i.id)
      )
),
reached AS (
    SELECT DISTINCT ON (o.invoice_id)
           o.*, l.id AS level_id, l.sequence, l.channel AS level_channel, l.fee,
           l.needs_approval, l.charge_interest, l.interest_kind,
           l.compensation AS level_compensation, l.minimum_amount AS level_minimum,
           p.minimum_amount AS policy_minimum
    FROM open_items o
    JOIN receivables_dunninglevel l
      ON l.policy_id = o.policy_id AND o.due_date + l.days_after_due <= %(day)s
    JOIN receivables_dunningpolicy p ON p.id = o.policy_id
    WHERE o.open_amount > 0
    ORDER BY o.invoice_id, l.sequence DESC
),
fresh AS (
    SELECT r.* FROM (
        SELECT r.*, SUM(r.open_amount) OVER (PARTITION BY r.customer_id, r.currency) AS dunned
        FROM reached r
    ) r
    WHERE r.dunned >= r.policy_minimum
      AND NOT EXISTS (
          SELECT 1 FROM receivables_dunningnoticeitem ni
          WHERE ni.invoice_id = r.invoice_id AND ni.level_sequence >= r.sequence
      )
),
grouped AS (
    SELECT f.*,
           SUM(f.open_amount) OVER (PARTITION BY f.customer_id, f.level_id, f.currency)
               AS notice_open,
           CASE
               WHEN f.level_channel = 'sms' AND f.has_mobile THEN 'sms'
               WHEN f.level_channel IN ('sms', 'email') AND f.has_email THEN 'email'
               WHEN f.level_channel IN ('sms', 'email') THEN 'letter'
               ELSE f.level_channel
           END AS channel,
           CASE WHEN f.charge_interest AND f.is_company THEN GREATEST(f.due_date, COALESCE((
               SELECT MAX(ni.interest_to) FROM receivables_dunningnoticeitem ni
               JOIN receivables_dunningnotice n ON n.id = ni.notice_id
               WHERE ni.invoice_id = f.invoice_id AND n.status NOT IN ('cancelled', 'rejected')
           ), f.due_date)) + 1 END AS interest_from
    FROM fresh f
)
SELECT g.invoice_id, g.customer_id, g.currency, g.open_amount, g.level_id, g.sequence,
       g.fee, g.channel, g.language,
       CASE
           WHEN g.needs_approval THEN 'pending_approval'
           WHEN g.channel IN ('sms', 'email') THEN 'queued'
           ELSE 'approved'
       END AS status,
       %(day)s - g.due_date AS days_overdue,
       CASE WHEN g.interest_from <= %(day)s THEN ROUND(COALESCE((
           SELECT SUM(r.rate * (LEAST(%(day)s, COALESCE(r.valid_to, %(day)s))
                                - GREATEST(g.interest_from, r.valid_from) + 1))
           FROM receivables_interestrate r
           WHERE r.kind = g.interest_kind AND r.valid_from <= %(day)s
             AND (r.valid_to IS NULL OR r.valid_to >= g.interest_from)
       ), 0) * g.open_amount / 36500, 2) ELSE 0 END AS interest,
       CASE WHEN g.interest_from <= %(day)s THEN g.interest_from END AS interest_from,
       CASE WHEN g.interest_from <= %(day)s THEN %(day)s END AS interest_to,
       CASE WHEN g.level_compensation > 0 AND g.is_company AND NOT EXISTS (
           SELECT 1 FROM receivables_dunningnoticeitem ni
           JOIN receivables_dunningnotice n ON n.id = ni.notice_id
           WHERE ni.invoice_id = g.invoice_id AND ni.compensation > 0
             AND n.status NOT IN ('cancelled', 'rejected')
       ) THEN g.level_compensation ELSE 0 END AS compensation
FROM grouped g
WHERE g.notice_open >= g.level_minimum
"""

# One notice per customer, level and currency of the run (the GROUP BY makes
# them unique within the run; another run has another id, so no ON CONFLICT:
# its speculative insertion would cost a third of the run). Queued notices get
# their outbox message's id now (the foreign key is checked at commit, when
# the messages exist).
NOTICES_SQL = """
INSERT INTO receivables_dunningnotice (
    public_id, run_id, customer_id, level_id, status, channel, language, currency,
    open_total, fee, interest, compensation, item_count, s10_number, outbox_message_id,
    letter_pdf, letter_sha256, letter_batch_id, created_at, sent_at, decided_by_id,
    decided_at, reason
)
SELECT gen_random_uuid(), %(run)s, g.customer_id, g.level_id, g.status, g.channel,
       g.language, g.currency, SUM(g.open_amount), MAX(g.fee), SUM(g.interest),
       SUM(g.compensation), COUNT(*), '',
       CASE WHEN g.status = 'queued'
            THEN nextval(pg_get_serial_sequence('notifications_outboxmessage', 'id')) END,
       '', '', NULL, now(), NULL, NULL, NULL, ''
FROM dunning_candidates g
GROUP BY g.customer_id, g.level_id, g.currency, g.status, g.channel, g.language
"""

# In one order, so that two runs racing for the same items wait on each other
# instead of deadlocking; the loser's rows are dropped by the constraint.
ITEMS_SQL = """
INSERT INTO receivables_dunningnoticeitem (
    notice_id, invoice_id, level_id, level_sequence, open_amount, days_overdue, interest,
    interest_from, interest_to, compensation
)
SELECT n.id, g.invoice_id, g.level_id, g.sequence, g.open_amount, g.days_overdue,
       g.interest, g.interest_from, g.interest_to, g.compensation
FROM dunning_candidates g
JOIN receivables_dunningnotice n
  ON n.run_id = %(run)s AND n.customer_id = g.customer_id AND n.level_id = g.level_id
 AND n.currency = g.currency
ORDER BY g.invoice_id, g.level_id
ON CONFLICT (invoice_id, level_id) DO NOTHING
"""

# Only when a concurrent run took some items: notices left empty go, totals follow the items.
DROP_EMPTY_SQL = """
DELETE FROM receivables_dunningnotice n
WHERE n.run_id = %(run)s
  AND NOT EXISTS (SELECT 1 FROM receivables_dunningnoticeitem i WHERE i.notice_id = n.id)
"""
RETOTAL_SQL = """
UPDATE receivables_dunningnotice n
SET open_total = s.open_total, interest = s.interest, compensation = s.compensation,
    item_count = s.item_count
FROM (
    SELECT i.notice_id, SUM(i.open_amount) AS open_total, SUM(i.interest) AS interest,
           SUM(i.compensation) AS compensation, COUNT(*) AS item_count
    FROM receivables_dunningnoticeitem i
    JOIN receivables_dunningnotice nn ON nn.id = i.notice_id
    WHERE nn.run_id = %(run)s
    GROUP BY i.notice_id
) s
WHERE n.id = s.notice_id
"""

COUNTS_SQL = """
SELECT status, channel, COUNT(*), COALESCE(SUM(item_count), 0)
FROM receivables_dunningnotice WHERE run_id = %(run)s GROUP BY status, channel
"""


def run_dunning(*, day: date | None = None, lock: bool = True) -> DunningRun:
    """Notice every item that reached a dunning level by ``day`` and has no notice of it yet.

    Automatic e-mail and SMS levels are queued in the outbox in the same
    transaction; levels that need approval wait in the approval queue (one
    staff task per run); letters are rendered and batched after commit.
    A rerun, a duplicated beat or a concurrent run adds nothing.
    """
    day = day or timezone.localdate()
    watch = _Stopwatch()
    with transaction.atomic():
        with connection.cursor() as cursor:
            if lock:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RUN_LOCK_KEY])
            watch.lap("lock")
            run = DunningRun.objects.create(run_date=day, started_at=timezone.now())
            params: dict[str, Any] = {"day": day, "run": run.pk}
            cursor.execute("DROP TABLE IF EXISTS dunning_candidates")
            cursor.execute(CANDIDATES_SQL, params)
            candidates = cursor.rowcount
            watch.lap("select")
            cursor.execute(NOTICES_SQL, params)
            watch.lap("notices")
            cursor.execute(ITEMS_SQL, params)
            if cursor.rowcount != candidates:
                # A concurrent run noticed some of these items first.
                cursor.execute(DROP_EMPTY_SQL, params)
                cursor.execute(RETOTAL_SQL, params)
            watch.lap("items")
            cursor.execute(COUNTS_SQL, params)
            counts = cursor.fetchall()
            cursor.execute("DROP TABLE dunning_candidates")
        by_status: dict[str, int] = defaultdict(int)
        letters = items = 0
        for status, channel, count, item_count in counts:
            by_status[status] += count
            items += item_count
            if channel in DunningChannel.letters():
                letters += count
        message_ids = outbox.write_messages(run_id=run.pk)
        watch.lap("messages")
        run.item_count = items
        run.notice_count = sum(by_status.values())
        run.queued_count = by_status[NoticeStatus.QUEUED]
        run.approval_count = by_status[NoticeStatus.PENDING_APPROVAL]
        run.letter_count = letters
        run.finished_at = timezone.now()
        run.save(update_fields=[
            "item_count", "notice_count", "queued_count", "approval_count", "letter_count",
            "finished_at",
        ])
        if run.approval_count:
            create_task(
                subject=_("%(count)d dunning notices of %(day)s wait for approval")
                % {"count": run.approval_count, "day": day.isoformat()},
                kind=TaskKind.COLLECTIONS,
                team=Role.COLLECTIONS,
                priority=TaskPriority.NORMAL,
                source=run,
            )
        outbox.deliver_after_commit(message_ids)
        if by_status[NoticeStatus.APPROVED]:
            _prepare_letters_after_commit(run_id=run.pk)
    watch.lap("commit")
    log.info("dunning run %s: %d notices, %d items, %d queued, %d for approval; %s",
             day, run.notice_count, run.item_count, run.queued_count, run.approval_count, watch)
    return run


class _Stopwatch:
    """Seconds per phase, for the run's log line."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.2f}s" for name, seconds in self.laps.items())


# --- letters after commit -----------------------------------------------------------


def _prepare_letters_after_commit(*, run_id: int | None = None,
                                  notice_ids: Sequence[int] = ()) -> None:
    from receivables.dunning_tasks import prepare_dunning_letters

    ids = list(notice_ids)
    if run_id is not None:
        ids = list(
            DunningNotice.objects.filter(
                run_id=run_id, status=NoticeStatus.APPROVED,
                channel__in=DunningChannel.letters(),
            ).values_list("pk", flat=True)
        )
    def publish() -> None:
        for start in range(0, len(ids), LETTER_CHUNK):
            prepare_dunning_letters.delay(ids[start : start + LETTER_CHUNK])

    if ids:
        transaction.on_commit(publish)


# --- outcomes and the ledger ------------------------------------------------------------

# Queued notices follow their message: sent → sent; failed, bounced or stuck in
# sending → unknown (the reconciliation list). Never back to queued by itself.
SYNC_SQL = """
UPDATE receivables_dunningnotice n
SET status = CASE WHEN m.status = 'sent' THEN 'sent' ELSE 'unknown' END,
    sent_at = CASE WHEN m.status = 'sent' THEN COALESCE(m.sent_at, now()) END,
    reason = CASE
        WHEN m.status = 'sent' THEN n.reason
        WHEN m.status = 'sending' THEN %(stuck)s
        ELSE LEFT(COALESCE(NULLIF(m.error, ''), m.status), 500)
    END
FROM notifications_outboxmessage m
WHERE n.status = 'queued' AND m.id = n.outbox_message_id
  AND (%(all)s OR m.id = ANY(%(ids)s))
  AND (m.status IN ('sent', 'failed', 'bounced')
       OR (m.status = 'sending' AND m.claimed_at < %(stale)s))
RETURNING n.id, n.status
"""

# Fee, interest and compensation of sent notices, once each (the cause is unique).
LEDGER_SQL = """
INSERT INTO receivables_ledgerentry (
    customer_id, kind, entry_date, amount, currency, invoice_id, payment_id, description,
    cause, created_at
)
SELECT n.customer_id, x.kind, (n.sent_at AT TIME ZONE %(tz)s)::date, x.amount, n.currency,
       NULL, NULL, LEFT(CASE WHEN x.what = 'compensation' THEN %(compensation)s
                             ELSE l.name END, 200),
       'dunning.notice:' || n.id || ':' || x.what, now()
FROM receivables_dunningnotice n
JOIN receivables_dunninglevel l ON l.id = n.level_id
CROSS JOIN LATERAL (VALUES ('fee', 'fee', n.fee), ('interest', 'interest', n.interest),
                           ('fee', 'compensation', n.compensation)) AS x(kind, what, amount)
WHERE n.id = ANY(%(ids)s) AND n.status = 'sent' AND x.amount > 0
ORDER BY n.id, x.what
ON CONFLICT DO NOTHING
"""


def post_charges(notice_ids: Sequence[int]) -> None:
    """Enter the charges of sent notices in the customers' ledgers (once, whatever replays)."""
    if not notice_ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(LEDGER_SQL, {
            "ids": list(notice_ids), "tz": settings.TIME_ZONE,
            "compensation": _("Compensation for recovery costs"),
        })


def sync_outcomes(*, message_ids: Sequence[int] | None = None) -> int:
    """Move queued notices on to sent or unknown after their messages (all, or of these
    messages); returns how many moved."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(SYNC_SQL, {
            "all": message_ids is None, "ids": list(message_ids or ()),
            "stale": timezone.now() - STALE_SENDING,
            "stuck": "Outcome unknown: the sender stopped while sending.",
        })
        moved = cursor.fetchall()
        post_charges([notice_id for notice_id, status in moved if status == NoticeStatus.SENT])
    return len(moved)


# --- cancellation when money arrives -----------------------------------------------------

# Notices not sent yet with an item among these invoices, locked in one order.
AFFECTED_SQL = """
SELECT n.id FROM receivables_dunningnotice n
WHERE n.status IN ('pending_approval', 'approved', 'queued')
  AND EXISTS (
      SELECT 1 FROM receivables_dunningnoticeitem ni
      WHERE ni.notice_id = n.id AND ni.invoice_id = ANY(%(ids)s)
  )
ORDER BY n.id
FOR UPDATE OF n
"""
# What is still open on the items of each notice.
REMAINING_SQL = """
SELECT n.id, n.status, n.outbox_message_id, l.minimum_amount,
       COALESCE(SUM(CASE WHEN i.status IN ('issued', 'partly_paid')
                         THEN i.amount_due - COALESCE(p.amount, 0) ELSE 0 END), 0)
FROM receivables_dunningnotice n
JOIN receivables_dunninglevel l ON l.id = n.level_id
JOIN receivables_dunningnoticeitem ni ON ni.notice_id = n.id
JOIN billing_invoice i ON i.id = ni.invoice_id
LEFT JOIN LATERAL (
    SELECT SUM(a.amount) AS amount FROM receivables_allocation a WHERE a.invoice_id = i.id
) p ON true
WHERE n.id = ANY(%(ids)s)
GROUP BY n.id, n.status, n.outbox_message_id, l.minimum_amount
"""

# The same conditional UPDATE as the dispatcher's claim, the other way: one of them wins.
WITHDRAW_SQL = """
UPDATE notifications_outboxmessage
SET status = 'canceled', error = 'Withdrawn: paid before it was sent.'
WHERE id = ANY(%(ids)s) AND status = 'queued'
RETURNING id
"""


def on_allocations_changed(sender: Any, invoice_ids: Iterable[int] = (), **kwargs: Any) -> None:
    cancel_paid_notices(invoice_ids=list(invoice_ids))


def cancel_paid_notices(*, invoice_ids: Sequence[int]) -> int:
    """Cancel notices not sent yet whose items are paid (or left under the level's minimum).

    Runs inside the transaction that allocated the money. A queued notice is
    cancelled only if its message is still queued: the message is moved to
    cancelled by a conditional UPDATE, which the dispatcher's claim of it
    either precedes (then the notice goes out) or follows (then it never does).
    """
    if not invoice_ids:
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        # An array, not IN (…): a posted file may settle more invoices than a query has
        # parameters.
        cursor.execute(AFFECTED_SQL, {"ids": list(invoice_ids)})
        candidate_ids = [row[0] for row in cursor.fetchall()]
        if not candidate_ids:
            return 0
        cursor.execute(REMAINING_SQL, {"ids": candidate_ids})
        rows = cursor.fetchall()
        settled = [row for row in rows if row[4] <= 0 or row[4] < row[3]]
        if not settled:
            return 0
        # Messages not claimed yet are withdrawn; a claimed one is on its way.
        message_ids = [row[2] for row in settled if row[1] == NoticeStatus.QUEUED and row[2]]
        cursor.execute(WITHDRAW_SQL, {"ids": message_ids})
        withdrawn = {row[0] for row in cursor.fetchall()}
        cancelled = [
            row[0] for row in settled
            if row[1] != NoticeStatus.QUEUED or row[2] in withdrawn
        ]
        DunningNotice.objects.filter(pk__in=cancelled, status__in=CANCELLABLE).update(
            status=NoticeStatus.CANCELLED, decided_at=timezone.now(),
            reason=_("Paid before it was sent."),
        )
        _close_finished_approval_tasks(cancelled)
    return len(cancelled)


# --- approval queue ------------------------------------------------------------------------


def _close_finished_approval_tasks(notice_ids: Sequence[int]) -> None:
    """Close the approval task of each run that has no notice waiting any more."""
    runs = DunningRun.objects.filter(notices__pk__in=notice_ids).distinct()
    for run in runs.exclude(notices__status=NoticeStatus.PENDING_APPROVAL):
        close_tasks_of(run)


@transaction.atomic
def decide_notices(
    *, notice_ids: Sequence[uuid.UUID], approve: bool, by: User, reason: str = "",
    request: Any = None,
) -> int:
    """Approve or reject notices waiting for approval, in bulk; returns how many were decided.

    Notices decided meanwhile (by a colleague, or cancelled by a payment) are
    left alone. Approved e-mails and SMS are queued at once; approved letters
    are rendered after commit and wait for the next letter batch.
    """
    reason = reason.strip()
    if not approve and not reason:
        raise ServiceError(_("Say why the notices are rejected."))
    notices = list(
        DunningNotice.objects.select_for_update(of=("self",))
        .filter(public_id__in=list(notice_ids), status=NoticeStatus.PENDING_APPROVAL)
        .select_related("customer", "level").order_by("pk")
    )
    if not notices:
        return 0
    now = timezone.now()
    status = NoticeStatus.APPROVED if approve else NoticeStatus.REJECTED
    for notice in notices:
        notice.status, notice.decided_by, notice.decided_at = status, by, now
        notice.reason = reason
    DunningNotice.objects.bulk_update(notices, ["status", "decided_by", "decided_at", "reason"])
    action = "dunning.notice.approved" if approve else "dunning.notice.rejected"
    for notice in notices:
        record(
            action=action, actor=by, customer=notice.customer, obj=notice,
            before={"status": NoticeStatus.PENDING_APPROVAL}, after={"status": status},
            note=reason, request=request,
        )
    ids = [notice.pk for notice in notices]
    if approve:
        outbox.queue(ids, from_status=NoticeStatus.APPROVED)
        _prepare_letters_after_commit(
            notice_ids=[notice.pk for notice in notices if notice.is_letter]
        )
    _close_finished_approval_tasks(ids)
    return len(notices)


# --- reconciliation list -------------------------------------------------------------------


@transaction.atomic
def mark_sent(*, notice_ids: Sequence[uuid.UUID], by: User, note: str = "",
              request: Any = None) -> int:
    """Staff confirm that notices with an unknown outcome did reach the customer."""
    notices = list(
        DunningNotice.objects.select_for_update(of=("self",))
        .filter(public_id__in=list(notice_ids), status=NoticeStatus.UNKNOWN)
        .select_related("customer").order_by("pk")
    )
    now = timezone.now()
    for notice in notices:
        notice.status, notice.sent_at = NoticeStatus.SENT, now
        notice.decided_by, notice.decided_at = by, now
        notice.reason = note.strip() or notice.reason
    DunningNotice.objects.bulk_update(
        notices, ["status", "sent_at", "decided_by", "decided_at", "reason"]
    )
    for notice in notices:
        record(action="dunning.notice.marked_sent", actor=by, customer=notice.customer,
               obj=notice, before={"status": NoticeStatus.UNKNOWN},
               after={"status": NoticeStatus.SENT}, note=note, request=request)
    post_charges([notice.pk for notice in notices])
    return len(notices)


@transaction.atomic
def send_again(*, notice_ids: Sequence[uuid.UUID], by: User, note: str = "",
               request: Any = None) -> int:
    """Staff deliberately send notices with an unknown outcome once more (a new message)."""
    notices = list(
        DunningNotice.objects.select_for_update(of=("self",))
        .filter(public_id__in=list(notice_ids), status=NoticeStatus.UNKNOWN,
                channel__in=[DunningChannel.EMAIL, DunningChannel.SMS])
        .select_related("customer").order_by("pk")
    )
    if not notices:
        return 0
    now = timezone.now()
    DunningNotice.objects.filter(pk__in=[n.pk for n in notices]).update(
        decided_by=by, decided_at=now, reason=note.strip()
    )
    queued = outbox.queue([notice.pk for notice in notices], from_status=NoticeStatus.UNKNOWN)
    for notice in notices:
        if notice.pk in queued:
            record(action="dunning.notice.sent_again", actor=by, customer=notice.customer,
                   obj=notice, before={"status": NoticeStatus.UNKNOWN},
                   after={"status": NoticeStatus.QUEUED}, note=note, request=request)
    return len(queued)


# --- wiring ----------------------------------------------------------------------------


def on_s10_range_low(sender: Any, range: Any = None, remaining: int = 0, **kwargs: Any) -> None:
    """An S10 range is running out: the office must ask the postal operator for more."""
    create_task(
        subject=_("S10 range running out: %(range)s, %(count)d numbers left")
        % {"range": str(range), "count": remaining},
        kind=TaskKind.COLLECTIONS,
        team=Role.COLLECTIONS,
        priority=TaskPriority.HIGH,
        source=range,
    )


def connect() -> None:
    """Called from ReceivablesConfig.ready(): signals and the office menu entry."""
    from notifications.signals import s10_range_low
    from portal import extensions
    from receivables.signals import allocations_changed

    allocations_changed.connect(on_allocations_changed, dispatch_uid="receivables.dunning.paid")
    s10_range_low.connect(on_s10_range_low, dispatch_uid="receivables.dunning.s10_low")
    extensions.add_office_nav(
        extensions.NavItem(
            gettext_lazy("Dunning"),
            "dunning-office:overview",
            order=80,
            permission="receivables.view_dunningnotice",
        )
    )
