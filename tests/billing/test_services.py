"""Drafts, issue, credit notes and advance schedules."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import time_machine

from billing import pricing, services
from billing.models import (
    AdvanceSchedule,
    Frequency,
    Invoice,
    InvoiceKind,
    InvoiceSeries,
    InvoiceStatus,
    PriceAgreement,
    PriceList,
    ScheduleStatus,
    SeriesKind,
)
from meters.models import SupplyPoint
from portal.models import AuditEvent, Customer, User
from portal.roles import Role
from portal.services import ServiceError
from tests.billing.conftest import MakeDraft

D = Decimal
pytestmark = pytest.mark.django_db


def price_march(supply_point: SupplyPoint, kwh: str) -> pricing.PricedInvoice:
    period = (date(2025, 3, 1), date(2025, 3, 31))
    loaded = pricing.load_inputs({supply_point.pk: period})[supply_point.pk]
    return pricing.price_consumption(
        tariffs=loaded.tariffs,
        consumption=pricing.Consumption(*period, {"1.8.0": D(kwh)}),
        currency=loaded.currency, vat=pricing.load_vat_table("RO"),
        agreements=loaded.agreements,
    )


@time_machine.travel("2025-04-02 09:00 +03:00", tick=False)
def test_it_issues_a_priced_draft_with_number_dates_and_audit(
    customer: Customer, supply_point: SupplyPoint, price_list: PriceList,
    series: dict[str, InvoiceSeries], make_staff: object,
) -> None:
    clerk = make_staff(Role.BILLING)  # type: ignore[operator]
    priced = price_march(supply_point, "150")
    draft = services.create_draft_invoice(customer=customer, priced=priced,
                                          supply_point=supply_point)
    assert (draft.status, draft.number, draft.document_number) == ("draft", None, "")
    # Energy 100 × 0.80 + 50 × 0.90 = 125.00, standing 12.00: net 137.00, VAT 19 % 26.03.
    assert [line.net_amount for line in draft.lines.all()] == [D("80.00"), D("45.00"),
                                                              D("12.00")]
    issued = services.issue_invoice(invoice=draft, issued_by=clerk)
    assert issued.document_number == "FV-2025-000001"
    assert (issued.issue_date, issued.due_date) == (date(2025, 4, 2), date(2025, 4, 16))
    assert (issued.net_total, issued.vat_total, issued.gross_total, issued.amount_due) == (
        D("137.00"), D("26.03"), D("163.03"), D("163.03"))
    assert [(row.rate, row.net, row.vat) for row in issued.vat_breakdown()] == [
        (D("19.00"), D("137.00"), D("26.03"))]
    event = AuditEvent.objects.get(action="billing.invoice_issued")
    assert (event.actor, event.customer, event.after["document_number"]) == (
        clerk, customer, "FV-2025-000001")


def test_it_lets_an_agreement_override_the_list_on_the_invoice(
    customer: Customer, supply_point: SupplyPoint, price_list: PriceList,
    series: dict[str, InvoiceSeries],
) -> None:
    PriceAgreement.objects.create(customer=customer, price_list=price_list,
                                  component_code="energy", unit_price=D("0.50"),
                                  valid_from=date(2025, 1, 1))
    draft = services.create_draft_invoice(customer=customer, priced=price_march(supply_point,
                                                                                "150"))
    # 150 × 0.50 flat (the agreed price replaces the tiers) + 12.00
    assert [(line.unit_price, line.net_amount) for line in draft.lines.all()] == [
        (D("0.500000"), D("75.00")), (D("12.000000"), D("12.00"))]
    assert draft.net_total == D("87.00")


def test_it_refuses_to_issue_twice(customer: Customer, make_draft: MakeDraft) -> None:
    issued = services.issue_invoice(invoice=make_draft(customer, [("5.00", "19")]),
                                    issued_by=None)
    with pytest.raises(ServiceError, match="already issued"):
        services.issue_invoice(invoice=issued, issued_by=None)
    assert Invoice.objects.get().number == 1


def test_it_refuses_to_issue_a_draft_whose_totals_disagree_with_its_lines(
    customer: Customer, make_draft: MakeDraft,
) -> None:
    draft = make_draft(customer, [("5.00", "19")])
    Invoice.objects.filter(pk=draft.pk).update(net_total=D("6.00"), vat_total=D("0.95"),
                                               gross_total=D("6.95"), amount_due=D("6.95"))
    with pytest.raises(ServiceError, match="totals do not match"):
        services.issue_invoice(invoice=draft, issued_by=None)
    assert Invoice.objects.get().status == InvoiceStatus.DRAFT


def test_it_needs_a_default_series(customer: Customer) -> None:
    priced = pricing.total_lines(
        [pricing.Line(description="x", quantity=D("1"), unit="pcs", unit_price=D("1"),
                      net_amount=D("1.00"), vat_code="s", vat_rate=D("19"))],
        currency="EUR", period_start=date(2026, 1, 1), period_end=date(2026, 1, 31),
    )
    with pytest.raises(ServiceError, match="No default numbering series"):
        services.create_draft_invoice(customer=customer, priced=priced)


def test_it_cancels_an_invoice_with_a_credit_note_of_negated_lines(
    customer: Customer, make_draft: MakeDraft, make_staff: object,
) -> None:
    clerk: User = make_staff(Role.BILLING)  # type: ignore[operator]
    invoice = services.issue_invoice(
        invoice=make_draft(customer, [("100.00", "19"), ("33.33", "9")]), issued_by=clerk)
    credit = services.cancel_by_credit_note(invoice=invoice, reason="Wrong meter", by=clerk)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CANCELLED
    assert (credit.kind, credit.status, credit.credited_invoice) == (
        InvoiceKind.CREDIT_NOTE, InvoiceStatus.ISSUED, invoice)
    assert credit.document_number.startswith("CN-")
    assert credit.number == 1  # its own series
    assert (credit.net_total, credit.vat_total, credit.gross_total) == (
        -invoice.net_total, -invoice.vat_total, -invoice.gross_total)
    assert [(line.quantity, line.net_amount, line.vat_amount) for line in credit.lines.all()] == [
        (-line.quantity, -line.net_amount, -line.vat_amount) for line in invoice.lines.all()]
    assert AuditEvent.objects.filter(action="billing.invoice_cancelled", note="Wrong meter",
                                     actor=clerk).exists()


def test_it_refuses_to_credit_a_draft_a_paid_invoice_or_without_reason(
    customer: Customer, make_draft: MakeDraft,
) -> None:
    draft = make_draft(customer, [("10.00", "19")])
    with pytest.raises(ServiceError, match="draft"):
        services.cancel_by_credit_note(invoice=draft, reason="x", by=None)
    issued = services.issue_invoice(invoice=draft, issued_by=None)
    with pytest.raises(ServiceError, match="why"):
        services.cancel_by_credit_note(invoice=issued, reason="  ", by=None)
    issued.status = InvoiceStatus.PAID
    issued.save()
    with pytest.raises(ServiceError, match="only an unpaid invoice"):
        services.cancel_by_credit_note(invoice=issued, reason="x", by=None)
    assert Invoice.objects.count() == 1


def test_it_settles_against_paid_advances_as_a_refund(
    customer: Customer, supply_point: SupplyPoint, price_list: PriceList,
    series: dict[str, InvoiceSeries],
) -> None:
    priced = price_march(supply_point, "150")  # 163.03 gross
    settlement = pricing.settle(priced, D("200"))
    draft = services.create_draft_invoice(
        customer=customer, priced=priced, kind=InvoiceKind.SETTLEMENT,
        supply_point=supply_point, prepaid_amount=settlement.advances_paid,
    )
    assert (draft.gross_total, draft.prepaid_amount, draft.amount_due) == (
        D("163.03"), D("200.00"), D("-36.97"))
    assert settlement.is_refund


@time_machine.travel("2026-01-05 10:00 +02:00", tick=False)
def test_it_schedules_advances_and_requests_each_once(
    customer: Customer, supply_point: SupplyPoint, series: dict[str, InvoiceSeries],
) -> None:
    old = services.create_advance_schedule(
        customer=customer, supply_point=supply_point, frequency=Frequency.MONTHLY,
        amount=D("80"), currency="RON", first_due_date=date(2025, 1, 15), count=11,
        created_by=None,
    )
    schedule = services.create_advance_schedule(
        customer=customer, supply_point=supply_point, frequency=Frequency.QUARTERLY,
        amount=D("250.004"), currency="RON", first_due_date=date(2026, 1, 31), count=4,
        created_by=None,
    )
    old.refresh_from_db()
    assert old.status == ScheduleStatus.SUPERSEDED
    assert AdvanceSchedule.objects.filter(status=ScheduleStatus.ACTIVE).get() == schedule
    instalments = list(schedule.instalments.all())
    assert [(i.due_date, i.amount) for i in instalments] == [
        (date(2026, 1, 31), D("250.00")), (date(2026, 4, 30), D("250.00")),
        (date(2026, 7, 31), D("250.00")), (date(2026, 10, 31), D("250.00")),
    ]
    request = services.request_advance(instalment=instalments[0], issued_by=None)
    again = services.request_advance(instalment=instalments[0], issued_by=None)
    assert again == request
    assert (request.kind, request.document_number, request.due_date, request.amount_due) == (
        InvoiceKind.ADVANCE_REQUEST, "AV-2026-000001", date(2026, 1, 31), D("250.00"))
    assert request.vat_total == D("0.00")
    assert Invoice.objects.filter(kind=InvoiceKind.ADVANCE_REQUEST).count() == 1
    assert series[SeriesKind.ADVANCE].counters.get().last == 1
