"""Recording and estimating meter readings.

Every door (customer form, courier app, typed-back tally sheet, office) stores
a reading through `record_reading`, so the same plausibility rules apply.

Decisions:
- A reading that is certainly wrong (a rule with severity "reject") is NOT
  stored: `ReadingRejected` is raised with the findings, and an audit event
  "meters.reading_rejected" keeps the attempt. The reading history therefore
  only holds readings that count, and a courier resending a rejected reading
  gets the same answer again.
- A reading that is only unusual is stored with status "flagged", its findings,
  and a READING_REVIEW task for the meter-reading team. It stays usable for
  billing until a coordinator decides otherwise (as in the HILO practice).
- A courier must confirm an unusual value (`confirmed_out_of_range=True`),
  else `ReadingNeedsConfirmation` is raised and nothing is stored.
- The first reading of a new meter (reason meter_exchange, dated the day the
  meter was installed) starts fresh: no previous reading is compared with; the
  old meter's final reading is checked against the old register's own history.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from meters import plausibility
from meters.models import (
    Reading,
    ReadingReason,
    ReadingSource,
    ReadingStatus,
    Register,
    RoundStop,
)
from meters.plausibility import Finding
from portal.models import TaskKind, User
from portal.roles import Role
from portal.services import ServiceError, close_tasks_of, create_task, record, snapshot

AUDIT_FIELDS = ("value", "read_on", "source", "reason", "status", "consumption", "findings")


class ReadingRejected(ServiceError):
    """The reading is certainly wrong; `findings` say why (their messages are for the user)."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__(" ".join(f.message for f in findings if f.severity == "reject"))


class ReadingNeedsConfirmation(ServiceError):
    """An unusual value from a courier: enter it again and confirm it."""

    def __init__(
        self, findings: list[Finding], expected_range: tuple[Decimal, Decimal] | None
    ) -> None:
        self.findings = findings
        self.expected_range = expected_range
        super().__init__(" ".join(f.message for f in findings))


class CannotEstimate(ServiceError):
    """Too little history (or a reading already there) to estimate a reading."""


def photo_sha256(photo: UploadedFile) -> str:
    digest = hashlib.sha256()
    for chunk in photo.chunks():
        digest.update(chunk)
    photo.seek(0)
    return digest.hexdigest()


def _context_for(
    register: Register, read_on: date, reason: str
) -> plausibility.ReadingContext:
    ctx = plausibility.load_contexts([register.pk])[register.pk]
    if reason == ReadingReason.METER_EXCHANGE and ctx.installed_on == read_on:
        return plausibility.fresh_context(ctx)
    return ctx


def record_reading(
    *,
    register: Register,
    value: Decimal,
    read_at: datetime,
    source: str,
    reason: str = ReadingReason.PERIODIC,
    entered_by: User | None,
    client_id: UUID | None = None,
    round_stop: RoundStop | None = None,
    photo: UploadedFile | None = None,
    latitude: Decimal | None = None,
    longitude: Decimal | None = None,
    photo_taken_at: datetime | None = None,
    confirmed_out_of_range: bool = False,
) -> Reading:
    """Check and store one reading (see the module docstring for what happens when)."""
    if client_id is not None:
        existing = Reading.objects.filter(client_id=client_id).first()
        if existing is not None:
            return existing
    read_on = timezone.localdate(read_at)
    digest = photo_sha256(photo) if photo is not None else ""
    try:
        with transaction.atomic():
            # Serialise readings of one register: the previous reading cannot change under us.
            locked = (
                Register.objects.select_for_update(of=("self",))
                .select_related("meter__supply_point__customer")
                .get(pk=register.pk)
            )
            ctx = _context_for(locked, read_on, reason)
            rules = plausibility.active_rules()
            verdict = plausibility.check(
                ctx, value, read_on, today=timezone.localdate(), rules=rules
            )
            if not verdict.rejected and verdict.flagged and source == ReadingSource.COURIER \
                    and not confirmed_out_of_range:
                raise ReadingNeedsConfirmation(
                    verdict.findings, plausibility.expected_range(ctx, read_on, rules)
                )
            if not verdict.rejected:
                return _store(
                    locked, value, read_at, read_on, source, reason, entered_by, client_id,
                    round_stop, photo, digest, latitude, longitude, photo_taken_at, verdict,
                )
    except IntegrityError:
        # The same client_id arrived twice at once, or a reading that day won a race.
        if client_id is not None:
            existing = Reading.objects.filter(client_id=client_id).first()
            if existing is not None:
                return existing
        raise ReadingRejected([Finding(
            "date_duplicate", "reject",
            _("This register already has a reading on %(day)s.")
            % {"day": plausibility.format_day(read_on)},
        )]) from None
    supply_point = locked.meter.supply_point
    record(
        action="meters.reading_rejected", actor=entered_by, customer=supply_point.customer,
        obj=locked,
        after={"value": value, "read_on": read_on, "source": source, "reason": reason,
               "findings": [f.as_json() for f in verdict.findings]},
    )
    raise ReadingRejected(verdict.findings)


def _store(
    register: Register, value: Decimal, read_at: datetime, read_on: date, source: str,
    reason: str, entered_by: User | None, client_id: UUID | None, round_stop: RoundStop | None,
    photo: UploadedFile | None, digest: str, latitude: Decimal | None,
    longitude: Decimal | None, photo_taken_at: datetime | None,
    verdict: plausibility.Verdict,
) -> Reading:
    reading = Reading(
        register=register, value=value, read_at=read_at, read_on=read_on, source=source,
        reason=reason, status=verdict.status,
        findings=[f.as_json() for f in verdict.findings],
        consumption=verdict.consumption, entered_by=entered_by, client_id=client_id,
        round_stop=round_stop, photo_sha256=digest, photo_taken_at=photo_taken_at,
        latitude=latitude, longitude=longitude,
    )
    if photo is not None:
        reading.photo = photo  # type: ignore[assignment]
    reading.save()
    supply_point = register.meter.supply_point
    record(
        action="meters.reading_recorded", actor=entered_by, customer=supply_point.customer,
        obj=reading, after=snapshot(reading, AUDIT_FIELDS),
    )
    if verdict.flagged:
        _review_task(reading, register)
    return reading


def _review_task(reading: Reading, register: Register) -> None:
    supply_point = register.meter.supply_point
    create_task(
        subject=_("Check reading %(value)s %(unit)s of %(register)s at %(point)s: %(why)s") % {
            "value": plausibility.format_index(reading.value, register.decimals),
            "unit": register.unit, "register": register,
            "point": supply_point.code,
            "why": "; ".join(f["message"] for f in reading.findings),
        },
        kind=TaskKind.READING_REVIEW,
        customer=supply_point.customer,
        team=Role.METER_READING,
        source=reading,
    )


def estimate_reading(*, register: Register, on: date) -> Reading:
    """Store an estimated reading for `on` from the register's history.

    The index is previous + expected daily movement × days since the last valid
    reading, rounded to the register's decimals (wrapping past the dial's maximum).
    Raises CannotEstimate without enough history or when `on` is not after the
    last valid reading.
    """
    with transaction.atomic():
        locked = (
            Register.objects.select_for_update(of=("self",))
            .select_related("meter__supply_point__customer")
            .get(pk=register.pk)
        )
        ctx = plausibility.load_contexts([locked.pk])[locked.pk]
        if ctx.last_on is not None and on <= ctx.last_on:
            raise CannotEstimate(
                _("There is already a reading on or after %(day)s.")
                % {"day": plausibility.format_day(on)}
            )
        estimated = plausibility.estimate(ctx, on)
        if estimated is None:
            raise CannotEstimate(_("There is too little reading history to estimate an index."))
        index, consumption = estimated
        read_at = timezone.make_aware(datetime.combine(on, time(12, 0)))
        reading = Reading.objects.create(
            register=locked, value=index, read_at=read_at, read_on=on,
            source=ReadingSource.ESTIMATED, reason=ReadingReason.PERIODIC,
            status=ReadingStatus.ACCEPTED, consumption=consumption,
        )
        record(
            action="meters.reading_estimated", actor=None,
            customer=locked.meter.supply_point.customer, obj=reading,
            after=snapshot(reading, AUDIT_FIELDS),
        )
        return reading


def findings_as_json(findings: list[Finding]) -> list[dict[str, Any]]:
    return [f.as_json() for f in findings]


@transaction.atomic
def review_reading(
    *, reading: Reading, accept: bool, reviewed_by: User, reason: str = ""
) -> Reading:
    """The coordinator's decision on a flagged reading: keep it, or reject it.

    A rejected reading stays in the history (with the reason) but no longer
    counts: it is not used for billing and frees its day for a new reading.
    """
    reading = Reading.objects.select_for_update().select_related(
        "register__meter__supply_point__customer"
    ).get(pk=reading.pk)
    if reading.status != ReadingStatus.FLAGGED:
        raise ServiceError(_("This reading was already reviewed."))
    if not accept and not reason.strip():
        raise ServiceError(_("Give a reason for rejecting the reading."))
    before = snapshot(reading, ("status", "used_for_billing"))
    if accept:
        reading.status = ReadingStatus.ACCEPTED
    else:
        reading.status = ReadingStatus.REJECTED
        reading.used_for_billing = False
    reading.save(update_fields=["status", "used_for_billing"])
    close_tasks_of(reading)
    record(
        action="meters.reading_reviewed", actor=reviewed_by,
        customer=reading.register.meter.supply_point.customer, obj=reading, before=before,
        after=snapshot(reading, ("status", "used_for_billing")), note=reason,
    )
    return reading
