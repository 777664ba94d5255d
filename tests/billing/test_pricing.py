"""Pricing: rounding, tiers, proration, agreements, settlements, and the loader."""

from __future__ import annotations

import time
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import pricing
from billing.models import (
    ComponentKind,
    PriceAgreement,
    PriceComponent,
    PriceList,
    PriceListVersion,
    TariffAssignment,
)
from billing.pricing import (
    Agreement,
    Component,
    Consumption,
    TariffPeriod,
    Tier,
    VatRateRow,
    VatTable,
)
from meters.models import Service, SupplyPoint
from portal.models import Customer

D = Decimal
CENT = D("0.01")
VAT = VatTable([
    VatRateRow("standard", D("19"), date(2017, 1, 1), date(2025, 7, 31)),
    VatRateRow("standard", D("21"), date(2025, 8, 1)),
    VatRateRow("reduced", D("9"), date(2017, 1, 1)),
    VatRateRow("zero", D("0"), date(2017, 1, 1)),
])
JAN = (date(2026, 1, 1), date(2026, 1, 31))

quantities = st.decimals(min_value=D("0"), max_value=D("100000"), places=3)
prices = st.decimals(min_value=D("0"), max_value=D("1000"), places=6)
signed_nets = st.decimals(min_value=D("-100000"), max_value=D("100000"), places=2)
rates = st.sampled_from([D("0"), D("5"), D("9"), D("19"), D("21"), D("23"), D("8.5")])


def energy(price: str = "0.80", **extra: object) -> Component:
    fields: dict[str, object] = {
        "code": "energy", "name": "Energy", "kind": pricing.PER_UNIT, "unit": "kWh",
        "unit_price": D(price),
    }
    fields.update(extra)
    return Component(**fields)  # type: ignore[arg-type]


def standing(price: str = "12.00") -> Component:
    return Component(code="standing", name="Standing charge", kind=pricing.FIXED_PER_PERIOD,
                     unit="month", unit_price=D(price))


def one_tariff(*components: Component, start: date = JAN[0], end: date = JAN[1],
               price_list_id: int | None = 1) -> list[TariffPeriod]:
    return [TariffPeriod(start=start, end=end, components=components,
                         price_list_id=price_list_id)]


def price(components: tuple[Component, ...] | list[Component], quantities: dict[str, Decimal],
          *, start: date = JAN[0], end: date = JAN[1], agreements: list[Agreement] | None = None,
          activities: dict[str, Decimal] | None = None) -> pricing.PricedInvoice:
    return pricing.price_consumption(
        tariffs=one_tariff(*components, start=start, end=end),
        consumption=Consumption(start, end, quantities, activities or {}),
        currency="RON", vat=VAT, agreements=agreements or [],
    )


# --- rounding -------------------------------------------------------------------


def test_it_rounds_each_line_half_up_to_the_cent() -> None:
    priced = price([energy("0.124999")], {"1.8.0": D("1")})
    assert priced.lines[0].net_amount == D("0.12")
    priced = price([energy("0.125")], {"1.8.0": D("1")})
    assert priced.lines[0].net_amount == D("0.13")


def test_it_computes_vat_on_the_sum_of_nets_not_per_line() -> None:
    # 3 × 0.13 at 19 %: per line 0.0247 → 0.02 (0.06 in all); on the sum 0.39 → 0.0741 → 0.07.
    lines = [
        pricing.Line(description=f"x{n}", quantity=D("1"), unit="pcs", unit_price=D("0.13"),
                     net_amount=D("0.13"), vat_code="standard", vat_rate=D("19"))
        for n in range(3)
    ]
    priced = pricing.total_lines(lines, currency="EUR", period_start=JAN[0], period_end=JAN[1])
    assert priced.vat_total == D("0.07")
    assert sum(line.vat_amount for line in priced.lines) == D("0.07")
    assert priced.gross_total == D("0.46")


def test_it_uses_the_vat_rate_valid_on_the_last_day_of_the_period() -> None:
    july = price([energy("1")], {"t": D("100")}, start=date(2025, 7, 1), end=date(2025, 7, 31))
    across = price([energy("1")], {"t": D("100")}, start=date(2025, 7, 15),
                   end=date(2025, 8, 14))
    assert july.vat_groups[0].rate == D("19")
    assert across.vat_groups[0].rate == D("21")
    assert across.vat_total == D("21.00")


def test_it_refuses_a_vat_code_without_a_rate() -> None:
    with pytest.raises(pricing.PricingError, match="no VAT rate 'luxury'"):
        price([energy(vat_code="luxury")], {"t": D("1")})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(quantities, prices, st.sampled_from(["standard", "reduced", "zero"])),
                min_size=1, max_size=12))
def test_it_adds_totals_from_rounded_lines_and_per_rate_vat(
    items: list[tuple[Decimal, Decimal, str]],
) -> None:
    components = [
        Component(code=f"c{n}", name=f"C{n}", kind=pricing.PER_UNIT, unit="kWh",
                  unit_price=unit_price, vat_code=vat_code, register_code=f"r{n}")
        for n, (_q, unit_price, vat_code) in enumerate(items)
    ]
    priced = price(components, {f"r{n}": q for n, (q, _p, _v) in enumerate(items)})
    for line in priced.lines:
        assert line.net_amount == (line.quantity * line.unit_price).quantize(CENT, ROUND_HALF_UP)
        assert line.net_amount.as_tuple().exponent == -2
    assert priced.net_total == sum((line.net_amount for line in priced.lines), D(0))
    for group in priced.vat_groups:
        members = [line for line in priced.lines if line.vat_code == group.code]
        assert group.net == sum((line.net_amount for line in members), D(0))
        assert group.vat == (group.net * group.rate / 100).quantize(CENT, ROUND_HALF_UP)
        assert sum((line.vat_amount for line in members), D(0)) == group.vat
    assert priced.vat_total == sum((group.vat for group in priced.vat_groups), D(0))
    assert priced.gross_total == priced.net_total + priced.vat_total


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(signed_nets, rates), min_size=1, max_size=15))
def test_it_turns_every_sign_for_a_credit_note(items: list[tuple[Decimal, Decimal]]) -> None:
    lines = [
        pricing.Line(description="x", quantity=D("1"), unit="pcs", unit_price=net,
                     net_amount=net, vat_code=str(rate), vat_rate=rate)
        for net, rate in items
    ]
    priced = pricing.total_lines(lines, currency="EUR", period_start=JAN[0], period_end=JAN[1])
    negated_lines = [
        pricing.Line(description="x", quantity=D("-1"), unit="pcs", unit_price=net,
                     net_amount=-net, vat_code=str(rate), vat_rate=rate)
        for net, rate in items
    ]
    repriced = pricing.total_lines(negated_lines, currency="EUR", period_start=JAN[0],
                                   period_end=JAN[1])
    # HALF_UP rounds away from zero, so a credit note's VAT mirrors the invoice's exactly.
    assert repriced.vat_total == -priced.vat_total
    assert pricing.negate(priced).gross_total == -priced.gross_total == repriced.gross_total


def test_it_rounds_to_the_currency_minor_unit() -> None:
    assert pricing.round_money(D("1234.5"), "JPY") == D("1235")
    assert pricing.round_money(D("2.345"), "EUR") == D("2.35")
    with pytest.raises(pricing.PricingError):
        pricing.round_money(D("1"), "XXX")


# --- tiers ----------------------------------------------------------------------

TIERS = (Tier(D("100"), D("0.70")), Tier(D("300"), D("0.60")))


def test_it_prices_graduated_tiers_slice_by_slice() -> None:
    priced = price([energy("0.80", tier_mode=pricing.TIERS_GRADUATED, tiers=TIERS)],
                   {"t": D("350")})
    assert [(line.quantity, line.unit_price, line.net_amount) for line in priced.lines] == [
        (D("100"), D("0.80"), D("80.00")),
        (D("200"), D("0.70"), D("140.00")),
        (D("50"), D("0.60"), D("30.00")),
    ]
    assert [line.description for line in priced.lines] == [
        "Energy (0–100 kWh)", "Energy (100–300 kWh)", "Energy (> 300 kWh)",
    ]


def test_it_prices_volume_tiers_at_the_tier_the_quantity_falls_in() -> None:
    component = energy("0.80", tier_mode=pricing.TIERS_VOLUME, tiers=TIERS)
    assert price([component], {"t": D("99.999")}).lines[0].unit_price == D("0.80")
    assert price([component], {"t": D("100")}).lines[0].unit_price == D("0.70")
    high = price([component], {"t": D("350")})
    assert len(high.lines) == 1
    assert high.lines[0].net_amount == D("210.00")  # 350 × 0.60


tier_lists = st.lists(
    st.tuples(st.decimals(min_value=D("0.001"), max_value=D("10000"), places=3), prices),
    min_size=1, max_size=5, unique_by=lambda t: t[0],
)


@settings(max_examples=300, deadline=None)
@given(quantities, prices, tier_lists)
def test_it_adds_graduated_slices_up_to_the_whole_quantity(
    quantity: Decimal, base: Decimal, raw_tiers: list[tuple[Decimal, Decimal]],
) -> None:
    tiers = [Tier(start, unit_price) for start, unit_price in raw_tiers]
    slices = pricing.tier_slices(quantity, base, tiers, pricing.TIERS_GRADUATED)
    assert sum((s.quantity for s in slices), D(0)) == quantity
    assert all(s.quantity > 0 for s in slices) or quantity == 0
    # The priced total equals the sum of the rounded slices, line by line.
    priced = price([energy(str(base), tier_mode=pricing.TIERS_GRADUATED, tiers=tuple(tiers))],
                   {"t": quantity})
    expected = sum(((s.quantity * s.unit_price).quantize(CENT, ROUND_HALF_UP) for s in slices),
                   D(0))
    assert priced.net_total == expected


@settings(max_examples=300, deadline=None)
@given(quantities, st.lists(prices, min_size=2, max_size=5),
       st.lists(st.decimals(min_value=D("1"), max_value=D("5000"), places=3),
                min_size=4, max_size=4, unique=True))
def test_it_keeps_volume_below_graduated_when_prices_fall_and_above_when_they_rise(
    quantity: Decimal, tier_prices: list[Decimal], starts: list[Decimal],
) -> None:
    falling = sorted(tier_prices, reverse=True)
    bounds = sorted(starts)[: len(falling) - 1]
    tiers = [Tier(start, p) for start, p in zip(bounds, falling[1:], strict=True)]

    def exact(mode: str, base: Decimal, tiers: list[Tier]) -> Decimal:
        return sum((s.quantity * s.unit_price
                    for s in pricing.tier_slices(quantity, base, tiers, mode)), D(0))

    assert exact(pricing.TIERS_VOLUME, falling[0], tiers) <= exact(
        pricing.TIERS_GRADUATED, falling[0], tiers)
    rising = sorted(tier_prices)
    up = [Tier(start, p) for start, p in zip(bounds, rising[1:], strict=True)]
    assert exact(pricing.TIERS_VOLUME, rising[0], up) >= exact(
        pricing.TIERS_GRADUATED, rising[0], up)


def test_it_scales_monthly_tier_thresholds_with_the_period() -> None:
    component = energy("0.80", tier_mode=pricing.TIERS_GRADUATED, tiers=(Tier(D("100"), D("1")),))
    # Two whole months (Jan + Feb 2026): the first 200 kWh are at the base price.
    priced = price([component], {"t": D("250")}, start=date(2026, 1, 1), end=date(2026, 2, 28))
    assert [(line.quantity, line.unit_price) for line in priced.lines] == [
        (D("200"), D("0.80")), (D("50"), D("1")),
    ]
    # Half of April (15 of 30 days): the threshold is 50 kWh.
    half = price([component], {"t": D("60")}, start=date(2026, 4, 1), end=date(2026, 4, 15))
    assert [(line.quantity, line.unit_price) for line in half.lines] == [
        (D("50"), D("0.80")), (D("10"), D("1")),
    ]


# --- fixed components, proration -----------------------------------------------


def test_it_prorates_a_fixed_component_by_days_of_each_month() -> None:
    whole = price([standing("12.00")], {}, start=date(2026, 1, 1), end=date(2026, 12, 31))
    assert whole.lines[0].quantity == D("12.000")
    assert whole.net_total == D("144.00")
    # 15 Jan – 14 Feb 2026: 17/31 + 14/28 = 1.048387… → 1.048 months.
    part = price([standing("12.00")], {}, start=date(2026, 1, 15), end=date(2026, 2, 14))
    assert part.lines[0].quantity == D("1.048")
    assert part.net_total == D("12.58")  # 1.048 × 12.00 = 12.576
    # February of a leap year is a whole month too.
    leap = price([standing("12.00")], {}, start=date(2024, 2, 1), end=date(2024, 2, 29))
    assert leap.lines[0].quantity == D("1.000")


@settings(max_examples=200, deadline=None)
@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 1, 1)),
       st.integers(min_value=0, max_value=800))
def test_it_counts_months_additively(start: date, length: int) -> None:
    end = start + timedelta(days=length)
    middle = start + timedelta(days=length // 2)
    assert pricing.month_fraction(start, end) == (
        pricing.month_fraction(start, middle)
        + pricing.month_fraction(middle + timedelta(days=1), end)
    )
    assert Fraction(length + 1, 31) <= pricing.month_fraction(start, end) <= Fraction(
        length + 1, 28)


def test_it_splits_consumption_by_days_when_the_price_changes() -> None:
    old = TariffPeriod(start=date(2026, 1, 1), end=date(2026, 1, 10),
                       components=(energy("1.00"),), price_list_id=1, version_id=1)
    new = TariffPeriod(start=date(2026, 1, 11), end=date(2026, 1, 31),
                       components=(energy("2.00"),), price_list_id=1, version_id=2)
    priced = pricing.price_consumption(
        tariffs=[old, new], consumption=Consumption(*JAN, {"t": D("31")}),
        currency="EUR", vat=VAT,
    )
    assert [(line.quantity, line.net_amount) for line in priced.lines] == [
        (D("10.000"), D("10.00")), (D("21.000"), D("42.00")),
    ]


def test_it_refuses_a_period_the_tariffs_do_not_cover() -> None:
    with pytest.raises(pricing.PricingError, match="no price list on 2026-01-11"):
        pricing.price_consumption(
            tariffs=one_tariff(energy(), end=date(2026, 1, 10)),
            consumption=Consumption(*JAN, {"t": D("1")}), currency="EUR", vat=VAT,
        )


def test_it_prices_activities_and_skips_those_not_done() -> None:
    visit = Component(code="reconnection", name="Reconnection", kind=pricing.PER_ACTIVITY,
                      unit="visit", unit_price=D("50"))
    assert price([visit], {}, activities={"reconnection": D("2")}).net_total == D("100.00")
    assert price([visit], {}).lines == ()


def test_it_filters_consumption_by_register_code() -> None:
    day = energy("1.00", code="day", register_code="day")
    night = energy("0.50", code="night", register_code="night")
    both = energy("0.10", code="grid")
    priced = price([day, night, both], {"day": D("100"), "night": D("40")})
    assert [line.net_amount for line in priced.lines] == [D("100.00"), D("20.00"), D("14.00")]


# --- agreements -----------------------------------------------------------------


def test_it_lets_an_agreed_price_win_over_the_list_and_its_tiers() -> None:
    component = energy("0.80", tier_mode=pricing.TIERS_GRADUATED, tiers=TIERS)
    agreed = Agreement(valid_from=date(2025, 1, 1), component_code="energy",
                       unit_price=D("0.55"))
    priced = price([component, standing()], {"t": D("350")}, agreements=[agreed])
    assert [(line.component_code, line.unit_price) for line in priced.lines] == [
        ("energy", D("0.55")), ("standing", D("12.00")),
    ]


def test_it_applies_a_discount_to_every_tier_and_prefers_the_specific_agreement() -> None:
    component = energy("0.80", tier_mode=pricing.TIERS_VOLUME, tiers=TIERS)
    general = Agreement(valid_from=date(2025, 1, 1), discount_percent=D("10"))
    specific = Agreement(valid_from=date(2020, 1, 1), component_code="energy",
                         discount_percent=D("25"))
    priced = price([component, standing("12.00")], {"t": D("350")},
                   agreements=[general, specific])
    assert [line.unit_price for line in priced.lines] == [D("0.450000"), D("10.800000")]


def test_it_ignores_an_agreement_outside_its_dates_or_for_another_list() -> None:
    expired = Agreement(valid_from=date(2024, 1, 1), valid_to=date(2025, 12, 31),
                        component_code="energy", unit_price=D("0.10"))
    other_list = Agreement(valid_from=date(2024, 1, 1), price_list_id=99,
                           component_code="energy", unit_price=D("0.20"))
    priced = price([energy("0.80")], {"t": D("10")}, agreements=[expired, other_list])
    assert priced.lines[0].unit_price == D("0.80")


# --- settlement -----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(quantities, prices, st.decimals(min_value=D("0"), max_value=D("1000000"), places=2))
def test_it_settles_so_that_due_plus_advances_is_the_price(
    quantity: Decimal, unit_price: Decimal, advances: Decimal,
) -> None:
    priced = price([energy(str(unit_price)), standing()], {"t": quantity},
                   start=date(2025, 1, 1), end=date(2025, 12, 31))
    settlement = pricing.settle(priced, advances)
    assert settlement.amount_due + settlement.advances_paid == priced.gross_total
    assert settlement.is_refund == (advances > priced.gross_total)


def test_it_proposes_the_next_instalment_from_the_annualised_consumption() -> None:
    # Half a year (181 days) of 1,810 kWh → 3,650 kWh a year at 0.80 + 12 × 12.00 = 3,064.00
    # net, 21 % VAT → 3,707.44; monthly: 308.95… → 309.
    consumption = Consumption(date(2025, 1, 1), date(2025, 6, 30), {"t": D("1810")},
                              {"reconnection": D("1")})
    instalment = pricing.propose_instalment(
        consumption=consumption, tariff=one_tariff(energy("0.80"), standing())[0],
        currency="RON", vat=VAT, instalments_per_year=12, start=date(2025, 8, 1),
    )
    assert instalment == D("309")


def test_it_adds_months_clamping_to_the_month_end() -> None:
    assert pricing.add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert pricing.add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)
    assert pricing.add_months(date(2026, 1, 15), -1) == date(2025, 12, 15)


# --- speed ----------------------------------------------------------------------


def test_it_prices_more_than_a_thousand_invoices_a_second() -> None:
    components = (
        energy("0.80", code="day", register_code="day", tier_mode=pricing.TIERS_GRADUATED,
               tiers=TIERS),
        energy("0.45", code="night", register_code="night"),
        standing(),
    )
    tariffs = one_tariff(*components)
    started = time.perf_counter()
    for n in range(2000):
        pricing.price_consumption(
            tariffs=tariffs,
            consumption=Consumption(*JAN, {"day": D(200 + n % 300), "night": D(n % 97)}),
            currency="RON", vat=VAT,
        )
    assert time.perf_counter() - started < 2.0


# --- the loader -----------------------------------------------------------------


@pytest.mark.django_db
def test_it_loads_many_supply_points_in_a_fixed_number_of_queries(
    customer: Customer, other_customer: Customer, price_list: PriceList,
    django_assert_num_queries: object,
) -> None:
    points = [
        SupplyPoint.objects.create(
            customer=customer if n % 2 else other_customer, code=f"SP{n:04d}",
            service=Service.ELECTRICITY, street="Str. 1", postal_code="1", city="X",
        )
        for n in range(30)
    ]
    for point in points:
        TariffAssignment.objects.create(supply_point=point, price_list=price_list,
                                        valid_from=date(2025, 1, 1))
    PriceAgreement.objects.create(customer=customer, component_code="energy",
                                  unit_price=D("0.50"), valid_from=date(2025, 1, 1))
    periods = {point.pk: (date(2025, 3, 1), date(2025, 3, 31)) for point in points}
    # assignments (+ customer, currency); versions; tiers; components; agreements
    with django_assert_num_queries(5):  # type: ignore[operator]
        inputs = pricing.load_inputs(periods)
    assert len(inputs) == 30
    first, second = inputs[points[1].pk], inputs[points[0].pk]
    assert first.currency == "RON"
    assert [c.code for c in first.tariffs[0].components] == [
        "energy", "standing", "reconnection"]
    assert first.tariffs[0].components[0].tiers == (Tier(D("100.000"), D("0.900000")),)
    assert len(first.agreements) == 1 and second.agreements == ()


@pytest.mark.django_db
def test_it_loads_only_published_versions_and_splits_at_a_new_version(
    supply_point: SupplyPoint, price_list: PriceList,
) -> None:
    newer = PriceListVersion.objects.create(price_list=price_list, valid_from=date(2025, 3, 16))
    PriceComponent.objects.create(version=newer, code="energy", name="Energy",
                                  kind=ComponentKind.PER_UNIT, unit="kWh", unit_price=D("1"))
    period = {supply_point.pk: (date(2025, 3, 1), date(2025, 3, 31))}
    draft_only = pricing.load_inputs(period)[supply_point.pk]
    assert len(draft_only.tariffs) == 1  # the unpublished version is not used
    newer.published_at = timezone.now()
    newer.save()
    loaded = pricing.load_inputs(period)[supply_point.pk]
    assert [(t.start, t.end) for t in loaded.tariffs] == [
        (date(2025, 3, 1), date(2025, 3, 15)), (date(2025, 3, 16), date(2025, 3, 31)),
    ]
    vat = pricing.load_vat_table("RO")
    priced = pricing.price_consumption(
        tariffs=loaded.tariffs, consumption=Consumption(date(2025, 3, 1), date(2025, 3, 31),
                                                        {"1.8.0": D("31")}),
        currency=loaded.currency, vat=vat, agreements=loaded.agreements,
    )
    energy_lines = [line for line in priced.lines if line.component_code == "energy"]
    assert [(line.quantity, line.unit_price) for line in energy_lines] == [
        (D("15.000"), D("0.800000")), (D("16.000"), D("1.000000")),
    ]
