"""Shared fixtures for the receivables tests.

series     default series FV (invoices), CN (credit notes), AV (advance requests)
issue      issue(customer, "121.00", due=date(…)) → an issued EUR invoice of that gross
           amount (one line at 21 % VAT), with its RF payment reference stored
bank       a bank-account collector "bank" (EUR, camt/MT940 statements)
post       a post-office collector "posta" with the semicolon CSV layout (EUR)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import pytest

from billing import pricing, services
from billing.models import Invoice, InvoiceSeries, SeriesKind
from billing.references import ReferenceSettings, Scheme, reference_for
from portal.models import Customer
from receivables.models import Collector, CollectorKind

D = Decimal
Issue = Callable[..., Invoice]


@pytest.fixture
def series(db: None) -> dict[str, InvoiceSeries]:
    return {
        kind: InvoiceSeries.objects.get_or_create(
            code=prefix, defaults={"prefix": prefix, "kind": kind, "is_default": True}
        )[0]
        for kind, prefix in [
            (SeriesKind.INVOICE, "FV"), (SeriesKind.CREDIT_NOTE, "CN"), (SeriesKind.ADVANCE, "AV"),
        ]
    }


@pytest.fixture
def issue(series: dict[str, InvoiceSeries]) -> Issue:
    def factory(
        customer: Customer, gross: str, *, due: date = date(2026, 10, 15),
        issued: date = date(2026, 10, 1),
    ) -> Invoice:
        gross_amount = D(gross)
        net = (gross_amount / D("1.21")).quantize(D("0.01"), ROUND_HALF_UP)
        priced = pricing.total_lines(
            [
                pricing.Line(
                    description="Energy", quantity=D("1"), unit="pcs", unit_price=net,
                    net_amount=net, vat_code="standard", vat_rate=D("21"),
                )
            ],
            currency="EUR", period_start=date(2026, 9, 1), period_end=date(2026, 9, 30),
        )
        draft = services.create_draft_invoice(customer=customer, priced=priced)
        invoice = services.issue_invoice(
            invoice=draft, issued_by=None, issue_date=issued, due_date=due
        )
        invoice.payment_reference = reference_for(
            Scheme.RF, customer_number=customer.number,
            document_number=invoice.document_number, amount=invoice.amount_due,
            due_date=due, settings=ReferenceSettings(),
        ).value
        invoice.save(update_fields=["payment_reference", "updated_at"])
        return invoice

    return factory


@pytest.fixture
def bank(db: None) -> Collector:
    return Collector.objects.create(
        code="bank", name="Main bank account", kind=CollectorKind.BANK,
        account="RO49AAAA1B31007593840000", currency="EUR",
    )


@pytest.fixture
def post(db: None) -> Collector:
    from receivables.formats.collector import SEMICOLON_CSV

    return Collector.objects.create(
        code="posta", name="Post office counters", kind=CollectorKind.POST_OFFICE,
        layout={**SEMICOLON_CSV.to_dict(), "currency": "EUR"},
        currency="EUR", report_days=1, account="RO66BACX0000001234567890",
    )
