"""Factur-X (EN 16931 profile): the invoice PDF as PDF/A-3 with its CII XML inside.

``build_cii_xml`` writes the UN/CEFACT Cross Industry Invoice (D16B, the
Factur-X 1.0 EN 16931 profile) of an issued invoice, settlement or credit
note with lxml; ``render_facturx_pdf`` has WeasyPrint write the page as
PDF/A-3b with the XML attached as ``factur-x.xml`` (AFRelationship
Alternative, as EN 16931 wants) and an XMP packet with the fx extension
schema (``FacturXMetadata``), in the one pass that renders the page: the
PDF is not parsed and written a second time to embed the XML.

The XML is checked against the XSD the ``factur-x`` package ships before it
is embedded; the schema is parsed once per process. Credit notes (type 381)
carry positive amounts, as EN 16931 expects: the type code says which way
the money goes. Advance payment requests are not tax invoices and get no XML.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date
from decimal import Decimal
from functools import cache
from importlib import resources

import pydyf
from django.utils import timezone
from lxml import etree
from weasyprint import VERSION as WEASYPRINT_VERSION
from weasyprint import Attachment, Document
from weasyprint.pdf.metadata import DocumentMetadata

from billing.documents import invoice_html, payment_references, render_html_document
from billing.models import Invoice, InvoiceKind
from billing.operator import Operator, current_operator
from portal.documents import StaticOnlyFetcher

RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
QDT = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
NSMAP = {"rsm": RSM, "ram": RAM, "qdt": QDT, "udt": UDT}
GUIDELINE = "urn:cen.eu:en16931:2017"
LEVEL = "en16931"
XSD = "xsd_and_schematron/facturx-en16931/Factur-X_EN16931.xsd"
TYPE_CODES = {
    InvoiceKind.INVOICE: "380",  # commercial invoice
    InvoiceKind.SETTLEMENT: "380",
    InvoiceKind.CREDIT_NOTE: "381",
}
# UN/ECE Recommendation 20 unit codes for the units our price lists use.
UNIT_CODES = {
    "kwh": "KWH",
    "mwh": "MWH",
    "wh": "WHR",
    "m3": "MTQ",
    "m³": "MTQ",
    "l": "LTR",
    "kg": "KGM",
    "t": "TNE",
    "gj": "GV",
    "h": "HUR",
    "day": "DAY",
    "days": "DAY",
    "month": "MON",
    "months": "MON",
    "year": "ANN",
    "km": "KMT",
    "m": "MTR",
}
ONE = "C62"  # "one": visits, pieces, instalments
EXEMPTION_REASONS = {"E": "Exempt from VAT", "O": "Not subject to VAT"}
CENT = Decimal("0.01")


class FacturXError(ValueError):
    """The invoice cannot be expressed as a valid Factur-X XML."""


def applies_to(invoice: Invoice) -> bool:
    """Issued invoices, settlements and credit notes are EN 16931 invoices."""
    return not invoice.is_draft and invoice.kind in TYPE_CODES


def vat_category(code: str, rate: Decimal) -> str:
    """EN 16931 VAT category (UNTDID 5305) of one of our VAT codes."""
    if code == "outside_scope":
        return "O"
    if rate == 0:
        return "E" if "exempt" in code else "Z"
    return "S"


def unit_code(unit: str) -> str:
    return UNIT_CODES.get(unit.strip().lower(), ONE)


def _amount(value: Decimal) -> str:
    return str(value.quantize(CENT))


def _number(value: Decimal) -> str:
    """A quantity, price or rate as plain decimal text (no exponent, no trailing zeros)."""
    text = format(value.normalize(), "f")
    return text if text not in ("-0",) else "0"


def _date(value: date) -> str:
    return value.strftime("%Y%m%d")


class _Builder:
    """Small helpers over lxml for the ram:/rsm: elements (children in XSD order)."""

    @staticmethod
    def el(
        parent: etree._Element, tag: str, text: str | None = None, **attrs: str
    ) -> etree._Element:
        prefix, name = tag.split(":")
        node = etree.SubElement(parent, f"{{{NSMAP[prefix]}}}{name}", attrs)
        if text is not None:
            node.text = text
        return node

    def date_time(self, parent: etree._Element, tag: str, value: date) -> None:
        self.el(self.el(parent, tag), "udt:DateTimeString", _date(value), format="102")


@dataclass(frozen=True)
class _TaxRow:
    category: str
    rate: Decimal
    basis: Decimal
    tax: Decimal


def _tax_rows(invoice: Invoice, sign: int) -> list[_TaxRow]:
    """One row per VAT category and rate (EN 16931 BG-23), from the invoice's breakdown."""
    rows: dict[tuple[str, Decimal], list[Decimal]] = {}
    for row in invoice.vat_breakdown():
        key = (vat_category(row.code, row.rate), row.rate)
        totals = rows.setdefault(key, [Decimal(0), Decimal(0)])
        totals[0] += row.net * sign
        totals[1] += row.vat * sign
    return [_TaxRow(cat, rate, basis, tax) for (cat, rate), (basis, tax) in rows.items()]


def _party(
    b: _Builder,
    parent: etree._Element,
    tag: str,
    *,
    ident: str,
    name: str,
    street: str,
    postal_code: str,
    city: str,
    country: str,
    legal_id: str = "",
    email: str = "",
    vat_id: str = "",
    tax_id: str = "",
) -> None:
    party = b.el(parent, tag)
    if ident:
        b.el(party, "ram:ID", ident)
    b.el(party, "ram:Name", name)
    if legal_id:
        b.el(b.el(party, "ram:SpecifiedLegalOrganization"), "ram:ID", legal_id)
    address = b.el(party, "ram:PostalTradeAddress")
    if postal_code:
        b.el(address, "ram:PostcodeCode", postal_code)
    if street:
        b.el(address, "ram:LineOne", street)
    if city:
        b.el(address, "ram:CityName", city)
    b.el(address, "ram:CountryID", country.upper())
    if email:
        b.el(b.el(party, "ram:URIUniversalCommunication"), "ram:URIID", email, schemeID="EM")
    if vat_id:
        b.el(b.el(party, "ram:SpecifiedTaxRegistration"), "ram:ID", vat_id, schemeID="VA")
    if tax_id:
        b.el(b.el(party, "ram:SpecifiedTaxRegistration"), "ram:ID", tax_id, schemeID="FC")


def _trade_tax(b: _Builder, parent: etree._Element, row: _TaxRow, *, header: bool) -> None:
    tax = b.el(parent, "ram:ApplicableTradeTax")
    if header:
        b.el(tax, "ram:CalculatedAmount", _amount(row.tax))
    b.el(tax, "ram:TypeCode", "VAT")
    if header and row.category in EXEMPTION_REASONS:
        b.el(tax, "ram:ExemptionReason", EXEMPTION_REASONS[row.category])
    if header:
        b.el(tax, "ram:BasisAmount", _amount(row.basis))
    b.el(tax, "ram:CategoryCode", row.category)
    if row.category != "O":
        b.el(tax, "ram:RateApplicablePercent", _number(row.rate))


def _lines(b: _Builder, transaction: etree._Element, invoice: Invoice, sign: int) -> Decimal:
    """The invoice lines (BG-25); returns their net sum (BT-106)."""
    total = Decimal(0)
    for line in invoice.lines.all():
        item = b.el(transaction, "ram:IncludedSupplyChainTradeLineItem")
        b.el(b.el(item, "ram:AssociatedDocumentLineDocument"), "ram:LineID", str(line.position))
        b.el(b.el(item, "ram:SpecifiedTradeProduct"), "ram:Name", line.description)
        # A price is never negative in EN 16931 (BR-27): the quantity carries the sign.
        quantity = line.quantity * sign
        if line.unit_price < 0:
            quantity = -quantity
        agreement = b.el(item, "ram:SpecifiedLineTradeAgreement")
        price = b.el(agreement, "ram:NetPriceProductTradePrice")
        b.el(price, "ram:ChargeAmount", _number(abs(line.unit_price)))
        delivery = b.el(item, "ram:SpecifiedLineTradeDelivery")
        b.el(delivery, "ram:BilledQuantity", _number(quantity), unitCode=unit_code(line.unit))
        settlement = b.el(item, "ram:SpecifiedLineTradeSettlement")
        category = vat_category(line.vat_code, line.vat_rate)
        _trade_tax(
            b, settlement, _TaxRow(category, line.vat_rate, Decimal(0), Decimal(0)), header=False
        )
        if line.period_start and line.period_end:
            period = b.el(settlement, "ram:BillingSpecifiedPeriod")
            b.date_time(period, "ram:StartDateTime", line.period_start)
            b.date_time(period, "ram:EndDateTime", line.period_end)
        net = line.net_amount * sign
        total += net
        b.el(
            b.el(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation"),
            "ram:LineTotalAmount",
            _amount(net),
        )
    return total


def build_cii_xml(invoice: Invoice, operator: Operator | None = None) -> bytes:
    """The CII XML (Factur-X EN 16931) of an issued invoice, settlement or credit note."""
    if not applies_to(invoice):
        raise FacturXError(f"{invoice} is not an issued invoice or credit note.")
    assert invoice.issue_date is not None
    operator = operator or current_operator()
    customer = invoice.customer
    b = _Builder()
    sign = -1 if invoice.kind == InvoiceKind.CREDIT_NOTE else 1

    root = etree.Element(f"{{{RSM}}}CrossIndustryInvoice", nsmap=NSMAP)
    context = b.el(root, "rsm:ExchangedDocumentContext")
    b.el(b.el(context, "ram:GuidelineSpecifiedDocumentContextParameter"), "ram:ID", GUIDELINE)

    document = b.el(root, "rsm:ExchangedDocument")
    b.el(document, "ram:ID", invoice.document_number)
    b.el(document, "ram:TypeCode", TYPE_CODES[InvoiceKind(invoice.kind)])
    b.date_time(document, "ram:IssueDateTime", invoice.issue_date)
    if invoice.note:
        b.el(b.el(document, "ram:IncludedNote"), "ram:Content", invoice.note)

    transaction = b.el(root, "rsm:SupplyChainTradeTransaction")
    line_total = _lines(b, transaction, invoice, sign)

    agreement = b.el(transaction, "ram:ApplicableHeaderTradeAgreement")
    b.el(agreement, "ram:BuyerReference", customer.number)
    _party(
        b,
        agreement,
        "ram:SellerTradeParty",
        ident="",
        name=operator.name,
        street=operator.street,
        postal_code=operator.postal_code,
        city=operator.city,
        country=operator.country,
        legal_id=operator.tax_id,
        email=operator.email,
        vat_id=operator.vat_id,
        # Without a VAT id, the seller's tax registration number (BT-32).
        tax_id="" if operator.vat_id else operator.tax_id,
    )
    _party(
        b,
        agreement,
        "ram:BuyerTradeParty",
        ident=customer.number,
        name=customer.name,
        street=customer.street,
        postal_code=customer.postal_code,
        city=customer.city,
        country=customer.country,
        email=customer.email,
        vat_id=customer.vat_id,
    )

    delivery = b.el(transaction, "ram:ApplicableHeaderTradeDelivery")
    supply_point = invoice.supply_point
    if supply_point is not None:
        ship_to = b.el(delivery, "ram:ShipToTradeParty")
        b.el(ship_to, "ram:ID", supply_point.code)
        address = b.el(ship_to, "ram:PostalTradeAddress")
        b.el(address, "ram:PostcodeCode", supply_point.postal_code)
        b.el(address, "ram:LineOne", supply_point.street)
        b.el(address, "ram:CityName", supply_point.city)
        b.el(address, "ram:CountryID", customer.country.upper())

    settlement = b.el(transaction, "ram:ApplicableHeaderTradeSettlement")
    payable = invoice.kind != InvoiceKind.CREDIT_NOTE and invoice.amount_due > 0
    # BT-83: the reference printed on the page (the one stored at issue, else the RF).
    references = payment_references(invoice, operator) if payable else []
    if references:
        reference = invoice.payment_reference or references[0].value
        b.el(settlement, "ram:PaymentReference", reference)
    b.el(settlement, "ram:InvoiceCurrencyCode", invoice.currency)
    if operator.iban:
        means = b.el(settlement, "ram:SpecifiedTradeSettlementPaymentMeans")
        # 58 SEPA credit transfer, 30 credit transfer (UNTDID 4461).
        b.el(means, "ram:TypeCode", "58" if invoice.currency == "EUR" else "30")
        account = b.el(means, "ram:PayeePartyCreditorFinancialAccount")
        b.el(account, "ram:IBANID", operator.iban.replace(" ", ""))
        if operator.bic:
            institution = b.el(means, "ram:PayeeSpecifiedCreditorFinancialInstitution")
            b.el(institution, "ram:BICID", operator.bic)
    rows = _tax_rows(invoice, sign)
    for row in rows:
        _trade_tax(b, settlement, row, header=True)
    if invoice.period_start and invoice.period_end:
        period = b.el(settlement, "ram:BillingSpecifiedPeriod")
        b.date_time(period, "ram:StartDateTime", invoice.period_start)
        b.date_time(period, "ram:EndDateTime", invoice.period_end)
    if payable and invoice.due_date:
        terms = b.el(settlement, "ram:SpecifiedTradePaymentTerms")
        b.date_time(terms, "ram:DueDateDateTime", invoice.due_date)

    net, vat = invoice.net_total * sign, invoice.vat_total * sign
    if line_total != net or sum((r.basis for r in rows), Decimal(0)) != net:
        raise FacturXError(f"{invoice}: the lines do not add up to the net total.")
    summation = b.el(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    b.el(summation, "ram:LineTotalAmount", _amount(line_total))
    b.el(summation, "ram:TaxBasisTotalAmount", _amount(net))
    b.el(summation, "ram:TaxTotalAmount", _amount(vat), currencyID=invoice.currency)
    b.el(summation, "ram:GrandTotalAmount", _amount(invoice.gross_total * sign))
    if invoice.prepaid_amount:
        b.el(summation, "ram:TotalPrepaidAmount", _amount(invoice.prepaid_amount * sign))
    b.el(summation, "ram:DuePayableAmount", _amount(invoice.amount_due * sign))
    credited = invoice.credited_invoice
    if credited is not None and credited.issue_date is not None:
        referenced = b.el(settlement, "ram:InvoiceReferencedDocument")
        b.el(referenced, "ram:IssuerAssignedID", credited.document_number)
        formatted = b.el(referenced, "ram:FormattedIssueDateTime")
        b.el(formatted, "qdt:DateTimeString", _date(credited.issue_date), format="102")

    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    check_xsd(xml)
    return bytes(xml)


@cache
def _schema() -> etree.XMLSchema:
    """The EN 16931 XSD the factur-x package ships, parsed once per process."""
    path = resources.files("facturx").joinpath(XSD)
    return etree.XMLSchema(file=str(path))


def xsd_errors(xml: bytes) -> list[str]:
    schema = _schema()
    if schema.validate(etree.fromstring(xml)):
        return []
    return [f"line {error.line}: {error.message}" for error in schema.error_log]


def check_xsd(xml: bytes) -> None:
    errors = xsd_errors(xml)
    if errors:
        raise FacturXError("The Factur-X XML is not valid: " + "; ".join(errors[:5]))


# The Factur-X XMP (Factur-X 1.0, §6.2.2): the fx properties, and the PDF/A extension
# schema that declares them (PDF/A wants every XMP property not in its base schemas
# declared in the file itself).
FX_NAMESPACE = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"
FX_FILENAME = "factur-x.xml"
FX_VERSION = "1.0"
FX_CONFORMANCE_LEVEL = "EN 16931"
FX_PROPERTIES = (
    ("DocumentFileName", "The name of the embedded XML document"),
    ("DocumentType", "The type of the hybrid document in capital letters, e.g. INVOICE or ORDER"),
    ("Version", "The actual version of the standard applying to the embedded XML document"),
    ("ConformanceLevel", "The conformance level of the embedded XML document"),
)
XMP_NAMESPACES = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "pdf": "http://ns.adobe.com/pdf/1.3/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "pdfaid": "http://www.aiim.org/pdfa/ns/id/",
    "pdfaExtension": "http://www.aiim.org/pdfa/ns/extension/",
    "pdfaSchema": "http://www.aiim.org/pdfa/ns/schema#",
    "pdfaProperty": "http://www.aiim.org/pdfa/ns/property#",
    "fx": FX_NAMESPACE,
}
PDF_VARIANT = "pdf/a-3b"
CREATOR_TOOL = "Guichet"


class FacturXMetadata(DocumentMetadata):
    """WeasyPrint's document metadata with the Factur-X XMP packet.

    WeasyPrint writes the PDF/A-3b file, the attachment and its AFRelationship
    itself; only the XMP differs from its own: it carries the fx properties and
    their extension schema. Every value that WeasyPrint also writes to the
    document information dictionary (title, author, subject, keywords, creator,
    producer, dates) is written here from the same attributes, so that the two
    agree as PDF/A requires.
    """

    def generate_rdf_metadata(self, variant: str, version: int, conformance: str) -> bytes:
        if (variant, version, conformance) != ("a", 3, "B"):
            raise FacturXError(f"Factur-X is PDF/A-3b, not PDF/{variant}-{version}{conformance}.")
        rdf = etree.Element(_xmp("rdf:RDF"), nsmap=XMP_NAMESPACES)

        def description(*prefixes: str) -> etree._Element:
            node = etree.SubElement(
                rdf, _xmp("rdf:Description"),
                nsmap={prefix: XMP_NAMESPACES[prefix] for prefix in prefixes},
            )
            node.set(_xmp("rdf:about"), "")
            return node

        def text(parent: etree._Element, tag: str, value: str) -> etree._Element:
            node = etree.SubElement(parent, _xmp(tag))
            node.text = value
            return node

        def alternative(parent: etree._Element, tag: str, value: str) -> None:
            item = text(etree.SubElement(etree.SubElement(parent, _xmp(tag)), _xmp("rdf:Alt")),
                        "rdf:li", value)
            item.set("{http://www.w3.org/XML/1998/namespace}lang", "x-default")

        ident = description("pdfaid")
        text(ident, "pdfaid:part", str(version))
        text(ident, "pdfaid:conformance", conformance)

        dublin_core = description("dc")
        if self.title:
            alternative(dublin_core, "dc:title", self.title)
        if self.authors:
            authors = etree.SubElement(etree.SubElement(dublin_core, _xmp("dc:creator")),
                                       _xmp("rdf:Seq"))
            for author in self.authors:
                text(authors, "rdf:li", author)
        if self.description:
            alternative(dublin_core, "dc:description", self.description)

        producer = description("pdf")
        text(producer, "pdf:Producer", f"WeasyPrint {WEASYPRINT_VERSION}")
        if self.keywords:
            text(producer, "pdf:Keywords", ", ".join(self.keywords))

        tool = description("xmp")
        if self.generator:
            text(tool, "xmp:CreatorTool", self.generator)
        if self.created:
            text(tool, "xmp:CreateDate", self.created)
        if self.modified:
            text(tool, "xmp:ModifyDate", self.modified)

        extension = description("pdfaExtension", "pdfaSchema", "pdfaProperty")
        schema = etree.SubElement(
            etree.SubElement(etree.SubElement(extension, _xmp("pdfaExtension:schemas")),
                             _xmp("rdf:Bag")),
            _xmp("rdf:li"),
        )
        schema.set(_xmp("rdf:parseType"), "Resource")
        text(schema, "pdfaSchema:schema", "Factur-X PDFA Extension Schema")
        text(schema, "pdfaSchema:namespaceURI", FX_NAMESPACE)
        text(schema, "pdfaSchema:prefix", "fx")
        properties = etree.SubElement(etree.SubElement(schema, _xmp("pdfaSchema:property")),
                                      _xmp("rdf:Seq"))
        for name, meaning in FX_PROPERTIES:
            item = etree.SubElement(properties, _xmp("rdf:li"))
            item.set(_xmp("rdf:parseType"), "Resource")
            text(item, "pdfaProperty:name", name)
            text(item, "pdfaProperty:valueType", "Text")
            text(item, "pdfaProperty:category", "external")
            text(item, "pdfaProperty:description", meaning)

        facturx = description("fx")
        text(facturx, "fx:DocumentType", "INVOICE")
        text(facturx, "fx:DocumentFileName", FX_FILENAME)
        text(facturx, "fx:Version", FX_VERSION)
        text(facturx, "fx:ConformanceLevel", FX_CONFORMANCE_LEVEL)
        return bytes(etree.tostring(rdf, encoding="utf-8"))


def _xmp(tag: str) -> str:
    prefix, name = tag.split(":")
    return f"{{{XMP_NAMESPACES[prefix]}}}{name}"


def render_facturx_pdf(invoice: Invoice, *, operator: Operator | None = None) -> bytes:
    """The invoice page as PDF/A-3b with its CII XML embedded, in one WeasyPrint pass.

    The XML is ``factur-x.xml`` with AFRelationship Alternative (EN 16931: the XML
    and the page are the same invoice); the XMP carries the fx properties.
    """
    operator = operator or current_operator()
    xml = build_cii_xml(invoice, operator)
    document = render_html_document(invoice_html(invoice, operator), pdf_variant=PDF_VARIANT)
    title = f"{operator.name}: {InvoiceKind(invoice.kind).label} {invoice.document_number}"
    now = timezone.now().astimezone(UTC).replace(microsecond=0)
    w3c_now = now.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    document.metadata = FacturXMetadata(
        title=title,
        authors=[operator.name],
        description=title,
        keywords=["Factur-X", "Invoice"],
        generator=CREATOR_TOOL,
        created=w3c_now,
        modified=w3c_now,
        lang=invoice.customer.language,
    )
    attachment = Attachment(
        string=xml,
        name=FX_FILENAME,
        description="Factur-X XML file",
        relationship="Alternative",
        created=now,
        modified=now,
        url_fetcher=StaticOnlyFetcher(),
    )
    pdf = document.write_pdf(
        pdf_variant=PDF_VARIANT, attachments=[attachment], finisher=_associated_files_once
    )
    assert pdf is not None
    return pdf


def _associated_files_once(document: Document, pdf: pydyf.PDF) -> None:
    """Name each attachment once in the catalog's /AF (WeasyPrint 70 lists it twice:
    from the embedded files' name tree and again from its file specification)."""
    associated = pdf.catalog.get("AF")
    if associated:
        pdf.catalog["AF"] = pydyf.Array(dict.fromkeys(associated))


def money_in_xml(xml: bytes) -> dict[str, Decimal]:
    """The header totals of a CII XML (BT-106, 109, 110, 112, 113, 115), for checks."""
    root = etree.fromstring(xml)
    found: dict[str, Decimal] = {}
    names: Iterable[str] = (
        "LineTotalAmount",
        "TaxBasisTotalAmount",
        "TaxTotalAmount",
        "GrandTotalAmount",
        "TotalPrepaidAmount",
        "DuePayableAmount",
    )
    for name in names:
        node = root.find(
            f".//{{{RAM}}}SpecifiedTradeSettlementHeaderMonetarySummation/{{{RAM}}}{name}"
        )
        if node is not None and node.text:
            found[name] = Decimal(node.text)
    return found
