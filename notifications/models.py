from __future__ import annotations

import uuid
from typing import Any

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import BigIntegerRangeField, RangeOperators
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Func, Value
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Cast, Greatest, Least, Ord, Substr
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from notifications.countries import is_country


class Channel(models.TextChoices):
    EMAIL = "email", _("E-mail")
    SMS = "sms", _("SMS")


class Status(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    BOUNCED = "bounced", _("Bounced")
    # Withdrawn before it was claimed (a dunning notice paid meanwhile); never sent.
    # Spelled to fit the 8-character column.
    CANCELLED = "canceled", _("Cancelled")


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


# --- UPU S10 numbers for registered mail --------------------------------------

# First letters of the S10 service indicators we may be given ranges for:
# R registered, C parcels, E EMS, L letter-post express, V insured, U other
# tracked letter post, M M-bags, Q (QA–QM only) IBRS.
S10_PREFIX_PATTERN = r"^([RCELVUM][A-Z]|Q[A-M])$"
S10_LAST_SERIAL = 99_999_999


def _letters_key(field: str) -> CombinedExpression:
    """Two capital letters as a number 0…675 ("AA" → 0, "ZZ" → 675)."""
    first = Ord(Substr(field, 1, 1)) - 65
    second = Ord(Substr(field, 2, 1)) - 65
    return Cast(first, models.BigIntegerField()) * 26 + second


def _s10_span() -> Func:
    """The range's serials as one int8range in a space shared by every prefix and country.

    The embedded PostgreSQL has no btree_gist, so an exclusion constraint cannot
    mix "prefix =" with "serials &&". Instead prefix, country and serial are laid
    end to end in one bigint (prefix key × 676 + country key) × 10⁸ + serial:
    two ranges overlap in that space exactly when they share prefix and country
    and their serials overlap. The check constraints keep prefix and country to
    capital letters, so the key is one-to-one.
    """
    base = (_letters_key("prefix") * 676 + _letters_key("country")) * (S10_LAST_SERIAL + 1)
    # Least/Greatest: a reversed range gets the check constraint's message, not an error.
    return Func(
        base + Least("first_serial", "last_serial"),
        base + Greatest("first_serial", "last_serial"),
        Value("[]"),
        function="int8range",
        output_field=BigIntegerRangeField(),
    )


class S10RangeQuerySet(models.QuerySet["S10Range"]):
    def with_room(self, *, prefix: str, country: str) -> S10RangeQuerySet:
        """Active ranges of a prefix and country that still have a number, in handing-out order."""
        return self.filter(
            prefix=prefix, country=country, active=True, next_serial__lte=F("last_serial")
        ).order_by("first_serial")


class S10Range(models.Model):
    """A block of S10 serials the postal operator assigned to us for one product.

    Numbers are handed out upwards from ``next_serial``, which never goes down
    (a database trigger refuses it); once a number was issued, the start,
    service indicator and country of the range are fixed too, so no serial is
    ever handed out twice.
    """

    prefix = models.CharField(
        _("service indicator"),
        max_length=2,
        help_text=_("Two letters from the operator's contract, e.g. RR for registered letters."),
    )
    country = models.CharField(
        _("country"), max_length=2, help_text=_("ISO code of the issuing operator, e.g. RO.")
    )
    product = models.CharField(_("product"), max_length=100)
    first_serial = models.PositiveIntegerField(_("first serial"))
    last_serial = models.PositiveIntegerField(_("last serial"))
    next_serial = models.PositiveIntegerField(
        _("next serial"),
        blank=True,
        help_text=_("The next serial to hand out; it can only go up. Empty: the first serial."),
    )
    alarm_remaining = models.PositiveIntegerField(
        _("alarm threshold"),
        default=500,
        help_text=_("Warn the office when this many numbers or fewer are left."),
    )
    active = models.BooleanField(_("active"), default=True)
    alarm_sent_at = models.DateTimeField(_("alarm sent at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    objects = S10RangeQuerySet.as_manager()

    class Meta:
        verbose_name = _("S10 range")
        verbose_name_plural = _("S10 ranges")
        ordering = ["prefix", "country", "first_serial"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(prefix__regex=S10_PREFIX_PATTERN),
                name="s10range_prefix_valid",
                violation_error_message=_(
                    "The service indicator must be two capital letters starting with "
                    "R, C, E, L, V, U, M or Q (QA to QM)."
                ),
            ),
            models.CheckConstraint(
                condition=models.Q(country__regex=r"^[A-Z]{2}$"),
                name="s10range_country_letters",
                violation_error_message=_("Enter the two-letter ISO country code, e.g. RO."),
            ),
            models.CheckConstraint(
                condition=models.Q(
                    first_serial__lte=F("last_serial"), last_serial__lte=S10_LAST_SERIAL
                ),
                name="s10range_serials_ordered",
                violation_error_message=_(
                    "The serials run from the first to the last, at most 99999999."
                ),
            ),
            models.CheckConstraint(
                condition=models.Q(
                    next_serial__gte=F("first_serial"), next_serial__lte=F("last_serial") + 1
                ),
                name="s10range_next_within",
                violation_error_message=_(
                    "The next serial must lie between the first serial and one past the last."
                ),
            ),
            # Also serves allocate()'s lookup of ranges by prefix and country.
            ExclusionConstraint(
                name="s10range_no_overlap",
                expressions=[(_s10_span(), RangeOperators.OVERLAPS)],
                violation_error_message=_(
                    "These serials overlap another range of the same service indicator and country."
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}…{self.country} {self.first_serial:08d}–{self.last_serial:08d}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.next_serial is None:
            self.next_serial = self.first_serial
        super().save(*args, **kwargs)

    @property
    def used(self) -> int:
        return self.next_serial - self.first_serial

    @property
    def remaining(self) -> int:
        return self.last_serial - self.next_serial + 1

    def rearm_alarm(self) -> None:
        """After the range was extended or its threshold lowered, warn again when it runs low."""
        if self.alarm_sent_at is not None and self.remaining > self.alarm_remaining:
            self.alarm_sent_at = None

    def clean(self) -> None:
        self.prefix = self.prefix.strip().upper()
        self.country = self.country.strip().upper()
        if self.next_serial is None and self.first_serial is not None:
            self.next_serial = self.first_serial
        errors: dict[str, str] = {}
        if self.country and not is_country(self.country):
            errors["country"] = gettext("“%(code)s” is not an ISO country code.") % {
                "code": self.country
            }
        stored = (
            S10Range.objects.filter(pk=self.pk)
            .values("prefix", "country", "first_serial", "next_serial")
            .first()
            if self.pk
            else None
        )
        if stored and self.next_serial is not None and self.next_serial < stored["next_serial"]:
            errors["next_serial"] = gettext(
                "Numbers up to %(serial)08d were already handed out: the next serial "
                "cannot go below %(next)d."
            ) % {"serial": stored["next_serial"] - 1, "next": stored["next_serial"]}
        if stored and stored["next_serial"] > stored["first_serial"]:
            fixed = gettext("Numbers were issued from this range: this cannot change any more.")
            for name in ("prefix", "country", "first_serial"):
                if getattr(self, name) != stored[name]:
                    errors[name] = fixed
        if errors:
            raise ValidationError(errors)


class S10Number(models.Model):
    """An S10 number that was handed out. The unique index is the last guard against reuse."""

    number = models.CharField(_("number"), max_length=13, unique=True)
    range = models.ForeignKey(
        S10Range, models.PROTECT, related_name="numbers", verbose_name=_("range")
    )
    serial = models.PositiveIntegerField(_("serial"))
    purpose = models.CharField(_("purpose"), max_length=255, blank=True)
    # What the number went on, in words ("Dunning notice 2026-000123 to C0100001"):
    # notifications knows no other app's models.
    about_label = models.CharField(_("about"), max_length=255, blank=True)
    issued_at = models.DateTimeField(_("issued at"), default=timezone.now)

    class Meta:
        verbose_name = _("S10 number")
        verbose_name_plural = _("S10 numbers")
        ordering = ["-issued_at", "-id"]

    def __str__(self) -> str:
        return self.number
