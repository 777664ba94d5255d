from __future__ import annotations

import uuid

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Channel(models.TextChoices):
    EMAIL = "email", _("E-mail")
    SMS = "sms", _("SMS")


class Status(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    BOUNCED = "bounced", _("Bounced")


class OutboxQuerySet(models.QuerySet["OutboxMessage"]):
    def about(self, obj: models.Model) -> OutboxQuerySet:
        """Messages sent about ``obj`` (a customer, an invoice…)."""
        return self.filter(about_type=ContentType.objects.get_for_model(obj), about_id=obj.pk)

    def due(self) -> OutboxQuerySet:
        return self.filter(status=Status.QUEUED, not_before__lte=timezone.now())


class OutboxMessage(models.Model):
    """One e-mail or SMS to send, written in the transaction that caused it.

    The dispatcher claims a row by moving it from queued to sending with a
    conditional UPDATE, so a retried or duplicated task never sends twice.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    kind = models.CharField(max_length=64, help_text="What the message is, e.g. activation")
    to = models.CharField(max_length=254)
    subject = models.CharField(max_length=255, blank=True)
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
    # [{"name": ..., "path": <default storage path>, "content_type": ...}]
    attachments = models.JSONField(default=list, blank=True)
    # Whom or what the message is about: the customer page lists them.
    about_type = models.ForeignKey(
        ContentType, models.CASCADE, null=True, blank=True, related_name="+"
    )
    about_id = models.PositiveBigIntegerField(null=True, blank=True)
    about = GenericForeignKey("about_type", "about_id")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    not_before = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    provider_id = models.CharField(max_length=128, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = OutboxQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The sweeper: WHERE status = 'queued' AND not_before <= now().
            models.Index(
                fields=["not_before"],
                condition=models.Q(status="queued"),
                name="outbox_queued_due",
            ),
            # Customer page: WHERE about_type_id = … AND about_id = … ORDER BY created_at DESC.
            models.Index(fields=["about_type", "about_id", "-created_at"], name="outbox_about"),
            # Bounce reports find the message by the provider's id.
            models.Index(fields=["provider_id"], name="outbox_provider_id"),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.to}: {self.subject or self.kind}"
