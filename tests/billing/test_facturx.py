"""Factur-X: the stored invoice PDF is PDF/A-3 with a valid EN 16931 CII XML inside."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from facturx import get_xml_from_pdf, xml_check_xsd
from lxml import etree
from pypdf import PdfReader

from billing import facturx, pricing, services
from billing.documents import store_invoice_pdf
from billing.facturx import RAM, FacturXError, build_cii_xml, money_in_xml
from billing.models import Invoice, InvoiceKind, InvoiceSeries
from meters.models import SupplyPoint
from portal.models import Customer

D = Decimal
NS = {"ram": RAM, "rsm": facturx.RSM, "udt": facturx.UDT}


def line(
    description: str, quantity: str, unit: str, price: str, code: str, rate: str
) -> pricing.Line:
    qty, unit_price = D(quantity), D(price)
    return pricing.Line(
        description=description,
        quantity=qty,
        unit=unit,
        unit_price=unit_price,
        net_amount=(qty * unit_price).quantize(D("0.01")),
        vat_code=code,
        vat_rate=D(rate),
        period_start=date(2026, 1, 1),
        period_end=date(2026, 1, 31),
    )


LINES = [
    line("Energy", "230.5", "kWh", "0.812345", "standard", "19"),
    line("Standing charge", "1", "month", "12.00", "standard", "19"),
    line("Meter rent", "1", "month", "3.10", "reduced", "9"),
    line("Connection fee", "1", "visit", "25.00", "exempt", "0"),
]


@pytest.fixture
def issue(
    customer: Customer, supply_point: SupplyPoint, series: dict[str, InvoiceSeries]
) -> Callable[..., Invoice]:
    def factory(*, prepaid: str = "0", lines: list[pricing.Line] | None = None) -> Invoice:
        priced = pricing.total_lines(
            lines or LINES,
            currency="EUR",
            period_start=date(2026, 1, 1),
            period_end=date(2026, 1, 31),
        )
        kind = InvoiceKind.SETTLEMENT if prepaid != "0" else InvoiceKind.INVOICE
        draft = services.create_draft_invoice(
            customer=customer,
            priced=priced,
            supply_point=supply_point,
            kind=kind,
            prepaid_amount=D(prepaid),
        )
        return services.issue_invoice(
            invoice=draft,
            issued_by=None,
            issue_date=date(2026, 2, 3),
            due_date=date(2026, 2, 17),
        )

    return factory


def values(xml: bytes, path: str) -> list[str]:
    return [str(node.text) for node in etree.fromstring(xml).findall(path, NS)]


def test_its_xml_is_valid_against_the_packages_en16931_schema(
    issue: Callable[..., Invoice],
) -> None:
    xml = build_cii_xml(issue())
    assert xml_check_xsd(xml, flavor="factur-x", level="en16931") is True
    assert values(xml, ".//ram:GuidelineSpecifiedDocumentContextParameter/ram:ID") == [
        "urn:cen.eu:en16931:2017"
    ]


def test_its_money_is_the_invoices(issue: Callable[..., Invoice]) -> None:
    invoice = issue()
    xml = build_cii_xml(invoice)
    assert money_in_xml(xml) == {
        "LineTotalAmount": invoice.net_total,
        "TaxBasisTotalAmount": invoice.net_total,
        "TaxTotalAmount": invoice.vat_total,
        "GrandTotalAmount": invoice.gross_total,
        "DuePayableAmount": invoice.amount_due,
    }
    header_taxes = etree.fromstring(xml).findall(
        ".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax", NS
    )
    by_category = {
        (
            tax.findtext("ram:CategoryCode", namespaces=NS),
            tax.findtext("ram:RateApplicablePercent", namespaces=NS),
        ): (
            D(tax.findtext("ram:BasisAmount", namespaces=NS) or ""),
            D(tax.findtext("ram:CalculatedAmount", namespaces=NS) or ""),
        )
        for tax in header_taxes
    }
    expected = {
        (facturx.vat_category(row.code, row.rate), format(row.rate.normalize(), "f")): (
            row.net,
            row.vat,
        )
        for row in invoice.vat_breakdown()
    }
    assert by_category == expected
    assert set(by_category) == {("S", "19"), ("S", "9"), ("E", "0")}
    line_totals = [D(v) for v in values(xml, ".//ram:LineTotalAmount")[:-1]]
    assert line_totals == [line.net_amount for line in invoice.lines.all()]
    assert values(xml, ".//ram:BilledQuantity") == ["230.5", "1", "1", "1"]
    assert values(xml, ".//rsm:ExchangedDocument/ram:ID") == [invoice.document_number]
    assert values(xml, ".//ram:DueDateDateTime/udt:DateTimeString") == ["20260217"]
    # The RF reference printed on the page: customer 0100001, FV-2026-000001.
    [reference] = values(xml, ".//ram:PaymentReference")
    assert reference.endswith("00100001FV2026000001")


def test_a_settlement_deducts_the_advances_paid(issue: Callable[..., Invoice]) -> None:
    invoice = issue(prepaid="400.00")
    xml = build_cii_xml(invoice)
    xml_check_xsd(xml, flavor="factur-x", level="en16931")
    money = money_in_xml(xml)
    assert money["TotalPrepaidAmount"] == D("400.00")
    assert invoice.amount_due < 0
    assert money["DuePayableAmount"] == invoice.amount_due
    # Nothing to pay: no due date, no payment reference.
    assert values(xml, ".//ram:DueDateDateTime/udt:DateTimeString") == []
    assert values(xml, ".//ram:PaymentReference") == []


def test_a_credit_note_is_type_381_with_positive_amounts(
    issue: Callable[..., Invoice],
) -> None:
    invoice = issue()
    credit = services.cancel_by_credit_note(invoice=invoice, reason="Wrong tariff", by=None)
    xml = build_cii_xml(credit)
    xml_check_xsd(xml, flavor="factur-x", level="en16931")
    assert values(xml, ".//rsm:ExchangedDocument/ram:TypeCode") == ["381"]
    assert money_in_xml(xml)["GrandTotalAmount"] == invoice.gross_total
    assert values(xml, ".//ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == [
        invoice.document_number
    ]
    assert values(xml, ".//ram:BilledQuantity") == ["230.5", "1", "1", "1"]


def test_the_stored_pdf_carries_the_xml_we_built(issue: Callable[..., Invoice]) -> None:
    invoice = issue()
    invoice.payment_reference = "RF18539007547034"
    invoice.save(update_fields=["payment_reference", "updated_at"])
    store_invoice_pdf(invoice)
    pdf = Invoice.objects.get(pk=invoice.pk).pdf.read()
    name, embedded = get_xml_from_pdf(pdf, check_xsd=True)
    assert name == "factur-x.xml"
    assert embedded == build_cii_xml(invoice)
    assert values(embedded, ".//ram:PaymentReference") == ["RF18539007547034"]

    reader = PdfReader(io.BytesIO(pdf))
    root: Any = reader.trailer["/Root"]
    [filespec] = [spec.get_object() for spec in root["/AF"].get_object()]
    assert filespec["/AFRelationship"] == "/Alternative"
    assert filespec["/F"] == "factur-x.xml"
    xmp = root["/Metadata"].get_object().get_data().decode()
    assert "<pdfaid:part>3</pdfaid:part>" in xmp
    assert "<pdfaid:conformance>B</pdfaid:conformance>" in xmp
    assert "<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>" in xmp
    # The page is still the invoice: WeasyPrint's OutputIntent (sRGB) is kept.
    assert "/OutputIntents" in root
    assert len(reader.pages) == 1


def test_an_advance_request_is_stored_without_xml(
    customer: Customer, supply_point: SupplyPoint, series: dict[str, InvoiceSeries]
) -> None:
    schedule = services.create_advance_schedule(
        customer=customer,
        supply_point=supply_point,
        frequency="monthly",
        amount=D("50.00"),
        currency="EUR",
        first_due_date=date(2026, 3, 1),
        count=3,
        created_by=None,
    )
    request = services.request_advance(
        instalment=schedule.instalments.get(sequence=1), issued_by=None
    )
    assert not facturx.applies_to(request)
    with pytest.raises(FacturXError):
        build_cii_xml(request)
    store_invoice_pdf(request)
    pdf = Invoice.objects.get(pk=request.pk).pdf.read()
    assert get_xml_from_pdf(pdf, check_xsd=False) == (False, False)


def test_it_refuses_xml_the_schema_rejects(issue: Callable[..., Invoice]) -> None:
    root = etree.fromstring(build_cii_xml(issue()))
    type_code = root.find(".//rsm:ExchangedDocument/ram:TypeCode", NS)
    assert type_code is not None
    type_code.getparent().remove(type_code)
    with pytest.raises(FacturXError, match="not valid"):
        facturx.check_xsd(etree.tostring(root))


def test_unit_codes_follow_recommendation_20() -> None:
    assert [facturx.unit_code(u) for u in ("kWh", "m3", "month", "visit", "instalment")] == [
        "KWH",
        "MTQ",
        "MON",
        "C62",
        "C62",
    ]
