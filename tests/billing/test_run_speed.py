"""What keeps a billing run fast and its workers small.

Factur-X is written by WeasyPrint in the pass that renders the page (no second
PDF rewrite), a chunk's drafts are issued in one transaction, a number costs
one statement, print batches are merged in child processes, and a big run's
last chunks are small.
"""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from lxml import etree
from pypdf import PdfReader, PdfWriter

from billing import delivery, facturx, printmerge, runs, services, tasks
from billing.documents import store_invoice_pdf
from billing.models import (
    BillingRun,
    BillingRunStatus,
    Invoice,
    InvoiceSeries,
    NumberCounter,
    SeriesKind,
)
from billing.numbering import next_number
from portal.models import Customer
from tests.billing.conftest import MakeDraft
from tests.conftest import make_customer

XMP = facturx.XMP_NAMESPACES


@pytest.fixture(autouse=True)
def _media_root(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def issuing_run(db: None) -> BillingRun:
    return BillingRun.objects.create(
        name="Run", period_start=date(2026, 1, 1), period_end=date(2026, 1, 31),
        status=BillingRunStatus.ISSUING, issue_date=date(2026, 2, 5),
    )


def drafts_of(run: BillingRun, make_draft: MakeDraft, customers: list[Customer]) -> list[int]:
    ids = []
    for customer in customers:
        draft = make_draft(customer, [("100.00", "19")])
        Invoice.objects.filter(pk=draft.pk).update(billing_run=run)
        ids.append(draft.pk)
    return ids


def xmp_values(xmp: etree._Element, path: str) -> list[str]:
    return [str(node.text) for node in xmp.iterfind(path, XMP)]


# --- Factur-X written in one pass ------------------------------------------------------


def test_its_facturx_pdf_names_the_xml_once_and_its_metadata_agree(
    make_draft: MakeDraft, customer: Customer
) -> None:
    invoice = services.issue_invoice(
        invoice=make_draft(customer, [("100.00", "19")]), issued_by=None
    )
    store_invoice_pdf(invoice)
    reader = PdfReader(io.BytesIO(Invoice.objects.get(pk=invoice.pk).pdf.read()))
    root: Any = reader.trailer["/Root"]

    # The XML is one associated file (WeasyPrint 70 would list it twice), text/xml.
    [filespec] = [spec.get_object() for spec in root["/AF"]]
    assert filespec["/F"] == filespec["/UF"] == "factur-x.xml"
    assert filespec["/AFRelationship"] == "/Alternative"
    embedded = filespec["/EF"]["/F"].get_object()
    assert embedded["/Subtype"] == "/text/xml"
    assert embedded["/Params"]["/Size"] == len(facturx.build_cii_xml(invoice))
    assert embedded["/Params"]["/ModDate"].startswith("D:")

    # PDF/A: the document information and the XMP say the same.
    packet = root["/Metadata"].get_object().get_data()
    xmp = etree.fromstring(packet[packet.index(b"<x:xmpmeta"):packet.rindex(b"</x:xmpmeta>") + 12])
    info = reader.metadata
    assert info is not None
    assert xmp_values(xmp, ".//dc:title/rdf:Alt/rdf:li") == [info["/Title"]]
    assert invoice.document_number in str(info["/Title"])
    assert xmp_values(xmp, ".//dc:creator/rdf:Seq/rdf:li") == [info["/Author"]]
    assert xmp_values(xmp, ".//dc:description/rdf:Alt/rdf:li") == [info["/Subject"]]
    assert xmp_values(xmp, ".//pdf:Keywords") == [info["/Keywords"]] == ["Factur-X, Invoice"]
    assert xmp_values(xmp, ".//pdf:Producer") == [info["/Producer"]]
    assert xmp_values(xmp, ".//xmp:CreatorTool") == [info["/Creator"]]
    [created] = xmp_values(xmp, ".//xmp:CreateDate")  # 2026-02-03T10:00:00+00:00
    digits = "".join(c for c in created[:19] if c.isdigit())
    assert info["/CreationDate"] == f"D:{digits}+00'00"
    assert xmp_values(xmp, ".//xmp:ModifyDate") == [created]
    assert xmp_values(xmp, ".//pdfaid:part") == ["3"]
    assert xmp_values(xmp, ".//pdfaid:conformance") == ["B"]

    # Every fx property is declared by the extension schema, in the fx namespace.
    fx = {etree.QName(node).localname: node.text for node in xmp.iter(f"{{{XMP['fx']}}}*")}
    assert fx == {"DocumentType": "INVOICE", "DocumentFileName": "factur-x.xml",
                  "Version": "1.0", "ConformanceLevel": "EN 16931"}
    assert set(xmp_values(xmp, ".//pdfaProperty:name")) == set(fx)
    assert xmp_values(xmp, ".//pdfaSchema:namespaceURI") == [XMP["fx"]]


def test_its_metadata_refuses_a_variant_other_than_pdf_a_3b() -> None:
    with pytest.raises(facturx.FacturXError):
        facturx.FacturXMetadata(title="x").generate_rdf_metadata("a", 2, "B")


# --- numbers ---------------------------------------------------------------------------


def test_a_number_costs_one_statement_once_the_years_counter_exists(
    series: dict[str, InvoiceSeries], django_assert_num_queries: Any
) -> None:
    invoices = series[SeriesKind.INVOICE]
    with transaction.atomic():
        assert next_number(invoices, 2026) == 1  # creates the counter
        with django_assert_num_queries(1):  # UPDATE … SET last = last + 1 … RETURNING last
            assert next_number(invoices, 2026) == 2
    assert NumberCounter.objects.get(series=invoices, year=2026).last == 2


def test_a_chunk_is_issued_all_or_nothing_in_id_order(
    issuing_run: BillingRun, make_draft: MakeDraft, monkeypatch: pytest.MonkeyPatch,
) -> None:
    customers = [make_customer(f"C0700{n:03d}", email="") for n in range(3)]
    ids = drafts_of(issuing_run, make_draft, customers)
    real_issue = services.issue_invoice
    calls = {"n": 0}

    def failing_third(**kwargs: Any) -> Invoice:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("the database went away")
        return real_issue(**kwargs)

    monkeypatch.setattr(services, "issue_invoice", failing_third)
    with pytest.raises(RuntimeError):
        runs.process_chunk(run=issuing_run, invoice_ids=list(reversed(ids)))
    # The two numbers taken before the failure were given back with the chunk.
    assert not Invoice.objects.issued().exists()
    assert not NumberCounter.objects.filter(last__gt=0).exists()

    monkeypatch.setattr(services, "issue_invoice", real_issue)
    runs.process_chunk(run=issuing_run, invoice_ids=list(reversed(ids)))
    issued = Invoice.objects.filter(pk__in=ids).order_by("pk")
    assert list(issued.values_list("number", flat=True)) == [1, 2, 3]
    assert all(invoice.pdf for invoice in Invoice.objects.filter(pk__in=ids))


# --- print batches ---------------------------------------------------------------------


def letter(pages: int, width: int) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=width, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_it_merges_letters_in_order_on_whole_sheets(tmp_path: Path) -> None:
    paths = []
    for name, pages, width in (("a", 1, 500), ("b", 2, 600), ("c", 3, 700)):
        path = tmp_path / f"{name}.pdf"
        path.write_bytes(letter(pages, width))
        paths.append(str(path))

    counts = printmerge.merge(paths, str(tmp_path / "merged.pdf"))

    assert counts == [2, 2, 4]
    merged = PdfReader(tmp_path / "merged.pdf")
    # Each letter starts on a new sheet: its padding page has the size of its last page.
    assert [round(float(page.mediabox.width)) for page in merged.pages] == [
        500, 500, 600, 600, 700, 700, 700, 700,
    ]


def test_the_worker_never_merges_a_print_batch_itself(
    issuing_run: BillingRun, make_draft: MakeDraft, monkeypatch: pytest.MonkeyPatch,
) -> None:
    customers = [make_customer(f"C0800{n:03d}", email="", postal_code=f"10000{n}")
                 for n in range(3)]
    for invoice_id in drafts_of(issuing_run, make_draft, customers):
        invoice = services.issue_invoice(invoice=Invoice.objects.get(pk=invoice_id),
                                         issued_by=None)
        store_invoice_pdf(invoice)
        delivery.deliver_invoice(invoice=invoice)

    def merged_here(*args: Any) -> list[int]:
        raise AssertionError("merged in the worker's own process")

    monkeypatch.setattr(printmerge, "merge", merged_here)
    batches = delivery.make_print_batches(run=issuing_run, size=2)

    assert [(b.item_count, b.page_count) for b in batches] == [(2, 4), (1, 2)]
    with batches[0].merged_pdf.open("rb") as fh:
        assert len(PdfReader(fh).pages) == 4
    rows = batches[0].list_csv.read().decode().splitlines()
    assert [row.split(",")[:3] for row in rows[1:]] == [["1", "1", "2"], ["2", "3", "2"]]
    assert customers[0].number in rows[1] and customers[1].number in rows[2]


# --- chunks ----------------------------------------------------------------------------


@pytest.mark.parametrize(("drafts", "sizes"), [
    (15, [5, 5, 5]),  # fewer than four chunks: all of one size
    (45, [5] * 7 + [1] * 10),  # the last two chunks' worth, one by one
])
def test_a_big_runs_last_chunks_are_smaller(
    issuing_run: BillingRun, make_draft: MakeDraft, monkeypatch: pytest.MonkeyPatch,
    drafts: int, sizes: list[int],
) -> None:
    customer = make_customer("C0900001")
    for _ in range(drafts):
        draft = make_draft(customer, [("10.00", "19")])
        Invoice.objects.filter(pk=draft.pk).update(billing_run=issuing_run)
    queued: list[list[int]] = []

    def delay(run_id: int, ids: list[int]) -> None:
        queued.append(ids)

    monkeypatch.setattr(tasks.issue_chunk, "delay", delay)

    assert runs.queue_chunks(run=issuing_run, chunk_size=5) == len(sizes)

    assert [len(chunk) for chunk in queued] == sizes
    assert [pk for chunk in queued for pk in chunk] == runs.pending_invoice_ids(issuing_run)
