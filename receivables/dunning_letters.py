"""Dunning letters: the PDF of a notice, S10 numbers for registered letters, letter batches.

An approved letter is prepared once: a registered letter first gets its S10
number (in its own transaction, so the number is issued only with the
notice that carries it), then its PDF is rendered and stored with its
SHA-256. The approved, prepared letters are then collected into a batch: one
merged PDF for the printer (each letter padded to an even page count) and a
CSV posting list with the S10 numbers and addresses. A letter is sent when it
is in a batch; its charges enter the ledger then.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from pypdf import PdfReader, PdfWriter

from billing.codes import PayableDocument, code128, payment_codes
from billing.documents import money, payment_references, printed_code
from billing.operator import Operator, current_operator
from notifications.s10 import S10Exhausted, allocate
from portal.documents import render_pdf
from portal.models import Task, TaskKind, TaskPriority, User
from portal.roles import Role
from portal.services import create_task, record
from receivables.dunning import post_charges
from receivables.dunning_models import (
    DunningChannel,
    DunningNotice,
    DunningNoticeItem,
    LetterBatch,
    NoticeStatus,
)
from receivables.dunning_outbox import pay_by, portal_url
from receivables.dunning_texts import ItemFacts, NoticeFacts, Renderer, fill, texts_for

log = logging.getLogger(__name__)

TEMPLATE = "receivables/dunning/letter.html"
LIST_COLUMNS = (
    "sequence", "first_page", "pages", "s10_number", "registered", "notice", "customer_number",
    "name", "street", "postal_code", "city", "country",
)
# Payment codes are printed for this many items; more are listed with their references.
ITEMS_WITH_CODES = 4


def _waiting_letters() -> Any:
    return DunningNotice.objects.filter(
        status=NoticeStatus.APPROVED, channel__in=DunningChannel.letters(), letter_batch=None
    )


# --- one letter --------------------------------------------------------------------------


def _item_block(item: DunningNoticeItem, operator: Operator, with_codes: bool) -> dict[str, Any]:
    invoice = item.invoice
    refs = payment_references(invoice, operator)
    qr_codes, barcode = [], None
    if with_codes and refs and invoice.due_date is not None:
        codes = payment_codes(
            PayableDocument(
                document_number=invoice.document_number, currency=invoice.currency,
                amount=item.open_amount, due_date=invoice.due_date, references=refs,
                note=invoice.document_number,
            ),
            operator.payment_code_settings(),
        )
        qr_codes = [printed_code(code) for code in codes if code.kind != "code128"]
        barcodes = [printed_code(code) for code in codes if code.kind == "code128"]
        barcode = barcodes[0] if barcodes else None
    return {
        "number": invoice.document_number,
        "due_date": invoice.due_date,
        "days_overdue": item.days_overdue,
        "open": money(item.open_amount),
        "interest": money(item.interest) if item.interest else "",
        "compensation": money(item.compensation) if item.compensation else "",
        "references": refs,
        "qr_codes": qr_codes,
        "barcode": barcode,
    }


def letter_context(notice: DunningNotice, operator: Operator | None = None) -> dict[str, Any]:
    """What the letter prints, formatted in the active language (call inside override)."""
    operator = operator or current_operator()
    items = list(notice.items.select_related("invoice__customer").order_by(
        "invoice__due_date", "invoice_id"
    ))
    language = translation.get_language() or settings.LANGUAGE_CODE
    day = timezone.localdate(notice.created_at)
    renderer = Renderer(language, deadline=pay_by(timezone.localdate()),
                        portal_url=portal_url(), operator_name=operator.name)
    customer = notice.customer
    facts = NoticeFacts(
        customer_name=customer.name, customer_number=customer.number, currency=notice.currency,
        open_total=notice.open_total, fee=notice.fee, interest=notice.interest,
        compensation=notice.compensation,
        items=[ItemFacts(i.invoice.document_number, i.invoice.due_date, i.open_amount,
                         i.invoice.payment_reference) for i in items],
    )
    values = renderer.values(facts)
    text = texts_for({(notice.level_id, notice.language)}).get(
        (notice.level_id, notice.language)
    )
    subject = fill(text.subject, values) if text else notice.level.name
    body = fill(text.body, values) if text else values["items"]
    s10 = None
    if notice.s10_number:
        s10 = printed_code(code128(notice.s10_number, label=_("Registered letter"),
                                   text=notice.s10_number))
    return {
        "notice": notice,
        "customer": customer,
        "operator": operator,
        "subject": subject,
        "paragraphs": [part.strip() for part in body.split("\n\n") if part.strip()],
        "items": [_item_block(item, operator, n < ITEMS_WITH_CODES)
                  for n, item in enumerate(items)],
        "currency": notice.currency,
        "open_total": money(notice.open_total),
        "fee": money(notice.fee) if notice.fee else "",
        "interest": money(notice.interest) if notice.interest else "",
        "compensation": money(notice.compensation) if notice.compensation else "",
        "total": money(notice.total),
        "deadline": pay_by(timezone.localdate()),
        "day": day,
        "registered": notice.is_registered,
        "s10": s10,
        "portal_url": values["portal_url"],
    }


def render_letter(notice: DunningNotice) -> bytes:
    with translation.override(notice.language):
        return render_pdf(TEMPLATE, letter_context(notice))


class NoS10Numbers(Exception):
    """Registered letters wait: no S10 range has numbers left."""


def _number_registered_letter(notice_id: int) -> DunningNotice | None:
    """The approved letter, with its S10 number if registered; None if nothing is to be done."""
    with transaction.atomic():
        notice = (
            DunningNotice.objects.select_for_update(of=("self",))
            .select_related("customer", "level").filter(pk=notice_id).first()
        )
        if (notice is None or notice.status != NoticeStatus.APPROVED or not notice.is_letter
                or notice.letter_pdf):
            return None
        if notice.is_registered and not notice.s10_number:
            try:
                notice.s10_number = allocate(
                    prefix=settings.DUNNING_S10_PREFIX, country=settings.DUNNING_S10_COUNTRY,
                    purpose="dunning",
                    about_label=f"Dunning notice {notice.public_id} to {notice.customer.number}",
                )[0]
            except (S10Exhausted, ValueError) as exc:
                # No range left, or DUNNING_S10_PREFIX/COUNTRY are not valid S10 values.
                raise NoS10Numbers(str(exc)) from exc
            notice.save(update_fields=["s10_number"])
    return notice


def prepare_letter(*, notice_id: int) -> bool:
    """Number (if registered), render and store one approved letter; True if it did now.

    Idempotent: a letter with its PDF is left alone, also when two workers
    race (the row lock decides; the slower rendering is dropped).
    """
    notice = _number_registered_letter(notice_id)
    if notice is None:
        return False
    pdf = render_letter(notice)
    with transaction.atomic():
        locked = DunningNotice.objects.select_for_update().get(pk=notice_id)
        if locked.status != NoticeStatus.APPROVED or locked.letter_pdf:
            return False
        name = f"{locked.public_id}.pdf"
        locked.letter_pdf.save(name, ContentFile(pdf), save=False)
        locked.letter_sha256 = hashlib.sha256(pdf).hexdigest()
        locked.save(update_fields=["letter_pdf", "letter_sha256"])
    return True


def prepare_letters(notice_ids: Sequence[int]) -> int:
    """Prepare these letters; registered ones wait (with a staff task) when S10 numbers run out."""
    done = 0
    for notice_id in notice_ids:
        try:
            done += prepare_letter(notice_id=notice_id)
        except NoS10Numbers as exc:
            _task_once(str(exc))
            log.warning("dunning letter %s waits for S10 numbers", notice_id)
    return done


def _task_once(subject: str) -> None:
    if not Task.objects.open().filter(subject=subject[:200]).exists():
        create_task(subject=subject, kind=TaskKind.COLLECTIONS, team=Role.COLLECTIONS,
                    priority=TaskPriority.URGENT)


# --- batches -----------------------------------------------------------------------------


def _merge(notices: Sequence[DunningNotice]) -> tuple[bytes, str, int]:
    """(merged PDF, CSV posting list, pages) of the letters, in this order."""
    writer = PdfWriter()
    listing = io.StringIO()
    rows = csv.writer(listing)
    rows.writerow(LIST_COLUMNS)
    pages = 0
    for sequence, notice in enumerate(notices, start=1):
        with notice.letter_pdf.open("rb") as fh:
            reader = PdfReader(io.BytesIO(fh.read()))
        count = len(reader.pages)
        writer.append(reader)
        if count % 2:
            writer.add_blank_page()
            count += 1
        customer = notice.customer
        rows.writerow([
            sequence, pages + 1, count, notice.s10_number, "yes" if notice.is_registered else "no",
            notice.public_id, customer.number, customer.name, customer.street,
            customer.postal_code, customer.city, customer.country,
        ])
        pages += count
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue(), listing.getvalue(), pages


def make_letter_batch(*, by: User | None = None, request: Any = None) -> LetterBatch | None:
    """Collect the approved letters ready now into one batch; None when there are none.

    Letters not prepared yet (a lost task) are prepared first. The letters are
    sorted by country and postal code (the post's sorting discount). Each
    becomes sent, and its charges enter the ledger, with the batch.
    """
    unprepared = list(_waiting_letters().filter(letter_pdf="").values_list("pk", flat=True))
    prepare_letters(unprepared)
    with transaction.atomic():
        notices = list(
            _waiting_letters().exclude(letter_pdf="")
            .select_for_update(of=("self",), skip_locked=True)
            .select_related("customer")
            .order_by("customer__country", "customer__postal_code", "pk")
        )
        if not notices:
            return None
        merged, listing, pages = _merge(notices)
        now = timezone.now()
        batch = LetterBatch(
            created_at=now, letter_count=len(notices),
            registered_count=sum(1 for notice in notices if notice.is_registered),
            page_count=pages, created_by=by if by is not None and by.is_authenticated else None,
        )
        stem = f"dunning-letters-{now:%Y%m%d-%H%M%S}-{batch.public_id.hex[:8]}"
        batch.merged_pdf.save(f"{stem}.pdf", ContentFile(merged), save=False)
        batch.list_csv.save(f"{stem}.csv", ContentFile(listing.encode("utf-8")), save=False)
        batch.save()
        ids = [notice.pk for notice in notices]
        DunningNotice.objects.filter(pk__in=ids).update(
            letter_batch=batch, status=NoticeStatus.SENT, sent_at=now
        )
        post_charges(ids)
        record(action="dunning.letter_batch.made", actor=by, obj=batch,
               after={"letters": batch.letter_count, "pages": pages}, request=request)
    return batch
