"""Queueing and delivering outbox messages."""

from __future__ import annotations

import logging
import smtplib
from datetime import timedelta
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.files.storage import default_storage
from django.core.mail import EmailMultiAlternatives
from django.db import models, transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation

from notifications.models import Channel, OutboxMessage, Status
from notifications.sms import SmsError, get_provider

log = logging.getLogger(__name__)


def _about_fields(about: models.Model | None) -> dict[str, Any]:
    if about is None:
        return {}
    return {"about_type": ContentType.objects.get_for_model(about), "about_id": about.pk}


def _dispatch_after_commit(message: OutboxMessage) -> None:
    from notifications.tasks import send_message

    send_message.delay_on_commit(message.pk)  # type: ignore[attr-defined]


def queue_email(
    *,
    to: str,
    kind: str,
    template: str,
    context: dict[str, Any],
    language: str = "en",
    about: models.Model | None = None,
    attachments: list[dict[str, str]] | None = None,
) -> OutboxMessage:
    """Render ``template``_subject.txt/.txt/.html in ``language`` and queue the e-mail.

    Call inside the transaction of the change that causes it: the row commits
    with that change and the dispatcher sends it after commit.
    """
    with translation.override(language):
        subject = render_to_string(f"{template}_subject.txt", context).strip()
        body_text = render_to_string(f"{template}.txt", context)
        body_html = render_to_string(f"{template}.html", context)
    return queue_rendered_email(
        to=to,
        kind=kind,
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        about=about,
        attachments=attachments,
    )


def queue_rendered_email(
    *,
    to: str,
    kind: str,
    subject: str,
    body_text: str,
    body_html: str = "",
    about: models.Model | None = None,
    attachments: list[dict[str, str]] | None = None,
) -> OutboxMessage:
    """Queue an e-mail whose texts are already rendered (e.g. by allauth)."""
    message = OutboxMessage.objects.create(
        channel=Channel.EMAIL,
        kind=kind,
        to=to,
        subject=" ".join(subject.split()),
        body_text=body_text,
        body_html=body_html,
        attachments=attachments or [],
        **_about_fields(about),
    )
    _dispatch_after_commit(message)
    return message


def queue_sms(*, to: str, kind: str, text: str, about: models.Model | None = None) -> OutboxMessage:
    message = OutboxMessage.objects.create(
        channel=Channel.SMS, kind=kind, to=to, body_text=text, **_about_fields(about)
    )
    _dispatch_after_commit(message)
    return message


def claim(message_id: int) -> bool:
    """Move one queued, due message to sending; True only for the one caller that did."""
    now = timezone.now()
    changed = OutboxMessage.objects.filter(
        pk=message_id, status=Status.QUEUED, not_before__lte=now
    ).update(status=Status.SENDING, claimed_at=now, attempts=models.F("attempts") + 1)
    return changed == 1


def deliver(message_id: int) -> str | None:
    """Send one message if this caller wins the claim. Returns the final status."""
    if not claim(message_id):
        return None
    message = OutboxMessage.objects.get(pk=message_id)
    try:
        if message.channel == Channel.EMAIL:
            provider_id = _send_email(message)
        else:
            provider_id = get_provider().send(
                to=message.to, text=message.body_text, reference=str(message.public_id)
            )
    except SmsError as exc:
        return _record_failure(message, str(exc), permanent=exc.permanent)
    except (MissingAttachment, smtplib.SMTPException, OSError) as exc:
        error, permanent = _describe_email_error(exc)
        return _record_failure(message, error, permanent=permanent)
    message.status = Status.SENT
    message.sent_at = timezone.now()
    message.provider_id = provider_id
    message.error = ""
    message.save(update_fields=["status", "sent_at", "provider_id", "error"])
    return message.status


class MissingAttachment(Exception):
    """A file named in the message is gone from storage: trying again cannot help."""


def _message_id(message: OutboxMessage) -> str:
    """A Message-ID of our choosing: a bounce report quotes it, so it finds the row."""
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"
    return f"<{message.public_id}@{domain}>"


def _send_email(message: OutboxMessage) -> str:
    """Send over the configured backend; return the Message-ID as the provider's id."""
    message_id = _message_id(message)
    email = EmailMultiAlternatives(
        subject=message.subject,
        body=message.body_text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[message.to],
        headers={"Message-ID": message_id, "X-Guichet-Message": str(message.public_id)},
    )
    if message.body_html:
        email.attach_alternative(message.body_html, "text/html")
    for item in message.attachments:
        try:
            with default_storage.open(item["path"], "rb") as fh:
                content = fh.read()
        except FileNotFoundError:
            raise MissingAttachment(f"Attachment missing from storage: {item['path']}") from None
        email.attach(item["name"], content, item.get("content_type"))
    email.send(fail_silently=False)
    return message_id


def _describe_email_error(exc: Exception) -> tuple[str, bool]:
    """A readable reason, and whether it is final.

    The mail server's 5xx answers about this message or its recipient are
    final. 4xx answers, a refused login (our configuration: once fixed, every
    waiting message should go) and network trouble are tried again later.
    """
    if isinstance(exc, MissingAttachment):
        return str(exc), True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        answers = [(address, code, _text(text)) for address, (code, text) in exc.recipients.items()]
        reason = "; ".join(f"{address}: {code} {text}" for address, code, text in answers)
        return f"Recipient refused: {reason}", all(code >= 500 for _a, code, _t in answers)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"Mail server refused our login: {exc.smtp_code} {_text(exc.smtp_error)}", False
    if isinstance(exc, smtplib.SMTPResponseException):
        permanent = exc.smtp_code >= 500
        return f"Mail server answered {exc.smtp_code} {_text(exc.smtp_error)}", permanent
    return f"Mail server unreachable: {exc or exc.__class__.__name__}", False


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _record_failure(message: OutboxMessage, error: str, *, permanent: bool) -> str:
    if permanent or message.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
        message.status = Status.FAILED
    else:
        # Transient: back off (1, 4, 9… minutes) and let the sweeper retry.
        message.status = Status.QUEUED
        message.not_before = timezone.now() + timedelta(minutes=message.attempts**2)
    message.error = error[:2000]
    message.save(update_fields=["status", "error", "not_before"])
    log.warning("outbox %s: %s (%s)", message.public_id, error, message.status)
    return message.status


def mark_bounced(*, provider_id: str, reason: str) -> int:
    """Record a bounce reported by the mail server or SMS provider."""
    return OutboxMessage.objects.filter(
        provider_id=provider_id, status__in=[Status.SENT, Status.SENDING]
    ).update(status=Status.BOUNCED, error=reason[:2000])


def dispatch_due(*, limit: int = 500) -> int:
    """Send queued messages whose time has come (retries, lost after-commit hooks).

    Also returns messages stuck in "sending" for over an hour (a killed worker)
    to the failed state with a note: their outcome is unknown, so they are
    never resent blindly; staff see them on the customer page.
    """
    stale = timezone.now() - timedelta(hours=1)
    OutboxMessage.objects.filter(status=Status.SENDING, claimed_at__lt=stale).update(
        status=Status.FAILED, error="Outcome unknown: the sender stopped while sending."
    )
    due = OutboxMessage.objects.due().order_by("not_before").values_list("pk", flat=True)
    sent = 0
    for message_id in list(due[:limit]):
        if deliver(message_id) == Status.SENT:
            sent += 1
    return sent


@transaction.atomic
def requeue(*, message: OutboxMessage) -> None:
    """Staff ask to try a failed message again."""
    OutboxMessage.objects.filter(pk=message.pk, status=Status.FAILED).update(
        status=Status.QUEUED, not_before=timezone.now(), error=""
    )
    _dispatch_after_commit(message)
