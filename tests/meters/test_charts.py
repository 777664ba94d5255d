"""The server-side consumption chart (meters/charts.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal

import pytest

from meters import charts
from meters.models import Reading, Register
from tests.meters.conftest import AddHistory

SVG = "{http://www.w3.org/2000/svg}"
PLOT_HEIGHT = Decimal(charts.HEIGHT - charts.TOP - charts.BOTTOM)


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own output


def _bars(root: ET.Element) -> list[ET.Element]:
    return [rect for rect in root.iter(f"{SVG}rect") if rect.get("class") == "bar"]


def _chart(values: list[str], **extra: str) -> str:
    options = {"title": "Consumption", "desc": "kWh per month", "unit": "kWh", "chart_id": "c1"}
    options.update(extra)
    bars = [charts.Bar(f"M{i}", Decimal(v)) for i, v in enumerate(values)]
    return charts.bar_chart(bars, **options)  # type: ignore[arg-type]


def test_it_draws_one_bar_per_period_with_heights_proportional_to_consumption() -> None:
    root = _parse(_chart(["10", "20", "0", "5"]))

    bars = _bars(root)
    assert len(bars) == 4
    heights = [Decimal(bar.get("height", "")) for bar in bars]
    # 20 is the top of the axis: it fills the plot; 10 half of it, 5 a quarter.
    assert heights == [PLOT_HEIGHT / 2, PLOT_HEIGHT, Decimal(0), PLOT_HEIGHT / 4]
    # Bars stand on the same base line.
    bottoms = {Decimal(bar.get("y", "")) + h for bar, h in zip(bars, heights, strict=True)}
    assert bottoms == {Decimal(charts.TOP) + PLOT_HEIGHT}


def test_it_rounds_the_axis_up_to_a_readable_value_and_labels_it() -> None:
    root = _parse(_chart(["37", "12"]))

    labels = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "y-label"]
    assert labels == ["0", "12.5", "25", "37.5", "50"]
    tallest = Decimal(_bars(root)[0].get("height", ""))
    assert tallest == (PLOT_HEIGHT * 37 / 50).quantize(Decimal("0.01"))


def test_it_labels_periods_and_unit() -> None:
    root = _parse(_chart(["1", "2", "3"], unit="m3"))

    x_labels = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "x-label"]
    assert x_labels == ["M0", "M1", "M2"]
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "unit"] == ["m3"]
    # Each bar tells its value to screen readers and as a tooltip.
    assert [b.find(f"{SVG}title").text for b in _bars(root)] == [  # type: ignore[union-attr]
        "M0: 1 m3",
        "M1: 2 m3",
        "M2: 3 m3",
    ]


def test_it_is_accessible_and_has_no_style_attributes() -> None:
    svg = _chart(["4", "8"], title="Day <register>", desc="A & B")
    root = _parse(svg)

    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "c1-title c1-desc"
    assert root.find(f"{SVG}title").text == "Day <register>"  # type: ignore[union-attr]
    assert root.find(f"{SVG}desc").text == "A & B"  # type: ignore[union-attr]
    assert all("style" not in element.attrib for element in root.iter())
    assert "<style" not in svg


def test_it_gives_the_same_text_for_the_same_bars() -> None:
    assert _chart(["1.5", "2.25", "300"]) == _chart(["1.5", "2.25", "300"])


def test_it_draws_an_empty_period_without_bars() -> None:
    root = _parse(_chart([]))

    assert _bars(root) == []
    assert root.find(f"{SVG}title") is not None


def test_it_draws_negative_consumption_as_zero() -> None:
    root = _parse(_chart(["-5", "10"]))

    assert Decimal(_bars(root)[0].get("height", "")) == 0


@pytest.mark.django_db
def test_it_books_consumption_in_the_month_of_the_reading(
    register: Register, add_history: AddHistory
) -> None:
    add_history(
        register,
        [
            (date(2025, 12, 20), 999_900),  # before the chart: the starting index
            (date(2026, 1, 10), 999_950),
            (date(2026, 1, 25), 30),  # through the rollover: 80
            (date(2026, 3, 5), 130),
        ],
    )
    readings = list(Reading.objects.filter(register=register).order_by("read_on"))
    months = charts.month_starts(date(2026, 1, 1), date(2026, 3, 31))

    bars = charts.monthly_consumption(register, readings, months=months)

    assert [bar.value for bar in bars] == [Decimal(50 + 80), Decimal(0), Decimal(100)]
    assert len(bars) == 3


@pytest.mark.django_db
def test_it_uses_the_stored_consumption_and_the_multiplier(ct_register: Register) -> None:
    readings = [
        Reading(register=ct_register, value=Decimal(100), read_on=date(2026, 1, 1)),
        Reading(register=ct_register, value=Decimal(110), read_on=date(2026, 2, 1)),
        Reading(
            register=ct_register,
            value=Decimal(120),
            read_on=date(2026, 3, 1),
            consumption=Decimal(7),
        ),
    ]
    months = charts.month_starts(date(2026, 2, 1), date(2026, 3, 1))

    bars = charts.monthly_consumption(ct_register, readings, months=months)

    assert [bar.value for bar in bars] == [Decimal(400), Decimal(7)]
