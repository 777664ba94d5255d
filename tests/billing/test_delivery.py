"""Delivery of issued invoices: e-mail once for e-billing, print batches for paper."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from billing import delivery, services
from billing.documents import store_invoice_pdf
from billing.models import BillingRun, DeliveryChannel, Invoice, InvoiceDelivery
from notifications.models import OutboxMessage
from portal.models import Customer
from portal.services import ServiceError
from tests.billing.conftest import MakeDraft
from tests.conftest import make_customer


@pytest.fixture(autouse=True)
def _media_root(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


def issued(make_draft: MakeDraft, customer: Customer, run: BillingRun | None = None) -> Invoice:
    draft = make_draft(customer, [("100.00", "19")])
    if run is not None:
        Invoice.objects.filter(pk=draft.pk).update(billing_run=run)
    invoice = services.issue_invoice(invoice=draft, issued_by=None)
    store_invoice_pdf(invoice)
    return invoice


def test_it_sends_an_ebilling_customer_one_email_however_often_asked(
    make_draft: MakeDraft, customer: Customer
) -> None:
    customer.consent_ebilling = True
    customer.save()
    invoice = issued(make_draft, customer)

    first = delivery.deliver_invoice(invoice=invoice)
    again = delivery.deliver_invoice(invoice=invoice)

    assert first == again and first.channel == DeliveryChannel.EMAIL
    (message,) = OutboxMessage.objects.all()
    assert first.outbox_message == message
    assert message.attachments[0]["path"] == invoice.pdf.name
    assert invoice.document_number in message.subject


def test_it_posts_to_a_customer_who_chose_ebilling_without_an_address(
    make_draft: MakeDraft, customer: Customer
) -> None:
    customer.consent_ebilling = True
    customer.email = ""
    customer.save()
    invoice = issued(make_draft, customer)
    assert delivery.deliver_invoice(invoice=invoice).channel == DeliveryChannel.PAPER
    assert not OutboxMessage.objects.exists()


def test_it_does_not_deliver_a_draft(make_draft: MakeDraft, customer: Customer) -> None:
    draft = make_draft(customer, [("10.00", "19")])
    with pytest.raises(ServiceError):
        delivery.deliver_invoice(invoice=draft)
    assert not InvoiceDelivery.objects.exists()


def test_it_batches_paper_letters_by_postal_code_on_whole_sheets(
    make_draft: MakeDraft, customer: Customer
) -> None:
    run = BillingRun.objects.create(name="Run", period_start=date(2026, 1, 1),
                                    period_end=date(2026, 1, 31))
    north = make_customer("C0400004", last_name="Nord", postal_code="900001")
    invoices = [issued(make_draft, north, run), issued(make_draft, customer, run)]
    for invoice in invoices:
        delivery.deliver_invoice(invoice=invoice)

    batches = delivery.make_print_batches(run=run, size=1)

    assert [b.item_count for b in batches] == [1, 1]
    # 010101 (customer) before 900001 (north).
    first_list = batches[0].list_csv.read().decode()
    assert customer.number in first_list and north.number not in first_list
    for batch in batches:
        with batch.merged_pdf.open("rb") as fh:
            pages = len(PdfReader(fh).pages)
        assert pages == batch.page_count and pages % 2 == 0
    assert not delivery.make_print_batches(run=run)  # nothing left to batch
