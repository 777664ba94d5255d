"""Delivering issued invoices: by e-mail to those who chose e-billing, on paper to the rest.

Each invoice gets one InvoiceDelivery row (one-to-one), written in the same
transaction as its outbox e-mail, under the invoice's row lock: an invoice is
sent once however often delivery is retried. Paper invoices wait for the end
of their run and are then collected into print batches: one merged PDF for the
printer (every letter padded to an even page count, so duplex printing never
puts two customers on one sheet) and a CSV mailing list with the addresses.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Max
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from pypdf import PdfReader, PdfWriter

from billing.models import (
    BillingRun,
    DeliveryChannel,
    Invoice,
    InvoiceDelivery,
    PrintBatch,
)
from notifications.services import queue_email
from portal.models import Customer
from portal.services import ServiceError, absolute_url

LIST_COLUMNS = (
    "sequence", "first_page", "pages", "document_number", "customer_number", "name",
    "street", "postal_code", "city", "country",
)


def channel_for(customer: Customer) -> str:
    """E-mail for a customer who consented to e-billing and has an address, else paper."""
    if customer.consent_ebilling and customer.email:
        return DeliveryChannel.EMAIL
    return DeliveryChannel.PAPER


def invoice_portal_url(invoice: Invoice) -> str:
    try:
        path = reverse("billing:invoice", args=[invoice.public_id])
    except NoReverseMatch:
        path = reverse("portal:home")
    return absolute_url(path)


def deliver_invoice(*, invoice: Invoice) -> InvoiceDelivery:
    """Send an issued invoice by its customer's channel, once (a second call returns the first)."""
    with transaction.atomic():
        locked = (
            Invoice.objects.select_for_update(of=("self",)).select_related("customer")
            .get(pk=invoice.pk)
        )
        existing = InvoiceDelivery.objects.filter(invoice=locked).first()
        if existing is not None:
            return existing
        if locked.is_draft:
            raise ServiceError(_("A draft is not delivered; issue it first."))
        if not locked.pdf:
            raise ServiceError(
                _("%(number)s has no PDF yet.") % {"number": locked.document_number}
            )
        customer = locked.customer
        if channel_for(customer) == DeliveryChannel.PAPER:
            return InvoiceDelivery.objects.create(invoice=locked, channel=DeliveryChannel.PAPER)
        message = queue_email(
            to=customer.email,
            kind="invoice",
            template="billing/email/invoice",
            context={
                "invoice": locked,
                "customer": customer,
                "portal_url": invoice_portal_url(locked),
                "operator_name": settings.OPERATOR_NAME,
            },
            language=customer.language,
            about=locked,
            attachments=[{
                "name": f"{locked.document_number}.pdf",
                "path": locked.pdf.name,
                "content_type": "application/pdf",
            }],
        )
        return InvoiceDelivery.objects.create(
            invoice=locked, channel=DeliveryChannel.EMAIL, outbox_message=message
        )


def _merge(deliveries: Sequence[InvoiceDelivery]) -> tuple[bytes, str, int]:
    """(merged PDF, CSV mailing list, pages) of the letters, in this order."""
    writer = PdfWriter()
    listing = io.StringIO()
    rows = csv.writer(listing)
    rows.writerow(LIST_COLUMNS)
    pages = 0
    for sequence, item in enumerate(deliveries, start=1):
        invoice = item.invoice
        with invoice.pdf.open("rb") as fh:
            reader = PdfReader(io.BytesIO(fh.read()))
        count = len(reader.pages)
        writer.append(reader)
        if count % 2:
            writer.add_blank_page()
            count += 1
        customer = invoice.customer
        rows.writerow([
            sequence, pages + 1, count, invoice.document_number, customer.number, customer.name,
            customer.street, customer.postal_code, customer.city, customer.country,
        ])
        pages += count
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue(), listing.getvalue(), pages


def make_print_batches(*, run: BillingRun, size: int | None = None) -> list[PrintBatch]:
    """Collect the run's paper invoices not yet in a batch into print batches.

    Letters are sorted by country and postal code (the post's sorting discount),
    then by number. Call under the run's row lock: batches are made once.
    """
    size = size or settings.BILLING_PRINT_BATCH_SIZE
    waiting = list(
        InvoiceDelivery.objects.unbatched_paper()
        .filter(invoice__billing_run=run)
        .select_related("invoice__customer")
        .order_by("invoice__customer__country", "invoice__customer__postal_code",
                  "invoice__document_number")
    )
    last = PrintBatch.objects.filter(run=run).aggregate(n=Max("sequence"))["n"] or 0
    batches = []
    for start in range(0, len(waiting), size):
        group = waiting[start : start + size]
        merged, listing, pages = _merge(group)
        last += 1
        batch = PrintBatch(
            run=run, sequence=last, created_at=timezone.now(), item_count=len(group),
            page_count=pages,
        )
        stem = f"run-{run.public_id}-batch-{last:03d}"
        batch.merged_pdf.save(f"{stem}.pdf", ContentFile(merged), save=False)
        batch.list_csv.save(f"{stem}.csv", ContentFile(listing.encode("utf-8")), save=False)
        batch.save()
        InvoiceDelivery.objects.filter(pk__in=[d.pk for d in group]).update(print_batch=batch)
        batches.append(batch)
    return batches
