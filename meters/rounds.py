"""Reading rounds: made and assigned by the coordinator, walked by a courier."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Prefetch, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from meters import plausibility
from meters.models import (
    Meter,
    Reading,
    ReadingRound,
    ReadingStatus,
    Register,
    RoundStatus,
    RoundStop,
    SkipReason,
    SupplyPoint,
    stop_read_condition,
)
from portal.models import User
from portal.services import ServiceError, record
from portal.staff import is_courier


@dataclass(frozen=True)
class RoundProgress:
    total: int  # stops in the round
    read: int  # stops whose registers all have a valid reading of this round and period
    flagged: int  # readings of this round waiting for review
    skipped: int = 0  # stops not read that the courier marked as skipped

    @property
    def settled(self) -> int:
        return self.read + self.skipped

    @property
    def left(self) -> int:
        return self.total - self.settled

    @property
    def percent(self) -> int:
        return round(100 * self.settled / self.total) if self.total else 0


@transaction.atomic
def create_round(
    *,
    name: str,
    period_start: date,
    period_end: date,
    supply_points: Sequence[SupplyPoint],
    created_by: User,
    courier: User | None = None,
) -> ReadingRound:
    """A round visiting ``supply_points`` in the given order; assigned at once
    when ``courier`` is given."""
    if period_end < period_start:
        raise ServiceError(_("The period ends before it starts."))
    if not supply_points:
        raise ServiceError(_("A round needs at least one supply point."))
    if len({point.pk for point in supply_points}) != len(supply_points):
        raise ServiceError(_("A supply point appears twice in the round."))
    reading_round = ReadingRound.objects.create(
        name=name, period_start=period_start, period_end=period_end, created_by=created_by
    )
    RoundStop.objects.bulk_create(
        RoundStop(round=reading_round, supply_point=point, position=position)
        for position, point in enumerate(supply_points, start=1)
    )
    record(
        action="meters.round_created",
        actor=created_by,
        obj=reading_round,
        after={"name": name, "stops": [point.code for point in supply_points]},
    )
    if courier is not None:
        assign(reading_round=reading_round, courier=courier, by=created_by)
    return reading_round


@transaction.atomic
def assign(*, reading_round: ReadingRound, courier: User, by: User) -> ReadingRound:
    """Give the round to ``courier`` (who must be in the courier group)."""
    if not is_courier(courier):
        raise ServiceError(_("Only a courier can be given a reading round."))
    before = {"courier": reading_round.courier_id, "status": reading_round.status}
    reading_round.courier = courier
    reading_round.status = RoundStatus.ASSIGNED
    reading_round.save(update_fields=["courier", "status"])
    record(
        action="meters.round_assigned",
        actor=by,
        obj=reading_round,
        before=before,
        after={"courier": courier.pk, "status": reading_round.status},
    )
    return reading_round


def progress(reading_round: ReadingRound) -> RoundProgress:
    """Read, skipped and total stops and flagged readings, in one query whatever the size."""
    read = stop_read_condition()
    figures = RoundStop.objects.filter(round=reading_round).aggregate(
        total=Count("id", distinct=True),
        read=Count("id", filter=read, distinct=True),
        skipped=Count("id", filter=~Q(skip_reason="") & ~read, distinct=True),
        flagged=Count("readings", filter=Q(readings__status=ReadingStatus.FLAGGED)),
    )
    return RoundProgress(
        total=figures["total"],
        read=figures["read"],
        skipped=figures["skipped"],
        flagged=figures["flagged"],
    )


def open_stops(reading_round: ReadingRound) -> list[RoundStop]:
    """Stops neither read nor skipped, in visiting order (one query)."""
    return list(
        RoundStop.objects.open()
        .filter(round=reading_round)
        .select_related("supply_point")
        .order_by("position")
    )


def complete_if_done(*, reading_round: ReadingRound, by: User | None) -> bool:
    """Mark the round done when no stop is open any more; True when it just became done.

    One conditional UPDATE whatever the number of stops, so two readings
    arriving together cannot both (or neither) close the round.
    """
    with transaction.atomic():
        now = timezone.now()
        changed = (
            ReadingRound.objects.filter(
                pk=reading_round.pk, status__in=[RoundStatus.DRAFT, RoundStatus.ASSIGNED]
            )
            .filter(~Exists(RoundStop.objects.open().filter(round=OuterRef("pk"))))
            .update(status=RoundStatus.DONE, done_at=now)
        )
        if not changed:
            return False
        before = reading_round.status
        reading_round.status, reading_round.done_at = RoundStatus.DONE, now
        record(
            action="meters.round_done",
            actor=by,
            obj=reading_round,
            before={"status": before},
            after={"status": RoundStatus.DONE, "closed_by_hand": False},
        )
    return True


@transaction.atomic
def close_round(*, reading_round: ReadingRound, by: User, note: str = "") -> list[RoundStop]:
    """The coordinator ends the round as it is; returns the stops left open."""
    locked = ReadingRound.objects.select_for_update().get(pk=reading_round.pk)
    if locked.status == RoundStatus.DONE:
        raise ServiceError(_("This round is already done."))
    left = open_stops(locked)
    before = locked.status
    locked.status, locked.done_at = RoundStatus.DONE, timezone.now()
    locked.save(update_fields=["status", "done_at"])
    reading_round.status, reading_round.done_at = locked.status, locked.done_at
    record(
        action="meters.round_closed",
        actor=by,
        obj=locked,
        before={"status": before},
        after={
            "status": RoundStatus.DONE,
            "closed_by_hand": True,
            "open_stops": [stop.supply_point.code for stop in left],
        },
        note=note,
    )
    return left


@transaction.atomic
def reopen_round(*, reading_round: ReadingRound, by: User, note: str = "") -> ReadingRound:
    """Put a done round back in work: with its courier again, or as a draft without one."""
    locked = ReadingRound.objects.select_for_update().get(pk=reading_round.pk)
    if locked.status != RoundStatus.DONE:
        raise ServiceError(_("Only a done round can be reopened."))
    locked.status = RoundStatus.ASSIGNED if locked.courier_id else RoundStatus.DRAFT
    locked.done_at = None
    locked.save(update_fields=["status", "done_at"])
    reading_round.status, reading_round.done_at = locked.status, None
    record(
        action="meters.round_reopened",
        actor=by,
        obj=locked,
        before={"status": RoundStatus.DONE},
        after={"status": locked.status},
        note=note,
    )
    return locked


@transaction.atomic
def skip_stop(*, stop: RoundStop, reason: str, note: str = "", by: User) -> RoundStop:
    """The courier could not read the meters of ``stop``: say why, and let the round finish."""
    if reason not in SkipReason.values:
        raise ServiceError(_("Choose why the meter was not read."))
    if reason == SkipReason.OTHER and not note.strip():
        raise ServiceError(_("Say what kept you from reading the meter."))
    stop.skip_reason, stop.skip_note = reason, note.strip()
    stop.skipped_at, stop.skipped_by = timezone.now(), by
    stop.save(update_fields=["skip_reason", "skip_note", "skipped_at", "skipped_by"])
    record(
        action="meters.stop_skipped",
        actor=by,
        customer=stop.supply_point.customer,
        obj=stop.round,
        after={"stop": stop.position, "supply_point": stop.supply_point.code,
               "reason": reason, "note": stop.skip_note},
    )
    complete_if_done(reading_round=stop.round, by=by)
    return stop


@dataclass
class RegisterLine:
    """One register to read at a stop, with what the courier needs to know."""

    register: Register
    previous: Decimal | None
    previous_on: date | None
    low: Decimal | None
    high: Decimal | None
    reading: Reading | None  # already read on this round
    # Typing a paper sheet back: what was typed and what is wrong with it.
    typed: str = ""
    error: str = ""
    needs_confirm: bool = False

    @property
    def step(self) -> str:
        return "1" if not self.register.decimals else f"0.{'0' * (self.register.decimals - 1)}1"


@dataclass
class StopLine:
    stop: RoundStop
    meters: list[tuple[Meter, list[RegisterLine]]] = field(default_factory=list)

    @property
    def lines(self) -> list[RegisterLine]:
        return [line for _meter, lines in self.meters for line in lines]

    @property
    def done(self) -> bool:
        lines = self.lines
        return bool(lines) and all(line.reading is not None for line in lines)

    @property
    def skipped(self) -> bool:
        return bool(self.stop.skip_reason) and not self.done


def stop_lines(reading_round: ReadingRound, *, on: date) -> list[StopLine]:
    """The stops of a round in order with their installed meters and registers,
    each register with its previous index and accepted range on ``on``.

    A fixed number of queries whatever the number of stops and the history.
    """
    stops = list(
        reading_round.stops.select_related("supply_point")
        .prefetch_related(
            Prefetch(
                "supply_point__meters",
                queryset=Meter.objects.filter(removed_on=None).prefetch_related("registers"),
                to_attr="installed",
            )
        )
        .order_by("position")
    )
    registers = [
        register
        for stop in stops
        for meter in stop.supply_point.installed  # type: ignore[attr-defined]
        for register in meter.registers.all()
    ]
    contexts = plausibility.load_contexts([r.pk for r in registers], before=on)
    rules = plausibility.active_rules()
    taken: dict[int, Reading] = {
        reading.register_id: reading
        for reading in Reading.objects.valid().filter(round_stop__round=reading_round)
    }
    result = []
    for stop in stops:
        line = StopLine(stop=stop)
        for meter in stop.supply_point.installed:  # type: ignore[attr-defined]
            lines = []
            for register in meter.registers.all():
                ctx = contexts.get(register.pk)
                span = plausibility.expected_range(ctx, on, rules) if ctx else None
                lines.append(
                    RegisterLine(
                        register=register,
                        previous=ctx.previous_value if ctx else None,
                        previous_on=ctx.previous_on if ctx else None,
                        low=span[0] if span else None,
                        high=span[1] if span else None,
                        reading=taken.get(register.pk),
                    )
                )
            line.meters.append((meter, lines))
        result.append(line)
    return result
