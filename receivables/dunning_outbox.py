"""Dunning e-mails and SMS written into the outbox set-wise.

A night's run queues tens of thousands of messages: their texts are filled
in Python from the level's DunningText (only the placeholders a text uses)
and COPYed into the outbox in one stream, with the ids the notices already
hold. Their delivery tasks are published after commit, in chunks.
"""

from __future__ import annotations

import html
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from notifications.models import Channel as MessageChannel
from notifications.models import OutboxMessage
from notifications.models import Status as MessageStatus
from portal.models import Customer
from portal.services import absolute_url
from receivables.dunning_models import TEXT_PLACEHOLDERS, DunningChannel
from receivables.dunning_texts import (
    ItemFacts,
    NoticeFacts,
    Renderer,
    customer_display_name,
    fill,
    placeholders,
    texts_for,
)

MESSAGE_KIND = "dunning"
# Outbox messages per delivery task.
DELIVERY_CHUNK = 500


# Queued notices whose outbox message is not written yet: of a run, or given by id.
TO_WRITE_SQL = """
SELECT n.id, n.outbox_message_id, n.channel, n.language, n.level_id, n.currency,
       n.open_total, n.fee, n.interest, n.compensation,
       c.id, c.number, c.kind, c.first_name, c.last_name, c.company_name, c.email, c.mobile
FROM receivables_dunningnotice n
JOIN portal_customer c ON c.id = n.customer_id
WHERE n.status = 'queued' AND n.outbox_message_id IS NOT NULL
  AND (n.run_id = %(run)s OR n.id = ANY(%(ids)s))
  AND NOT EXISTS (SELECT 1 FROM notifications_outboxmessage m WHERE m.id = n.outbox_message_id)
ORDER BY n.id
"""
ITEM_FACTS_SQL = """
SELECT ni.notice_id, i.document_number, i.due_date, ni.open_amount, i.payment_reference
FROM receivables_dunningnoticeitem ni
JOIN billing_invoice i ON i.id = ni.invoice_id
WHERE ni.notice_id = ANY(%(ids)s)
ORDER BY ni.notice_id, i.due_date, i.id
"""

# Columns this module fills; any other column of the outbox gets its field's default.
_MESSAGE_COLUMNS = (
    "id", "public_id", "channel", "kind", "to", "subject", "body_text", "body_html",
    "attachments", "about_type_id", "about_id", "status", "attempts", "not_before",
    "claimed_at", "sent_at", "provider_id", "error", "created_at",
)


def portal_url() -> str:
    return absolute_url(reverse("billing:balance"))


def pay_by(day: date) -> date:
    return day + timedelta(days=settings.DUNNING_PAY_WITHIN_DAYS)


def _item_facts(notice_ids: list[int]) -> dict[int, list[ItemFacts]]:
    facts: dict[int, list[ItemFacts]] = defaultdict(list)
    with connection.cursor() as cursor:
        cursor.execute(ITEM_FACTS_SQL, {"ids": notice_ids})
        for notice_id, *item in cursor.fetchall():
            facts[notice_id].append(ItemFacts._make(item))
    return facts


def _copy_text(value: Any) -> str:
    """A value in COPY's text format: \\N for NULL; backslash, newline, CR and tab escaped
    (chained replace(): str.translate() is far slower on texts of this length)."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dict | list):
        value = json.dumps(value)
    return (
        str(value).replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        .replace("\t", "\\t")
    )


def _uuid4_text() -> str:
    """A random (version 4) UUID as text; uuid.uuid4() costs five times as much."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def write_messages(*, run_id: int | None = None, notice_ids: Sequence[int] = ()) -> list[int]:
    """Write the outbox messages of queued notices (of a run, or these) with one COPY.

    Each notice already holds the id its message gets. Texts come from the
    level's DunningText in the customer's language. Returns the message ids.
    """
    with connection.cursor() as cursor:
        cursor.execute(TO_WRITE_SQL, {"run": run_id, "ids": list(notice_ids)})
        rows = cursor.fetchall()
    if not rows:
        return []
    items = _item_facts([row[0] for row in rows])
    texts = texts_for({(row[4], row[3]) for row in rows})
    needed = {key: placeholders(text.subject, text.body) for key, text in texts.items()}
    today = timezone.localdate()
    url, operator = portal_url(), settings.OPERATOR_NAME
    renderers: dict[str, Renderer] = {}
    now = _copy_text(timezone.now())
    about_type = ContentType.objects.get_for_model(Customer).pk
    extra = "".join("\t" + _copy_text(value) for value in _other_outbox_columns().values())
    columns = [*_MESSAGE_COLUMNS, *_other_outbox_columns()]
    queued, kind, text_, empty = MessageStatus.QUEUED, MESSAGE_KIND, _copy_text, ""
    written, lines = [], []
    sql = "COPY notifications_outboxmessage ({}) FROM STDIN".format(
        ", ".join(connection.ops.quote_name(column) for column in columns)
    )
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for (notice_id, message_id, channel, language, level_id, currency, open_total, fee,
             interest, compensation, customer_id, number, customer_kind, first_name, last_name,
             company_name, email, mobile) in rows:
            renderer = renderers.get(language)
            if renderer is None:
                renderer = renderers[language] = Renderer(
                    language, deadline=pay_by(today), portal_url=url, operator_name=operator
                )
            facts = NoticeFacts(
                customer_display_name(customer_kind, first_name, last_name, company_name),
                number, currency, open_total, fee, interest, compensation, items[notice_id],
            )
            key = (level_id, language)
            text = texts.get(key)
            values = renderer.values(facts, needed.get(key, frozenset(TEXT_PLACEHOLDERS)))
            body = fill(text.body, values) if text else renderer.values(facts)["items"]
            if channel == DunningChannel.SMS:
                fields = (MessageChannel.SMS, mobile, empty, body, empty)
            else:
                subject = " ".join(fill(text.subject, values).split())[:255] if text else empty
                fields = (MessageChannel.EMAIL, email, subject, body, html_body(body))
            message_channel, to, subject, body_text, body_html = fields
            lines.append(
                f"{message_id}\t{_uuid4_text()}\t{message_channel}\t{kind}\t{text_(to)}\t"
                f"{text_(subject)}\t{text_(body_text)}\t{text_(body_html)}\t[]\t{about_type}\t"
                f"{customer_id}\t{queued}\t0\t{now}\t\\N\t\\N\t\t\t{now}{extra}\n"
            )
            written.append(message_id)
            if len(lines) >= 1000:
                copy.write("".join(lines))
                lines.clear()
        if lines:
            copy.write("".join(lines))
    return written


def html_body(text: str) -> str:
    """The HTML part of a plain text: paragraphs and line breaks (linebreaks() without regex)."""
    paragraphs = html.escape(text).split("\n\n")
    return "".join(f"<p>{part.replace(chr(10), '<br>')}</p>" for part in paragraphs if part)


def _other_outbox_columns() -> dict[str, Any]:
    """Defaults of outbox columns added after this module was written (none today)."""
    return {
        field.column: field.get_default()
        for field in OutboxMessage._meta.concrete_fields
        if field.column not in _MESSAGE_COLUMNS
    }


def deliver_after_commit(message_ids: list[int]) -> None:
    if not message_ids:
        return
    from receivables.dunning_tasks import deliver_dunning_messages

    chunks = [
        message_ids[start : start + DELIVERY_CHUNK]
        for start in range(0, len(message_ids), DELIVERY_CHUNK)
    ]

    def publish() -> None:
        for chunk in chunks:
            deliver_dunning_messages.delay(chunk)

    transaction.on_commit(publish)


# Gives approved e-mail/SMS notices their message id and moves them to queued.
QUEUE_APPROVED_SQL = """
UPDATE receivables_dunningnotice
SET status = 'queued',
    outbox_message_id = nextval(pg_get_serial_sequence('notifications_outboxmessage', 'id'))
WHERE id = ANY(%(ids)s) AND status = %(from)s AND channel IN ('sms', 'email')
RETURNING id
"""


def queue(notice_ids: Sequence[int], *, from_status: str) -> list[int]:
    """Queue the e-mail/SMS of these notices (in ``from_status``); returns the notice ids."""
    with connection.cursor() as cursor:
        cursor.execute(QUEUE_APPROVED_SQL, {"ids": list(notice_ids), "from": from_status})
        queued = [row[0] for row in cursor.fetchall()]
    if queued:
        deliver_after_commit(write_messages(notice_ids=queued))
    return queued
