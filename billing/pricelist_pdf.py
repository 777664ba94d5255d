"""Price lists as customers see them: the version in force, its prices, and the PDF.

The portal page and the PDF show the same rows, built here once. A version is
in force from its valid_from until its valid_to, or until the next published
version of the list starts (billing.models.PriceListVersion).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Prefetch
from django.utils import formats, timezone, translation

from billing.models import (
    ComponentKind,
    PriceComponent,
    PriceList,
    PriceListVersion,
    PriceTier,
    TierMode,
)
from portal.documents import render_pdf

PDF_TEMPLATE = "billing/portal/price_list_pdf.html"


def decimal_text(value: Decimal, *, min_places: int = 2) -> str:
    """A stored decimal without its padding zeros (0.800000 → 0.80), localised."""
    shown = value.normalize()
    exponent = shown.as_tuple().exponent
    if not isinstance(exponent, int) or exponent > -min_places:
        shown = value.quantize(Decimal(1).scaleb(-min_places))
    return formats.number_format(shown, use_l10n=True)


@dataclass(frozen=True)
class TierRow:
    from_quantity: str
    to_quantity: str  # "" for the last tier
    unit_price: str


@dataclass(frozen=True)
class ComponentRow:
    component: PriceComponent
    unit_price: str
    tiers: list[TierRow]

    @property
    def per_month(self) -> bool:
        # Consumption tiers count per month of the billed period.
        return self.component.kind == ComponentKind.PER_UNIT


@dataclass
class ShownVersion:
    """A published version with the day it ends (None: open-ended)."""

    version: PriceListVersion
    ends_on: date | None
    rows: list[ComponentRow] = field(default_factory=list)


@dataclass
class ShownPriceList:
    price_list: PriceList
    current: ShownVersion | None
    upcoming: ShownVersion | None


def _tier_rows(component: PriceComponent) -> list[TierRow]:
    tiers: list[PriceTier] = list(component.tiers.all())
    if component.tier_mode == TierMode.NONE or not tiers:
        return []
    # The component's own price runs from zero to the first tier.
    starts = [(Decimal(0), component.unit_price)] if tiers[0].from_quantity > 0 else []
    starts += [(tier.from_quantity, tier.unit_price) for tier in tiers]
    rows = []
    for index, (start, price) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else None
        rows.append(
            TierRow(
                from_quantity=decimal_text(start, min_places=0),
                to_quantity="" if end is None else decimal_text(end, min_places=0),
                unit_price=decimal_text(price),
            )
        )
    return rows


def _rows(version: PriceListVersion) -> list[ComponentRow]:
    return [
        ComponentRow(
            component=component,
            unit_price=decimal_text(component.unit_price),
            tiers=_tier_rows(component),
        )
        for component in version.components.all()
    ]


def _in_force(
    versions: list[PriceListVersion], today: date
) -> tuple[ShownVersion | None, ShownVersion | None]:
    """(the version in force today, the next one already published), from newest first."""
    current = upcoming = None
    for index, version in enumerate(versions):
        newer = versions[index - 1] if index else None
        ends_on = version.valid_to
        if newer is not None:
            before_newer = newer.valid_from - timedelta(days=1)
            ends_on = before_newer if ends_on is None else min(ends_on, before_newer)
        if version.valid_from > today:
            upcoming = ShownVersion(version, ends_on)
            continue
        if ends_on is None or ends_on >= today:
            current = ShownVersion(version, ends_on)
        break
    return current, upcoming


def _published_versions(*, with_prices: bool) -> Prefetch:
    versions = PriceListVersion.objects.published().order_by("price_list", "-valid_from")
    if with_prices:
        tiers = PriceTier.objects.order_by("from_quantity")
        components = PriceComponent.objects.order_by("position", "id").prefetch_related(
            Prefetch("tiers", queryset=tiers)
        )
        versions = versions.prefetch_related(Prefetch("components", queryset=components))
    return Prefetch("versions", queryset=versions, to_attr="published_versions")


def public_price_lists(today: date | None = None) -> list[ShownPriceList]:
    """Every public list with the version in force (two queries: lists, versions)."""
    today = today or timezone.localdate()
    lists = PriceList.objects.filter(is_public=True).prefetch_related(
        _published_versions(with_prices=False)
    )
    return [_shown(price_list, today) for price_list in lists]


def public_price_list(code: str, today: date | None = None) -> ShownPriceList | None:
    """One public list with the prices of its current and upcoming versions, else None.

    Four queries: the list, its published versions, their components, the tiers.
    """
    today = today or timezone.localdate()
    price_list = (
        PriceList.objects.filter(is_public=True, code=code)
        .prefetch_related(_published_versions(with_prices=True))
        .first()
    )
    if price_list is None:
        return None
    shown = _shown(price_list, today)
    for version in (shown.current, shown.upcoming):
        if version is not None:
            version.rows = _rows(version.version)
    return shown


def _shown(price_list: PriceList, today: date) -> ShownPriceList:
    versions: Iterable[PriceListVersion] = price_list.published_versions  # type: ignore[attr-defined]
    current, upcoming = _in_force(list(versions), today)
    return ShownPriceList(price_list=price_list, current=current, upcoming=upcoming)


def render_price_list_pdf(shown: ShownPriceList, *, language: str) -> bytes:
    """The price list (current and upcoming prices) as a PDF in ``language``."""
    with translation.override(language):
        # Re-format the numbers in the document's language.
        for version in (shown.current, shown.upcoming):
            if version is not None:
                version.rows = _rows(version.version)
        return render_pdf(
            PDF_TEMPLATE,
            {
                "shown": shown,
                "operator_name": settings.OPERATOR_NAME,
                "operator_address": settings.OPERATOR_ADDRESS,
                "printed_on": timezone.localdate(),
            },
        )


def pdf_filename(shown: ShownPriceList) -> str:
    version = shown.current or shown.upcoming
    suffix = f"-{version.version.valid_from.isoformat()}" if version else ""
    safe_code = "".join(c if c.isalnum() or c in "-_" else "-" for c in shown.price_list.code)
    return f"price-list-{safe_code}{suffix}.pdf"
