"""Plausibility of meter readings: the same checks for every door.

The customer form, the courier app, typed-back tally sheets and file imports
all go through the two functions here:

    contexts = load_contexts(register_ids)      # a fixed number of queries (two)
    rules = active_rules()                      # one query
    verdict = check(contexts[rid], value, read_on, today=today, rules=rules)

`check` is pure: no database. File imports (meters/imports.py) judge their rows
set-wise in SQL and send here only the rows SQL cannot accept on sight; that SQL
must accept nothing these rules would flag or reject. When a rule changes,
change its `judged` step too: tests/meters/test_imports.py runs every edge case
through both and fails when they disagree.

Units. A register's *index* is what the dial shows. `ReadingContext.expected_daily`
is the expected movement of the index per day (dial units, before the
multiplier), so `previous_value + expected_daily × days` is an expected index.
`Verdict.consumption` is the consumption in the register's unit after rollover
and multiplier: (value − previous [+ 10^digits]) × multiplier.

Rules (code → default severity, parameters; a PlausibilityRule row overrides them):

    date_future        reject  the reading's date is after today
    meter_period       reject  the date is outside the meter's installation period
    date_order         reject  the date is before the register's last valid reading
    date_duplicate     reject  the register already has a valid reading that day
    negative           reject  the index is below zero
    digits_overflow    reject  more integer digits than the dial has
    too_many_decimals  reject  more decimals than the dial has
    monotonic          reject  the index is lower than the previous one (and no rollover)
    rollover           flag    the dial wrapped (…999 → 000…); accepted only when the
                               wrapped consumption is within the expected band
                               {"near_max_share": "0.1"} used when there is no history
    decimal_slip       flag    the index is about the previous ×10/×100 (or ÷10/÷100)
                               {"factors": [10, 100], "tolerance": "0.02"}
    high_low           flag    consumption outside [expected × low_factor, expected × high_factor]
                               {"high_factor": "3", "low_factor": "0.2"}
    zero_consumption   flag    the index has not moved for `days` days or more
                               {"days": 90}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.db import connection
from django.utils.formats import date_format, number_format
from django.utils.functional import lazy
from django.utils.translation import gettext as _

from meters.models import Meter, PlausibilityRule, Reading, ReadingStatus, Register, RuleSeverity

# How far back history is read for the expected consumption and zero-movement span.
HISTORY_DAYS = 400
# Less history than this (between first and last reading) gives no expected consumption.
MIN_HISTORY_DAYS = 28

REJECT = RuleSeverity.REJECT.value
FLAG = RuleSeverity.FLAG.value
OFF = RuleSeverity.OFF.value

ACCEPTED = ReadingStatus.ACCEPTED.value
FLAGGED = ReadingStatus.FLAGGED.value
REJECTED = ReadingStatus.REJECTED.value


@dataclass(frozen=True)
class ReadingContext:
    """What the checks need to know about a register before a new reading."""

    register_id: int
    integer_digits: int
    decimals: int
    multiplier: Decimal
    previous_value: Decimal | None
    previous_on: date | None
    # Expected index movement per day (dial units), None when there is too little history.
    expected_daily: Decimal | None
    # Days the index had not moved, up to previous_on (0 when the last reading moved).
    zero_days: int
    # The latest valid reading's date (== previous_on).
    last_on: date | None
    # The meter's installation period (meter exchange: readings belong to the meter then in place).
    installed_on: date | None = None
    removed_on: date | None = None

    @property
    def rollover(self) -> Decimal:
        return Decimal(10) ** self.integer_digits


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # "reject" | "flag"
    message: str

    def as_json(self) -> dict[str, str]:
        return {"rule": self.rule, "severity": self.severity, "message": self.message}


@dataclass(frozen=True)
class Verdict:
    status: str  # "accepted" | "flagged" | "rejected"
    findings: list[Finding]
    consumption: Decimal | None

    @property
    def rejected(self) -> bool:
        return self.status == REJECTED

    @property
    def flagged(self) -> bool:
        return self.status == FLAGGED


@dataclass(frozen=True)
class Rule:
    severity: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


DEFAULT_RULES: dict[str, Rule] = {
    "date_future": Rule(REJECT),
    "meter_period": Rule(REJECT),
    "date_order": Rule(REJECT),
    "date_duplicate": Rule(REJECT),
    "negative": Rule(REJECT),
    "digits_overflow": Rule(REJECT),
    "too_many_decimals": Rule(REJECT),
    "monotonic": Rule(REJECT),
    "rollover": Rule(FLAG, {"near_max_share": "0.1"}),
    "decimal_slip": Rule(FLAG, {"factors": [10, 100], "tolerance": "0.02"}),
    "high_low": Rule(FLAG, {"high_factor": "3", "low_factor": "0.2"}),
    "zero_consumption": Rule(FLAG, {"days": 90}),
}


@dataclass(frozen=True)
class RuleSet:
    """The rules in force: defaults in code, overridden by PlausibilityRule rows."""

    rules: Mapping[str, Rule] = field(default_factory=lambda: dict(DEFAULT_RULES))

    def severity(self, code: str) -> str:
        return self.rules[code].severity if code in self.rules else OFF

    def is_on(self, code: str) -> bool:
        return self.severity(code) != OFF

    def decimal(self, code: str, name: str) -> Decimal:
        value = self.rules[code].parameters.get(name) if code in self.rules else None
        default = DEFAULT_RULES[code].parameters[name]
        try:
            return Decimal(str(value if value is not None else default))
        except InvalidOperation:
            return Decimal(str(default))

    def integer(self, code: str, name: str) -> int:
        return int(self.decimal(code, name))

    def factors(self) -> list[Decimal]:
        raw = self.rules["decimal_slip"].parameters.get("factors") if self.is_on(
            "decimal_slip") else None
        if not isinstance(raw, list):
            raw = DEFAULT_RULES["decimal_slip"].parameters["factors"]
        try:
            return [Decimal(str(f)) for f in raw if Decimal(str(f)) > 1]
        except InvalidOperation:
            return [Decimal(10), Decimal(100)]


def active_rules() -> RuleSet:
    """The rules in force (one query); codes without a row keep their defaults."""
    rules = dict(DEFAULT_RULES)
    for row in PlausibilityRule.objects.all():
        if row.code not in DEFAULT_RULES:
            continue  # an unknown code configures nothing
        parameters = dict(DEFAULT_RULES[row.code].parameters)
        if isinstance(row.parameters, dict):
            parameters.update(row.parameters)
        rules[row.code] = Rule(row.severity, parameters)
    return RuleSet(rules)


# One statement for any number of registers and any length of history:
# the register's geometry and meter period, its latest valid reading (before
# `before`), and over the HISTORY_DAYS before that reading the sum of index
# movements (a drop counts as a wrap of the dial) and the date the index last moved.
# `{ids}` is the set of registers: an array parameter or a subquery.
_CONTEXT_SQL = """
WITH reg AS (
    SELECT r.id, r.integer_digits, r.decimals, r.multiplier, m.installed_on, m.removed_on
    FROM {register} r JOIN {meter} m ON m.id = r.meter_id
    WHERE r.id IN ({ids})
),
last AS (
    SELECT DISTINCT ON (x.register_id) x.register_id, x.value, x.read_on
    FROM {reading} x
    WHERE x.register_id IN (SELECT id FROM reg) AND x.status <> %(rejected)s
      AND (%(before)s::date IS NULL OR x.read_on < %(before)s::date)
    ORDER BY x.register_id, x.read_on DESC, x.id DESC
),
steps AS (
    SELECT x.register_id, x.read_on, x.value,
           x.value - LAG(x.value) OVER w AS delta
    FROM {reading} x JOIN last l ON l.register_id = x.register_id
    WHERE x.status <> %(rejected)s
      AND x.read_on <= l.read_on AND x.read_on >= l.read_on - %(days)s
    WINDOW w AS (PARTITION BY x.register_id ORDER BY x.read_on, x.id)
),
stats AS (
    SELECT s.register_id,
           MIN(s.read_on) AS first_on,
           SUM(CASE WHEN s.delta < 0 THEN s.delta + power(10::numeric, reg.integer_digits)
                    ELSE s.delta END) AS moved,
           MAX(CASE WHEN s.delta <> 0 THEN s.read_on END) AS last_move_on
    FROM steps s JOIN reg ON reg.id = s.register_id
    GROUP BY s.register_id
)
SELECT reg.id, reg.integer_digits, reg.decimals, reg.multiplier, reg.installed_on,
       reg.removed_on, last.value, last.read_on, stats.first_on, stats.moved, stats.last_move_on
FROM reg
LEFT JOIN last ON last.register_id = reg.id
LEFT JOIN stats ON stats.register_id = reg.id
"""

# The columns context_sql() gives, in order (context_from_row takes them).
CONTEXT_COLUMNS = (
    "register_id", "integer_digits", "decimals", "multiplier", "installed_on", "removed_on",
    "last_value", "last_on", "first_on", "moved", "last_move_on",
)


def context_sql(ids: str = "SELECT unnest(%(ids)s::bigint[])") -> str:
    """The context statement for the registers `ids` (SQL giving register ids).

    Parameters: %(rejected)s, %(before)s, %(days)s (see context_params) and
    whatever `ids` uses.
    """
    return _CONTEXT_SQL.format(
        register=Register._meta.db_table, meter=Meter._meta.db_table,
        reading=Reading._meta.db_table, ids=ids,
    )


def context_params(before: date | None = None) -> dict[str, Any]:
    return {"before": before, "rejected": REJECTED, "days": HISTORY_DAYS}


def context_from_row(row: tuple[Any, ...]) -> ReadingContext:
    """A ReadingContext from one row of context_sql()."""
    (register_id, digits, decimals, multiplier, installed_on, removed_on, value,
     read_on, first_on, moved, last_move_on) = row
    expected: Decimal | None = None
    if read_on is not None and first_on is not None and moved is not None:
        span = (read_on - first_on).days
        if span >= MIN_HISTORY_DAYS:
            expected = Decimal(moved) / span
    zero_days = 0
    if read_on is not None:
        still_since = last_move_on or first_on or read_on
        zero_days = (read_on - still_since).days
    return ReadingContext(
        register_id=register_id,
        integer_digits=digits,
        decimals=decimals,
        multiplier=Decimal(multiplier),
        previous_value=Decimal(value) if value is not None else None,
        previous_on=read_on,
        expected_daily=expected,
        zero_days=zero_days,
        last_on=read_on,
        installed_on=installed_on,
        removed_on=removed_on,
    )


def load_contexts(
    register_ids: Iterable[int], *, before: date | None = None
) -> dict[int, ReadingContext]:
    """The context of each register, set-wise: one query whatever the history.

    `before`: only readings dated before that day count (a reading being
    entered for an earlier date is checked against what preceded it).
    Registers that do not exist are absent from the result.
    """
    ids = sorted({int(i) for i in register_ids})
    if not ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(context_sql(), {"ids": ids, **context_params(before)})
        return {row[0]: context_from_row(row) for row in cursor.fetchall()}


def fresh_context(ctx: ReadingContext) -> ReadingContext:
    """The context of a register that starts from nothing (first reading of a new meter)."""
    return replace(ctx, previous_value=None, previous_on=None, expected_daily=None,
                   zero_days=0, last_on=None)


def format_index(value: Decimal, decimals: int) -> str:
    return number_format(value, decimal_pos=decimals, use_l10n=True, force_grouping=True)


def _amount(value: Decimal) -> str:
    return number_format(value, decimal_pos=min(_decimals_of(value), 3), use_l10n=True,
                         force_grouping=True)


def format_day(day: date) -> str:
    return date_format(day, "j F Y")


# Formatting is localised and costs more than the rules themselves; the lazy
# versions only format when a finding's message is actually built.
_lazy_index = lazy(format_index, str)
_lazy_day = lazy(format_day, str)


def _band(ctx: ReadingContext, read_on: date, rules: RuleSet) -> tuple[Decimal, Decimal] | None:
    """Expected index movement (low, high) between the previous reading and read_on."""
    if ctx.expected_daily is None or ctx.previous_on is None:
        return None
    days = (read_on - ctx.previous_on).days
    if days <= 0:
        return None
    expected = ctx.expected_daily * days
    return (expected * rules.decimal("high_low", "low_factor"),
            expected * rules.decimal("high_low", "high_factor"))


def expected_range(
    ctx: ReadingContext, read_on: date, rules: RuleSet
) -> tuple[Decimal, Decimal] | None:
    """The index range (low, high) a reading on read_on is expected in, for forms and sheets.

    None without a previous reading or enough history. The high end may exceed
    the dial's maximum when a wrap is due.
    """
    band = _band(ctx, read_on, rules)
    if band is None or ctx.previous_value is None:
        return None
    step = Decimal(1).scaleb(-ctx.decimals)
    low = (ctx.previous_value + band[0]).quantize(step, rounding=ROUND_FLOOR)
    high = (ctx.previous_value + band[1]).quantize(step, rounding=ROUND_CEILING)
    return low, high


def _decimals_of(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _near(value: Decimal, target: Decimal, tolerance: Decimal) -> bool:
    return target > 0 and abs(value - target) <= target * tolerance


def check(
    ctx: ReadingContext, value: Decimal, read_on: date, *, today: date, rules: RuleSet
) -> Verdict:
    """Run every rule in force on one reading; no database access."""
    findings: list[Finding] = []

    def add(code: str, message: str) -> None:
        severity = rules.severity(code)
        if severity != OFF:
            findings.append(Finding(code, severity, message))

    shown = _lazy_index(value, min(_decimals_of(value), 3))

    # Dates.
    if read_on > today:
        add("date_future", _("The date %(day)s is in the future.") % {"day": format_day(read_on)})
    if ctx.installed_on is not None and read_on < ctx.installed_on:
        add("meter_period", _("The meter was installed on %(day)s, after this reading's date.")
            % {"day": format_day(ctx.installed_on)})
    if ctx.removed_on is not None and read_on > ctx.removed_on:
        add("meter_period", _("The meter was removed on %(day)s; readings after that belong to "
                              "the new meter.") % {"day": format_day(ctx.removed_on)})
    if ctx.last_on is not None and read_on < ctx.last_on:
        add("date_order", _("The date %(day)s is before the last reading of %(last)s.")
            % {"day": format_day(read_on), "last": format_day(ctx.last_on)})
    elif ctx.last_on is not None and read_on == ctx.last_on:
        add("date_duplicate", _("This register already has a reading on %(day)s.")
            % {"day": format_day(read_on)})

    # The dial.
    if value < 0:
        add("negative", _("The index %(value)s is negative.") % {"value": shown})
    if abs(value) >= ctx.rollover:
        add("digits_overflow", _("The index %(value)s has more than %(digits)d digits before "
                                 "the decimal point, as many as the meter's dial shows.")
            % {"value": shown, "digits": ctx.integer_digits})
    if _decimals_of(value) > ctx.decimals:
        if ctx.decimals == 0:
            message = _("The index %(value)s has decimals; this meter shows whole numbers only.")
        else:
            message = _("The index %(value)s has more than %(decimals)d decimals, as many as the "
                        "meter's dial shows.")
        add("too_many_decimals", message % {"value": shown, "decimals": ctx.decimals})

    consumption: Decimal | None = None
    dial_ok = not any(f.rule in {"negative", "digits_overflow"} for f in findings)
    if ctx.previous_value is not None and ctx.previous_on is not None and dial_ok:
        consumption = _movement_rules(ctx, value, read_on, rules, add, shown)

    if any(f.severity == REJECT for f in findings):
        return Verdict(REJECTED, findings, None)
    status = FLAGGED if findings else ACCEPTED
    return Verdict(status, findings, consumption * ctx.multiplier if consumption is not None
                   else None)


def _movement_rules(
    ctx: ReadingContext, value: Decimal, read_on: date, rules: RuleSet,
    add: Callable[[str, str], None], shown: Any,
) -> Decimal | None:
    """Rules comparing with the previous reading; returns the index movement (dial units)."""
    assert ctx.previous_value is not None and ctx.previous_on is not None  # noqa: S101
    previous = ctx.previous_value
    previous_shown = _lazy_index(previous, ctx.decimals)
    previous_day = _lazy_day(ctx.previous_on)
    band = _band(ctx, read_on, rules)
    tolerance = rules.decimal("decimal_slip", "tolerance")
    factors = rules.factors() if rules.is_on("decimal_slip") else []

    if value < previous:
        wrapped = ctx.rollover - previous + value
        if rules.is_on("rollover") and _wrap_plausible(ctx, wrapped, band, rules):
            add("rollover", _("The dial went past its maximum: from %(previous)s to %(value)s "
                              "is a consumption of %(amount)s.")
                % {"previous": previous_shown, "value": shown, "amount": _amount(wrapped)})
            return wrapped
        slipped = next((f for f in factors if _near(value, previous / f, tolerance)), None)
        message = _("The index %(value)s is lower than the previous reading %(previous)s of "
                    "%(day)s.") % {"value": shown, "previous": previous_shown, "day": previous_day}
        if slipped is not None:
            message += " " + _("Is a digit missing?")
        add("monotonic", message)
        return None  # a drop that is no wrap has no meaningful consumption

    movement = value - previous
    slipped = next((f for f in factors if _near(value, previous * f, tolerance)), None)
    if slipped is not None:
        add("decimal_slip", _("The index %(value)s is about %(factor)s times the previous "
                              "reading %(previous)s of %(day)s: is the decimal point in the "
                              "right place?")
            % {"value": shown, "factor": _amount(slipped), "previous": previous_shown,
               "day": previous_day})
    elif band is not None and rules.is_on("high_low"):
        low, high = band
        if movement > high:
            add("high_low", _("A consumption of %(amount)s since %(day)s is higher than expected "
                              "(at most about %(high)s).")
                % {"amount": _amount(movement * ctx.multiplier), "day": previous_day,
                   "high": _amount(_round(high * ctx.multiplier, ctx.decimals))})
        elif movement < low and movement > 0:
            add("high_low", _("A consumption of %(amount)s since %(day)s is lower than expected "
                              "(at least about %(low)s).")
                % {"amount": _amount(movement * ctx.multiplier), "day": previous_day,
                   "low": _amount(_round(low * ctx.multiplier, ctx.decimals))})

    if movement == 0:
        still = ctx.zero_days + (read_on - ctx.previous_on).days
        limit = rules.integer("zero_consumption", "days")
        if still >= limit:
            add("zero_consumption", _("The index has not moved for %(days)d days (since %(day)s).")
                % {"days": still, "day": format_day(read_on - timedelta(days=still))})
        elif band is not None and band[0] > 0 and rules.is_on("high_low"):
            add("high_low", _("No consumption since %(day)s, where about %(low)s or more was "
                              "expected.")
                % {"day": previous_day,
                   "low": _amount(_round(band[0] * ctx.multiplier, ctx.decimals))})
    return movement


def _wrap_plausible(
    ctx: ReadingContext, wrapped: Decimal, band: tuple[Decimal, Decimal] | None, rules: RuleSet
) -> bool:
    """A drop is a wrap of the dial when the wrapped consumption is what was expected."""
    if band is not None:
        return band[0] <= wrapped <= band[1]
    # No history to compare with: only a drop from near the top to near zero.
    return wrapped <= ctx.rollover * rules.decimal("rollover", "near_max_share")


def _round(value: Decimal, decimals: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def estimate(ctx: ReadingContext, on: date) -> tuple[Decimal, Decimal] | None:
    """(index, consumption) estimated for `on` from history, None when there is too little.

    The index is rounded to the register's decimals and wraps past the dial's maximum.
    """
    if ctx.previous_value is None or ctx.previous_on is None or ctx.expected_daily is None:
        return None
    days = (on - ctx.previous_on).days
    if days <= 0:
        return None
    movement = _round(ctx.expected_daily * days, ctx.decimals)
    index = (ctx.previous_value + movement) % ctx.rollover
    return _round(index, ctx.decimals), movement * ctx.multiplier
