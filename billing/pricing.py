"""Pricing: consumption and a tariff in, invoice lines and totals out.

The core functions are pure (dataclasses in and out, no database) so a
billing run can price thousands of supply points a second; load_inputs()
turns database rows into those dataclasses in a fixed number of queries.

Rules (the house's, written once here):

* Periods are inclusive: [period_start, period_end], both days count.
* A line's net = quantity × unit price, rounded HALF_UP to the currency's
  minor unit. Quantities are first rounded HALF_UP to 3 decimals (what the
  invoice prints), so the printed quantity × printed price gives the net.
* VAT is computed per rate on the sum of that rate's line nets (EN 16931
  BT-117), rounded HALF_UP; each line carries its share, and the shares of
  a rate add up to that rate's VAT exactly. Total = net + VAT.
* The VAT rate is the one valid on the last day of the period (tax point of
  a continuous supply). The operator's country's rates apply.
* Fixed components are priced per month. A period counts, for every
  calendar month it touches, (days of the period in that month) / (days in
  that month): 15 Jan–14 Feb = 17/31 + 14/28 = 1.048 months.
* Tier thresholds of per-unit components are monthly quantities: for a
  period they are multiplied by the period's months (as above) and rounded
  to 3 decimals. Volume mode prices the whole quantity at the price of the
  tier it falls in; graduated mode prices each slice at its tier's price
  (one invoice line per slice). Below the first tier's threshold the
  component's own unit price applies. Tiers of per-activity components
  count activities per invoice and are not scaled.
* A price-list version runs from its valid_from until its valid_to or until
  the next published version starts. When the tariff changes inside the
  period (another price-list version or another price list), consumption is
  shared between the parts pro rata by days (3 decimals; the last part takes
  the remainder so the parts add up exactly). Activities are priced at the tariff of the last part.
* A customer's price agreement valid on a part's last day wins over the
  list: an agreed unit price replaces the component's price and its tiers;
  a discount lowers every price of the component (rounded to 6 decimals).
  The most specific agreement wins (a named component over all components,
  a named price list over any list), then the latest one.
* Advances and settlements: amount due = gross total − advances paid
  (negative: a refund). The next instalment = the price of the settled
  consumption annualised (× 365 / days of the period) over a year at the
  current tariff, divided by the instalments per year, rounded HALF_UP to a
  whole currency unit (round_to).
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

ZERO = Decimal("0")
HUNDRED = Decimal("100")
QUANTITY = Decimal("0.001")
PRICE = Decimal("0.000001")

# ISO 4217 minor units of the currencies we bill in. Amounts are stored with
# 2 decimals, so currencies with 3 (BHD, KWD…) are left out on purpose.
CURRENCY_EXPONENTS: dict[str, int] = {
    "EUR": 2, "RON": 2, "PLN": 2, "CZK": 2, "HUF": 2, "BGN": 2, "CHF": 2, "GBP": 2,
    "USD": 2, "SEK": 2, "DKK": 2, "NOK": 2, "RSD": 2, "MDL": 2, "UAH": 2, "RUB": 2,
    "ISK": 0, "JPY": 0,
}
_QUANTA: dict[str, Decimal] = {
    code: Decimal(1).scaleb(-exp) for code, exp in CURRENCY_EXPONENTS.items()
}

PER_UNIT = "per_unit"
FIXED_PER_PERIOD = "fixed_per_period"
PER_ACTIVITY = "per_activity"
TIERS_NONE = "none"
TIERS_VOLUME = "volume"
TIERS_GRADUATED = "graduated"


class PricingError(Exception):
    """The input cannot be priced (no tariff for a day, no VAT rate…)."""


# ---------------------------------------------------------------------------
# Rounding and calendar helpers


def minor_unit(currency: str) -> Decimal:
    try:
        return _QUANTA[currency]
    except KeyError:
        raise PricingError(f"unsupported currency {currency!r}") from None


def round_money(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(minor_unit(currency), ROUND_HALF_UP)


def round_quantity(quantity: Decimal) -> Decimal:
    return quantity.quantize(QUANTITY, ROUND_HALF_UP)


def _round_fraction(value: Fraction, places: int) -> Decimal:
    """Round an exact fraction HALF_UP (away from zero) to `places` decimals."""
    scale = 10**places
    scaled = abs(value) * scale
    whole, rest = divmod(scaled.numerator, scaled.denominator)
    if 2 * rest >= scaled.denominator:
        whole += 1
    return Decimal(-whole if value < 0 else whole).scaleb(-places)


def days_between(start: date, end: date) -> int:
    """Days of the inclusive period [start, end]."""
    return (end - start).days + 1


def month_fraction(start: date, end: date) -> Fraction:
    """How many months [start, end] is, month by calendar month (exact)."""
    if end < start:
        return Fraction(0)
    total = Fraction(0)
    day = start
    while day <= end:
        length = calendar.monthrange(day.year, day.month)[1]
        month_end = date(day.year, day.month, length)
        last = min(end, month_end)
        total += Fraction(days_between(day, last), length)
        day = month_end + timedelta(days=1)
    return total


def months_in(start: date, end: date) -> Decimal:
    """month_fraction rounded to 3 decimals: the quantity a fixed line prints."""
    return _round_fraction(month_fraction(start, end), 3)


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end (31 Jan + 1 = 28/29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


# ---------------------------------------------------------------------------
# Input dataclasses


@dataclass(frozen=True, slots=True)
class Tier:
    from_quantity: Decimal
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class Component:
    code: str
    name: str
    kind: str
    unit: str
    unit_price: Decimal
    vat_code: str = "standard"
    register_code: str = ""
    tier_mode: str = TIERS_NONE
    tiers: tuple[Tier, ...] = ()
    id: int | None = None


@dataclass(frozen=True, slots=True)
class TariffPeriod:
    """One price-list version in force over [start, end] (part of a billing period)."""

    start: date
    end: date
    components: tuple[Component, ...]
    price_list_id: int | None = None
    version_id: int | None = None


@dataclass(frozen=True, slots=True)
class Agreement:
    valid_from: date
    valid_to: date | None = None
    component_code: str = ""
    price_list_id: int | None = None
    unit_price: Decimal | None = None
    discount_percent: Decimal | None = None

    def applies(self, component: Component, tariff: TariffPeriod) -> bool:
        day = tariff.end
        return (
            self.valid_from <= day
            and (self.valid_to is None or day <= self.valid_to)
            and (self.component_code in ("", component.code))
            and (self.price_list_id is None or self.price_list_id == tariff.price_list_id)
        )

    @property
    def specificity(self) -> tuple[bool, bool, date]:
        return (self.component_code != "", self.price_list_id is not None, self.valid_from)


@dataclass(frozen=True, slots=True)
class VatRateRow:
    code: str
    rate: Decimal
    valid_from: date
    valid_to: date | None = None


class VatTable:
    """The VAT rates of one country, looked up by code and day."""

    __slots__ = ("_by_code",)

    def __init__(self, rows: Iterable[VatRateRow]) -> None:
        by_code: dict[str, list[VatRateRow]] = defaultdict(list)
        for row in rows:
            by_code[row.code].append(row)
        for rows_of_code in by_code.values():
            rows_of_code.sort(key=lambda r: r.valid_from, reverse=True)
        self._by_code = dict(by_code)

    def rate(self, code: str, day: date) -> Decimal:
        for row in self._by_code.get(code, ()):
            if row.valid_from <= day and (row.valid_to is None or day <= row.valid_to):
                return row.rate
        raise PricingError(f"no VAT rate {code!r} on {day}")


@dataclass(frozen=True, slots=True)
class Consumption:
    """What to price: quantities per register code and activities per component code."""

    period_start: date
    period_end: date
    quantities: Mapping[str, Decimal] = field(default_factory=dict)
    activities: Mapping[str, Decimal] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# Output dataclasses


@dataclass(slots=True)
class Line:
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    net_amount: Decimal
    vat_code: str
    vat_rate: Decimal
    vat_amount: Decimal = ZERO
    component_code: str = ""
    component_id: int | None = None
    register_code: str = ""
    period_start: date | None = None
    period_end: date | None = None


@dataclass(frozen=True, slots=True)
class VatGroup:
    code: str
    rate: Decimal
    net: Decimal
    vat: Decimal


@dataclass(frozen=True, slots=True)
class PricedInvoice:
    currency: str
    period_start: date
    period_end: date
    lines: tuple[Line, ...]
    vat_groups: tuple[VatGroup, ...]
    net_total: Decimal
    vat_total: Decimal
    gross_total: Decimal


# ---------------------------------------------------------------------------
# Tiers


@dataclass(frozen=True, slots=True)
class Slice:
    lower: Decimal
    upper: Decimal | None
    quantity: Decimal
    unit_price: Decimal


def _steps(base_price: Decimal, tiers: Sequence[Tier], scale: Fraction | None) -> list[Tier]:
    steps: dict[Decimal, Decimal] = {ZERO: base_price}
    for tier in tiers:
        start = tier.from_quantity
        if scale is not None and start:
            start = _round_fraction(Fraction(start) * scale, 3)
        steps[start] = tier.unit_price
    return [Tier(start, price) for start, price in sorted(steps.items())]


def tier_slices(
    quantity: Decimal,
    base_price: Decimal,
    tiers: Sequence[Tier],
    mode: str,
    scale: Fraction | None = None,
) -> list[Slice]:
    """Split a quantity into priced slices according to the tier mode.

    scale multiplies the tier thresholds (months in the period for monthly tiers).
    """
    if mode == TIERS_NONE or not tiers:
        return [Slice(ZERO, None, quantity, base_price)]
    steps = _steps(base_price, tiers, scale)
    if quantity <= 0:
        return [Slice(ZERO, steps[1].from_quantity if len(steps) > 1 else None,
                      quantity, steps[0].unit_price)]
    if mode == TIERS_VOLUME:
        chosen = 0
        for index, step in enumerate(steps):
            if step.from_quantity <= quantity:
                chosen = index
        upper = steps[chosen + 1].from_quantity if chosen + 1 < len(steps) else None
        return [Slice(steps[chosen].from_quantity, upper, quantity, steps[chosen].unit_price)]
    if mode != TIERS_GRADUATED:
        raise PricingError(f"unknown tier mode {mode!r}")
    slices = []
    for index, step in enumerate(steps):
        lower = step.from_quantity
        if quantity <= lower:
            break
        upper = steps[index + 1].from_quantity if index + 1 < len(steps) else None
        top = quantity if upper is None or quantity < upper else upper
        slices.append(Slice(lower, upper, top - lower, step.unit_price))
    return slices


# ---------------------------------------------------------------------------
# Pricing


def _effective(
    component: Component, tariff: TariffPeriod, agreements: Sequence[Agreement]
) -> tuple[Decimal, tuple[Tier, ...], str]:
    """(unit price, tiers, tier mode) after the customer's agreement, if any."""
    best: Agreement | None = None
    for agreement in agreements:
        if agreement.applies(component, tariff) and (
            best is None or agreement.specificity > best.specificity
        ):
            best = agreement
    if best is None:
        return component.unit_price, component.tiers, component.tier_mode
    if best.unit_price is not None:
        return best.unit_price, (), TIERS_NONE
    assert best.discount_percent is not None
    keep = (HUNDRED - best.discount_percent) / HUNDRED

    def cut(price: Decimal) -> Decimal:
        return (price * keep).quantize(PRICE, ROUND_HALF_UP)

    tiers = tuple(Tier(t.from_quantity, cut(t.unit_price)) for t in component.tiers)
    return cut(component.unit_price), tiers, component.tier_mode


def _fmt(quantity: Decimal) -> str:
    text = f"{quantity.normalize():f}"
    return text


def _slice_label(name: str, piece: Slice, unit: str, many: bool) -> str:
    if not many:
        return name
    if piece.upper is None:
        return f"{name} (> {_fmt(piece.lower)} {unit})"
    return f"{name} ({_fmt(piece.lower)}–{_fmt(piece.upper)} {unit})"


def _split_by_days(
    quantity: Decimal, tariffs: Sequence[TariffPeriod], total_days: int
) -> list[Decimal]:
    if len(tariffs) == 1:
        return [quantity]
    shares: list[Decimal] = []
    left = quantity
    for tariff in tariffs[:-1]:
        share = _round_fraction(
            Fraction(quantity) * Fraction(days_between(tariff.start, tariff.end), total_days), 3
        )
        shares.append(share)
        left -= share
    shares.append(left)
    return shares


def _quantity_of(component: Component, quantities: Mapping[str, Decimal]) -> Decimal:
    if component.register_code:
        return quantities.get(component.register_code, ZERO)
    return sum(quantities.values(), ZERO)


def _check_coverage(tariffs: Sequence[TariffPeriod], start: date, end: date) -> None:
    if not tariffs:
        raise PricingError(f"no price list from {start}")
    expected = start
    for tariff in tariffs:
        if tariff.start != expected:
            raise PricingError(f"no price list on {expected}")
        if tariff.end < tariff.start:
            raise PricingError(f"empty tariff period at {tariff.start}")
        expected = tariff.end + timedelta(days=1)
    if tariffs[-1].end != end:
        raise PricingError(f"no price list on {expected}")


def price_lines(
    *,
    tariffs: Sequence[TariffPeriod],
    consumption: Consumption,
    currency: str,
    agreements: Sequence[Agreement] = (),
) -> list[Line]:
    """The invoice lines (without VAT amounts) for a consumption.

    tariffs cover the consumption period day by day, in order.
    """
    start, end = consumption.period_start, consumption.period_end
    _check_coverage(tariffs, start, end)
    quantum = minor_unit(currency)
    total_days = days_between(start, end)
    lines: list[Line] = []
    split: dict[str, list[Decimal]] = {}
    last = len(tariffs) - 1
    for index, tariff in enumerate(tariffs):
        months: Fraction | None = None
        for component in tariff.components:
            kind = component.kind
            if kind == PER_UNIT:
                key = component.register_code or "*"
                if key not in split:
                    whole = round_quantity(_quantity_of(component, consumption.quantities))
                    split[key] = _split_by_days(whole, tariffs, total_days)
                quantity = split[key][index]
                if not quantity:
                    continue
                if months is None:
                    months = month_fraction(tariff.start, tariff.end)
                scale: Fraction | None = months
            elif kind == FIXED_PER_PERIOD:
                if months is None:
                    months = month_fraction(tariff.start, tariff.end)
                quantity = _round_fraction(months, 3)
                scale = None
            elif kind == PER_ACTIVITY:
                if index != last:
                    continue
                quantity = round_quantity(consumption.activities.get(component.code, ZERO))
                if not quantity:
                    continue
                scale = None
            else:
                raise PricingError(f"unknown component kind {kind!r}")
            price, tiers, mode = _effective(component, tariff, agreements)
            if kind == FIXED_PER_PERIOD:
                mode = TIERS_NONE
            pieces = tier_slices(quantity, price, tiers, mode, scale)
            many = len(pieces) > 1 or (mode == TIERS_GRADUATED and bool(tiers))
            for piece in pieces:
                lines.append(Line(
                    description=_slice_label(component.name, piece, component.unit, many),
                    quantity=piece.quantity,
                    unit=component.unit,
                    unit_price=piece.unit_price,
                    net_amount=(piece.quantity * piece.unit_price).quantize(
                        quantum, ROUND_HALF_UP
                    ),
                    vat_code=component.vat_code,
                    vat_rate=ZERO,
                    component_code=component.code,
                    component_id=component.id,
                    register_code=component.register_code,
                    period_start=tariff.start,
                    period_end=tariff.end,
                ))
    return lines


def total_lines(
    lines: Sequence[Line],
    *,
    currency: str,
    vat: VatTable | None = None,
    tax_date: date | None = None,
    period_start: date,
    period_end: date,
) -> PricedInvoice:
    """VAT per rate on the sum of its lines' nets, shared out to the lines; totals.

    With vat, each line's rate is looked up by its vat_code on tax_date;
    without, the lines' vat_rate is taken as it is.
    """
    quantum = minor_unit(currency)
    day = tax_date or period_end
    groups: dict[tuple[str, Decimal], list[Line]] = {}
    for line in lines:
        if vat is not None:
            line.vat_rate = vat.rate(line.vat_code, day)
        groups.setdefault((line.vat_code, line.vat_rate), []).append(line)
    vat_groups: list[VatGroup] = []
    net_total = vat_total = ZERO
    for (code, rate), members in groups.items():
        net = sum((line.net_amount for line in members), ZERO)
        tax = (net * rate / HUNDRED).quantize(quantum, ROUND_HALF_UP)
        shares = ZERO
        biggest = members[0]
        for line in members:
            line.vat_amount = (line.net_amount * rate / HUNDRED).quantize(quantum, ROUND_HALF_UP)
            shares += line.vat_amount
            if abs(line.net_amount) > abs(biggest.net_amount):
                biggest = line
        # The lines' rounded shares can miss the rate's VAT by a few minor units:
        # the biggest line absorbs the difference so the shares add up.
        biggest.vat_amount += tax - shares
        vat_groups.append(VatGroup(code, rate, net, tax))
        net_total += net
        vat_total += tax
    vat_groups.sort(key=lambda g: (-g.rate, g.code))
    return PricedInvoice(
        currency=currency,
        period_start=period_start,
        period_end=period_end,
        lines=tuple(lines),
        vat_groups=tuple(vat_groups),
        net_total=net_total,
        vat_total=vat_total,
        gross_total=net_total + vat_total,
    )


def price_consumption(
    *,
    tariffs: Sequence[TariffPeriod],
    consumption: Consumption,
    currency: str,
    vat: VatTable,
    agreements: Sequence[Agreement] = (),
    tax_date: date | None = None,
) -> PricedInvoice:
    """Price a consumption: lines, VAT per rate, totals."""
    lines = price_lines(
        tariffs=tariffs, consumption=consumption, currency=currency, agreements=agreements
    )
    return total_lines(
        lines, currency=currency, vat=vat, tax_date=tax_date,
        period_start=consumption.period_start, period_end=consumption.period_end,
    )


def negate(priced: PricedInvoice) -> PricedInvoice:
    """The same document with every amount's sign turned (a credit note)."""
    lines = tuple(
        Line(
            description=line.description, quantity=-line.quantity, unit=line.unit,
            unit_price=line.unit_price, net_amount=-line.net_amount, vat_code=line.vat_code,
            vat_rate=line.vat_rate, vat_amount=-line.vat_amount,
            component_code=line.component_code, component_id=line.component_id,
            register_code=line.register_code, period_start=line.period_start,
            period_end=line.period_end,
        )
        for line in priced.lines
    )
    groups = tuple(VatGroup(g.code, g.rate, -g.net, -g.vat) for g in priced.vat_groups)
    return PricedInvoice(
        currency=priced.currency, period_start=priced.period_start,
        period_end=priced.period_end, lines=lines, vat_groups=groups,
        net_total=-priced.net_total, vat_total=-priced.vat_total,
        gross_total=-priced.gross_total,
    )


# ---------------------------------------------------------------------------
# Settlements and advances


@dataclass(frozen=True, slots=True)
class Settlement:
    priced: PricedInvoice
    advances_paid: Decimal
    # gross − advances paid: positive is to pay, negative is a refund.
    amount_due: Decimal

    @property
    def is_refund(self) -> bool:
        return self.amount_due < 0


def settle(priced: PricedInvoice, advances_paid: Decimal) -> Settlement:
    """Deduct the advances paid from the price of the actual consumption."""
    advances = round_money(advances_paid, priced.currency)
    return Settlement(priced, advances, priced.gross_total - advances)


def annualise(consumption: Consumption, start: date) -> Consumption:
    """The consumption scaled to a year (× 365 / days), for a year from `start`.

    Activities are one-offs and are left out.
    """
    days = days_between(consumption.period_start, consumption.period_end)
    factor = Fraction(365, days)
    return Consumption(
        period_start=start,
        period_end=add_months(start, 12) - timedelta(days=1),
        quantities={
            code: _round_fraction(Fraction(q) * factor, 3)
            for code, q in consumption.quantities.items()
        },
    )


def propose_instalment(
    *,
    consumption: Consumption,
    tariff: TariffPeriod,
    currency: str,
    vat: VatTable,
    instalments_per_year: int,
    start: date,
    agreements: Sequence[Agreement] = (),
    round_to: Decimal = Decimal("1"),
) -> Decimal:
    """The advance per instalment for a year from `start`, from the settled consumption.

    The tariff in force at the end of the settled period prices the year.
    """
    if instalments_per_year <= 0:
        raise PricingError("instalments_per_year must be positive")
    year = annualise(consumption, start)
    yearly = TariffPeriod(
        start=year.period_start, end=year.period_end, components=tariff.components,
        price_list_id=tariff.price_list_id, version_id=tariff.version_id,
    )
    priced = price_consumption(
        tariffs=[yearly], consumption=year, currency=currency, vat=vat, agreements=agreements,
    )
    per = (priced.gross_total / instalments_per_year).quantize(round_to, ROUND_HALF_UP)
    return max(per, ZERO)


# ---------------------------------------------------------------------------
# Loading from the database


@dataclass(frozen=True, slots=True)
class PricingInput:
    """Everything pricing needs for one supply point, from load_inputs()."""

    supply_point_id: int
    customer_id: int | None
    currency: str
    tariffs: tuple[TariffPeriod, ...]
    agreements: tuple[Agreement, ...]


def load_vat_table(country: str | None = None) -> VatTable:
    """The VAT rates of the operator's country (settings.OPERATOR_COUNTRY, default RO)."""
    from django.conf import settings

    from billing.models import VatRate

    country = country or getattr(settings, "OPERATOR_COUNTRY", "RO")
    return VatTable(
        VatRateRow(code, rate, valid_from, valid_to)
        for code, rate, valid_from, valid_to in VatRate.objects.filter(
            country=country
        ).values_list("code", "rate", "valid_from", "valid_to")
    )


def load_inputs(periods: Mapping[int, tuple[date, date]]) -> dict[int, PricingInput]:
    """Tariffs and agreements of many supply points in five queries.

    periods maps supply point id → (period_start, period_end). A supply point
    whose period is not wholly covered gets the tariffs it has; pricing then
    raises PricingError naming the first uncovered day.
    """
    from billing.models import (
        PriceAgreement,
        PriceComponent,
        PriceListVersion,
        PriceTier,
        TariffAssignment,
    )

    if not periods:
        return {}
    first = min(start for start, _end in periods.values())
    last = max(end for _start, end in periods.values())

    # 1. Assignments with the customer and the list's currency.
    assignments: dict[int, list[tuple[date, int, str]]] = defaultdict(list)
    customers: dict[int, int] = {}
    for sp_id, valid_from, list_id, currency, customer_id in (
        TariffAssignment.objects.filter(supply_point_id__in=list(periods), valid_from__lte=last)
        .order_by("supply_point_id", "valid_from")
        .values_list("supply_point_id", "valid_from", "price_list_id",
                     "price_list__currency", "supply_point__customer_id")
    ):
        assignments[sp_id].append((valid_from, list_id, currency))
        customers[sp_id] = customer_id
    list_ids = {list_id for rows in assignments.values() for _d, list_id, _c in rows}

    # 2. Published versions of those lists; a version runs until its valid_to or
    # until the next version starts, whichever comes first.
    versions: dict[int, list[tuple[date, date | None, int]]] = defaultdict(list)
    for version_id, list_id, valid_from, valid_to in (
        PriceListVersion.objects.published()
        .filter(price_list_id__in=list_ids, valid_from__lte=last)
        .order_by("price_list_id", "valid_from")
        .values_list("id", "price_list_id", "valid_from", "valid_to")
    ):
        of_list = versions[list_id]
        if of_list and (of_list[-1][1] is None or of_list[-1][1] >= valid_from):
            of_list[-1] = (of_list[-1][0], valid_from - timedelta(days=1), of_list[-1][2])
        of_list.append((valid_from, valid_to, version_id))
    for list_id, of_list in versions.items():
        versions[list_id] = [row for row in of_list if row[1] is None or row[1] >= first]
    version_ids = [v for rows in versions.values() for _f, _t, v in rows]

    # 3. Their tiers, then 4. their components.
    tiers: dict[int, list[Tier]] = defaultdict(list)
    for component_id, from_quantity, unit_price in (
        PriceTier.objects.filter(component__version_id__in=version_ids)
        .order_by("component_id", "from_quantity")
        .values_list("component_id", "from_quantity", "unit_price")
    ):
        tiers[component_id].append(Tier(from_quantity, unit_price))
    components: dict[int, list[Component]] = defaultdict(list)
    for (c_id, version_id, code, name, kind, unit, unit_price, vat_code, register_code,
         tier_mode) in (
        PriceComponent.objects.filter(version_id__in=version_ids)
        .order_by("version_id", "position", "id")
        .values_list("id", "version_id", "code", "name", "kind", "unit", "unit_price",
                     "vat_code", "register_code", "tier_mode")
    ):
        components[version_id].append(Component(
            id=c_id, code=code, name=name, kind=kind, unit=unit, unit_price=unit_price,
            vat_code=vat_code, register_code=register_code, tier_mode=tier_mode,
            tiers=tuple(tiers.get(c_id, ())),
        ))
    frozen = {v: tuple(rows) for v, rows in components.items()}

    # 5. Agreements of the customers.
    agreements: dict[int, list[Agreement]] = defaultdict(list)
    for customer_id, list_id, code, price, discount, valid_from, valid_to in (
        PriceAgreement.objects.filter(customer_id__in=set(customers.values()))
        .overlapping(first, last)
        .values_list("customer_id", "price_list_id", "component_code", "unit_price",
                     "discount_percent", "valid_from", "valid_to")
    ):
        agreements[customer_id].append(Agreement(
            valid_from=valid_from, valid_to=valid_to, component_code=code,
            price_list_id=list_id, unit_price=price, discount_percent=discount,
        ))

    result: dict[int, PricingInput] = {}
    for sp_id, (start, end) in periods.items():
        assigned = assignments.get(sp_id, [])
        parts: list[TariffPeriod] = []
        currencies = set()
        for index, (valid_from, list_id, currency) in enumerate(assigned):
            until = (
                assigned[index + 1][0] - timedelta(days=1) if index + 1 < len(assigned) else end
            )
            lo, hi = max(start, valid_from), min(end, until)
            if lo > hi:
                continue
            currencies.add(currency)
            for v_from, v_to, version_id in versions.get(list_id, ()):
                a, b = max(lo, v_from), min(hi, v_to or hi)
                if a <= b:
                    parts.append(TariffPeriod(
                        start=a, end=b, components=frozen.get(version_id, ()),
                        price_list_id=list_id, version_id=version_id,
                    ))
        if len(currencies) > 1:
            raise PricingError(f"supply point {sp_id}: price lists in several currencies")
        owner = customers.get(sp_id)
        result[sp_id] = PricingInput(
            supply_point_id=sp_id,
            customer_id=owner,
            currency=currencies.pop() if currencies else "",
            tariffs=tuple(parts),
            agreements=tuple(agreements.get(owner, ())) if owner else (),
        )
    return result
