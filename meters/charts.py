"""Consumption charts as SVG text, drawn on the server.

The same string goes into a web page (inline, so the CSP needs no exception:
colours are presentation attributes, never ``style``) and, later, into invoice
PDFs. Output is deterministic: the same bars give the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from django.utils.formats import date_format
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from meters.models import Reading, Register

WIDTH = 640
HEIGHT = 260
LEFT = 64  # room for the value labels
RIGHT = 12
TOP = 16
BOTTOM = 44  # room for the period labels
GRID_LINES = 4
BAR_FILL = "#1f5fa8"
AXIS_STROKE = "#5b6675"
GRID_STROKE = "#d7dde5"
TEXT_FILL = "#2b3440"
TWO_PLACES = Decimal("0.01")


@dataclass(frozen=True)
class Bar:
    label: str
    value: Decimal


def _num(value: Decimal) -> str:
    """A coordinate with at most two decimals and no trailing zeros (stable text)."""
    text = format(value.quantize(TWO_PLACES, rounding=ROUND_HALF_UP), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def nice_ceiling(value: Decimal) -> Decimal:
    """The smallest 1, 2, 2.5 or 5 × 10^k that is at least ``value`` (1 for nothing)."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        candidate = step.scaleb(exponent)
        if candidate >= value:
            return candidate
    return Decimal(10).scaleb(exponent)  # not reached


def _label(value: Decimal) -> str:
    """A value for people: no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


def bar_chart(
    bars: Sequence[Bar], *, title: str, desc: str, unit: str, chart_id: str
) -> SafeString:
    """An accessible bar chart: one bar per period, value axis with ``unit``.

    ``chart_id`` makes the ids of <title>/<desc> unique on a page with several
    charts. Every text is escaped, so the result is safe to put in HTML.
    """
    plot_w = Decimal(WIDTH - LEFT - RIGHT)
    plot_h = Decimal(HEIGHT - TOP - BOTTOM)
    top_value = nice_ceiling(max((max(b.value, Decimal(0)) for b in bars), default=Decimal(0)))
    base_y = Decimal(TOP) + plot_h
    ident = escape(chart_id)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'aria-labelledby="{ident}-title {ident}-desc" font-family="sans-serif" font-size="11">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(desc)}</desc>',
    ]
    # Grid lines with their values, bottom to top.
    for step in range(GRID_LINES + 1):
        fraction = Decimal(step) / GRID_LINES
        y = _num(base_y - plot_h * fraction)
        value = top_value * fraction
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" '
            f'stroke="{GRID_STROKE}" stroke-width="1"/>'
        )
        parts.append(
            f'<text class="y-label" x="{LEFT - 6}" y="{y}" text-anchor="end" '
            f'dominant-baseline="middle" fill="{TEXT_FILL}">{escape(_label(value))}</text>'
        )
    parts.append(f'<text class="unit" x="4" y="{TOP - 4}" fill="{TEXT_FILL}">{escape(unit)}</text>')
    if bars:
        slot = plot_w / len(bars)
        bar_w = slot * Decimal("0.7")
        # Label every n-th period when there are many, so that labels do not overlap.
        every = max(1, (len(bars) + 11) // 12)
        for index, bar in enumerate(bars):
            value = max(bar.value, Decimal(0))
            height = plot_h * value / top_value
            x = Decimal(LEFT) + slot * index + (slot - bar_w) / 2
            parts.append(
                f'<rect class="bar" x="{_num(x)}" y="{_num(base_y - height)}" '
                f'width="{_num(bar_w)}" height="{_num(height)}" fill="{BAR_FILL}">'
                f"<title>{escape(bar.label)}: {escape(_label(bar.value))} {escape(unit)}</title>"
                f"</rect>"
            )
            if index % every == 0:
                parts.append(
                    f'<text class="x-label" x="{_num(x + bar_w / 2)}" y="{_num(base_y + 16)}" '
                    f'text-anchor="middle" fill="{TEXT_FILL}">{escape(bar.label)}</text>'
                )
    parts.append(
        f'<line class="axis" x1="{LEFT}" y1="{_num(base_y)}" x2="{WIDTH - RIGHT}" '
        f'y2="{_num(base_y)}" stroke="{AXIS_STROKE}" stroke-width="1"/>'
    )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


def month_starts(first: date, last: date) -> list[date]:
    """The first day of each month from ``first``'s month to ``last``'s, inclusive."""
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(date(year, month, 1))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def monthly_consumption(
    register: Register, readings: Iterable[Reading], *, months: Sequence[date]
) -> list[Bar]:
    """Consumption per month, each reading's consumption booked in the month it was read.

    ``readings`` are the register's valid readings, oldest first. A reading
    without a stored consumption counts the index difference to the previous
    one (through the rollover, times the multiplier); the first one counts nothing.
    """
    totals = {month: Decimal(0) for month in months}
    previous: Reading | None = None
    for reading in readings:
        used = reading.consumption
        if used is None and previous is not None:
            delta = reading.value - previous.value
            if delta < 0:
                delta += register.rollover
            used = delta * register.multiplier
        key = reading.read_on.replace(day=1)
        if used is not None and key in totals:
            totals[key] += used
        previous = reading
    return [Bar(date_format(month, "M y"), totals[month]) for month in months]
