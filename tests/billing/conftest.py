"""Shared fixtures for the billing tests.

supply_point   an electricity supply point of `customer`
vat            RO VAT: standard 19 % until 2025-07-31, 21 % from 2025-08-01; reduced 9 %
series         default series: FV (invoices), CN (credit notes), AV (advance requests)
price_list     "RES-E" in RON: energy 0.80/kWh (graduated monthly tiers: 100+ kWh at 0.90),
               a 12.00/month standing charge and a 50.00 reconnection (per activity);
               one published version from 2025-01-01, assigned to `supply_point`
make_draft     make_draft(customer, [(net, vat %), ...]) → a draft invoice with those lines
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import pricing, services
from billing.models import (
    ComponentKind,
    Invoice,
    InvoiceSeries,
    PriceComponent,
    PriceList,
    PriceListVersion,
    PriceTier,
    SeriesKind,
    TariffAssignment,
    TierMode,
    VatRate,
)
from meters.models import Service, SupplyPoint
from portal.models import Customer

D = Decimal
MakeDraft = Callable[[Customer, Sequence[tuple[str, str]]], Invoice]


@pytest.fixture
def supply_point(customer: Customer) -> SupplyPoint:
    return SupplyPoint.objects.create(
        customer=customer,
        code="RO005E000000000001",
        service=Service.ELECTRICITY,
        street="Str. Lalelelor 5",
        postal_code="010101",
        city="București",
    )


@pytest.fixture
def vat(db: None) -> None:
    VatRate.objects.create(
        country="RO", code="standard", rate=D("19"),
        valid_from=date(2017, 1, 1), valid_to=date(2025, 7, 31),
    )
    VatRate.objects.create(country="RO", code="standard", rate=D("21"),
                           valid_from=date(2025, 8, 1))
    VatRate.objects.create(country="RO", code="reduced", rate=D("9"), valid_from=date(2017, 1, 1))


@pytest.fixture
def series(db: None) -> dict[str, InvoiceSeries]:
    return {
        kind: InvoiceSeries.objects.create(code=prefix, prefix=prefix, kind=kind, is_default=True)
        for kind, prefix in [
            (SeriesKind.INVOICE, "FV"), (SeriesKind.CREDIT_NOTE, "CN"), (SeriesKind.ADVANCE, "AV"),
        ]
    }


@pytest.fixture
def price_list(supply_point: SupplyPoint, vat: None) -> PriceList:
    price_list = PriceList.objects.create(
        code="RES-E", name="Residential electricity", service=Service.ELECTRICITY,
        currency="RON",
    )
    version = PriceListVersion.objects.create(price_list=price_list, valid_from=date(2025, 1, 1))
    energy = PriceComponent.objects.create(
        version=version, position=1, code="energy", name="Energy", kind=ComponentKind.PER_UNIT,
        unit="kWh", unit_price=D("0.80"), tier_mode=TierMode.GRADUATED,
    )
    PriceTier.objects.create(component=energy, from_quantity=D("100"), unit_price=D("0.90"))
    PriceComponent.objects.create(
        version=version, position=2, code="standing", name="Standing charge",
        kind=ComponentKind.FIXED_PER_PERIOD, unit="month", unit_price=D("12.00"),
    )
    PriceComponent.objects.create(
        version=version, position=3, code="reconnection", name="Reconnection",
        kind=ComponentKind.PER_ACTIVITY, unit="visit", unit_price=D("50.00"),
    )
    version.published_at = timezone.make_aware(datetime(2024, 12, 1))
    version.save()
    TariffAssignment.objects.create(
        supply_point=supply_point, price_list=price_list, valid_from=date(2024, 1, 1)
    )
    return price_list


@pytest.fixture
def make_draft(series: dict[str, InvoiceSeries]) -> MakeDraft:
    def factory(customer: Customer, lines: Sequence[tuple[str, str]]) -> Invoice:
        priced = pricing.total_lines(
            [
                pricing.Line(
                    description=f"Item {n}", quantity=D("1"), unit="pcs", unit_price=D(net),
                    net_amount=D(net), vat_code=f"r{rate}", vat_rate=D(rate),
                )
                for n, (net, rate) in enumerate(lines, start=1)
            ],
            currency="EUR", period_start=date(2026, 1, 1), period_end=date(2026, 1, 31),
        )
        return services.create_draft_invoice(customer=customer, priced=priced)

    return factory
