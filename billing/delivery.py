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
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.db.models import Max
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _

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


def _local_paths(deliveries: Sequence[InvoiceDelivery], folder: Path) -> list[str]:
    """The letters' PDFs as files the merging process can open (copied when the storage
    keeps them elsewhere)."""
    paths = []
    for item in deliveries:
        field = item.invoice.pdf
        try:
            paths.append(field.path)
        except NotImplementedError:  # not a file system storage
            copy = folder / f"letter-{item.pk}.pdf"
            with field.open("rb") as source, copy.open("wb") as target:
                shutil.copyfileobj(source, target)
            paths.append(str(copy))
    return paths


def _merge_in_child(paths: list[str], target: Path) -> list[int]:
    """billing.printmerge in a process of its own: the worker never holds the pages."""
    done = subprocess.run(  # noqa: S603 - our interpreter, our module, no shell
        [sys.executable, "-m", "billing.printmerge"],
        input=json.dumps({"paths": paths, "target": str(target)}),
        capture_output=True,
        text=True,
        check=False,
        cwd=settings.BASE_DIR,
    )
    if done.returncode:
        raise RuntimeError(f"Merging a print batch failed: {done.stderr.strip()[-2000:]}")
    pages: list[int] = json.loads(done.stdout)
    return pages


def _listing(deliveries: Sequence[InvoiceDelivery], pages: Sequence[int]) -> str:
    """The batch's CSV mailing list: where each letter starts in the merged PDF, and its address."""
    listing = io.StringIO()
    rows = csv.writer(listing)
    rows.writerow(LIST_COLUMNS)
    first = 1
    for sequence, (item, count) in enumerate(zip(deliveries, pages, strict=True), start=1):
        invoice, customer = item.invoice, item.invoice.customer
        rows.writerow([
            sequence, first, count, invoice.document_number, customer.number, customer.name,
            customer.street, customer.postal_code, customer.city, customer.country,
        ])
        first += count
    return listing.getvalue()


def make_print_batches(*, run: BillingRun, size: int | None = None) -> list[PrintBatch]:
    """Collect the run's paper invoices not yet in a batch into print batches.

    Letters are sorted by country and postal code (the post's sorting discount),
    then by number. Call under the run's row lock: batches are made once.

    Each batch's PDF is merged by a child process (billing.printmerge), as many
    at a time as there are CPUs, and copied from its temporary file to the
    storage: the calling worker's memory stays flat however many letters a run has.
    """
    size = size or settings.BILLING_PRINT_BATCH_SIZE
    waiting = list(
        InvoiceDelivery.objects.unbatched_paper()
        .filter(invoice__billing_run=run)
        .select_related("invoice__customer")
        .order_by("invoice__customer__country", "invoice__customer__postal_code",
                  "invoice__document_number")
    )
    if not waiting:
        return []
    groups = [waiting[start : start + size] for start in range(0, len(waiting), size)]
    last = PrintBatch.objects.filter(run=run).aggregate(n=Max("sequence"))["n"] or 0
    batches = []
    with tempfile.TemporaryDirectory(prefix="print-batches-") as temporary:
        folder = Path(temporary)
        targets = [folder / f"batch-{n}.pdf" for n in range(len(groups))]
        jobs = [_local_paths(group, folder) for group in groups]
        with ThreadPoolExecutor(max_workers=min(len(groups), os.cpu_count() or 1)) as pool:
            page_counts = list(pool.map(_merge_in_child, jobs, targets))
        for group, target, pages in zip(groups, targets, page_counts, strict=True):
            last += 1
            batch = PrintBatch(
                run=run, sequence=last, created_at=timezone.now(), item_count=len(group),
                page_count=sum(pages),
            )
            stem = f"run-{run.public_id}-batch-{last:03d}"
            with target.open("rb") as merged:
                batch.merged_pdf.save(f"{stem}.pdf", File(merged), save=False)
            batch.list_csv.save(
                f"{stem}.csv", ContentFile(_listing(group, pages).encode("utf-8")), save=False
            )
            batch.save()
            InvoiceDelivery.objects.filter(pk__in=[d.pk for d in group]).update(print_batch=batch)
            batches.append(batch)
    return batches
