"""Dunning models (imported by receivables.models).

A :class:`DunningPolicy` is a ladder of :class:`DunningLevel` rows (days
after the due date, channel, fee, interest, approval). The nightly run
(receivables.dunning) turns overdue items into :class:`DunningNotice` rows,
one per customer and level, with a :class:`DunningNoticeItem` per invoice.
``UNIQUE(invoice, level)`` on the items is what makes a (customer, item,
level) notice exist once, whatever reruns or concurrent runs happen.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from billing.models import Invoice, amount_field, currency_field
from portal.models import Customer

__all__ = [
    "DunningChannel",
    "DunningLevel",
    "DunningNotice",
    "DunningNoticeItem",
    "DunningPause",
    "DunningPolicy",
    "DunningRun",
    "DunningText",
    "CustomerDunning",
    "InterestRate",
    "LetterBatch",
    "NoticeStatus",
    "PauseReason",
    "TEXT_PLACEHOLDERS",
]

NO_MONEY = Decimal("0.00")


# --- Rates -------------------------------------------------------------------


class InterestRateQuerySet(models.QuerySet["InterestRate"]):
    def effective_on(self, day: date) -> InterestRateQuerySet:
        return self.filter(valid_from__lte=day).filter(
            models.Q(valid_to=None) | models.Q(valid_to__gte=day)
        )


class InterestRate(models.Model):
    """A yearly interest rate of one kind, valid for a period: rates are data, never code.

    E.g. kind ``b2b_statutory``: the reference rate plus the statutory margin
    (EU Late Payment Directive), one row per half-year.
    """

    kind = models.SlugField(
        _("kind"), max_length=32, help_text=_("e.g. b2b_statutory; levels refer to it.")
    )
    name = models.CharField(_("name"), max_length=100, blank=True)
    rate = models.DecimalField(_("yearly rate (%)"), max_digits=6, decimal_places=3)
    valid_from = models.DateField(_("valid from"))
    valid_to = models.DateField(_("valid to"), null=True, blank=True)

    objects = InterestRateQuerySet.as_manager()

    class Meta:
        verbose_name = _("interest rate")
        verbose_name_plural = _("interest rates")
        ordering = ["kind", "-valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "valid_from"], name="interestrate_unique_start"
            ),
            models.CheckConstraint(
                condition=models.Q(rate__gte=0) & models.Q(rate__lte=100),
                name="interestrate_rate_percent",
            ),
            models.CheckConstraint(
                condition=models.Q(valid_to=None) | models.Q(valid_to__gte=models.F("valid_from")),
                name="interestrate_valid_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.rate}% {self.valid_from}"


# --- Policies and levels -------------------------------------------------------


class DunningChannel(models.TextChoices):
    SMS = "sms", _("SMS")
    EMAIL = "email", _("E-mail")
    LETTER = "letter", _("Letter")
    REGISTERED_LETTER = "registered_letter", _("Registered letter")

    @classmethod
    def letters(cls) -> tuple[str, str]:
        return (cls.LETTER.value, cls.REGISTERED_LETTER.value)


class DunningPolicy(models.Model):
    """A ladder of dunning levels; the default one applies to every customer without another."""

    name = models.CharField(_("name"), max_length=100)
    is_default = models.BooleanField(_("default"), default=False)
    minimum_amount = amount_field(
        _("minimum overdue amount"),
        default=NO_MONEY,
        help_text=_("Customers who owe less than this in overdue items are not dunned."),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("dunning policy")
        verbose_name_plural = _("dunning policies")
        ordering = ["-is_default", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True),
                name="dunningpolicy_one_default",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class DunningLevel(models.Model):
    """One step of a policy: when (days after the due date), how, and what it costs."""

    policy = models.ForeignKey(
        DunningPolicy, models.CASCADE, related_name="levels", verbose_name=_("policy")
    )
    sequence = models.PositiveSmallIntegerField(_("level"))
    name = models.CharField(_("name"), max_length=100)
    days_after_due = models.IntegerField(
        _("days after the due date"), help_text=_("Negative: a reminder before the due date.")
    )
    channel = models.CharField(_("channel"), max_length=20, choices=DunningChannel.choices)
    fee = amount_field(_("fee"), default=NO_MONEY)
    charge_interest = models.BooleanField(
        _("charge interest"), default=False,
        help_text=_("Statutory interest, to companies only (Late Payment Directive)."),
    )
    interest_kind = models.SlugField(
        _("interest rate kind"), max_length=32, blank=True, help_text=_("e.g. b2b_statutory")
    )
    compensation = amount_field(
        _("fixed compensation per item"), default=NO_MONEY,
        help_text=_("Recovery costs (e.g. 40 EUR), to companies only, once per invoice."),
    )
    needs_approval = models.BooleanField(_("needs office approval"), default=False)
    minimum_amount = amount_field(
        _("minimum amount"), default=NO_MONEY,
        help_text=_("A notice of this level is sent only for at least this open amount."),
    )
    is_disconnection_warning = models.BooleanField(_("disconnection warning"), default=False)

    class Meta:
        verbose_name = _("dunning level")
        verbose_name_plural = _("dunning levels")
        ordering = ["policy", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "sequence"], name="dunninglevel_sequence"),
            models.CheckConstraint(
                condition=models.Q(charge_interest=False) | ~models.Q(interest_kind=""),
                name="dunninglevel_interest_has_kind",
                violation_error_message=_("Name the interest rate kind to charge interest."),
            ),
            models.CheckConstraint(
                condition=models.Q(fee__gte=0, compensation__gte=0, minimum_amount__gte=0),
                name="dunninglevel_amounts_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy} · {self.sequence}. {self.name}"


# Placeholders the customer texts may use (str.format style: "{amount}").
TEXT_PLACEHOLDERS = (
    "customer_name", "customer_number", "amount", "fee", "interest", "compensation", "total",
    "charges", "currency", "items", "documents", "references", "deadline", "portal_url",
    "operator_name",
)


class DunningText(models.Model):
    """What a level says to the customer in one language (SMS: the body only)."""

    level = models.ForeignKey(DunningLevel, models.CASCADE, related_name="texts")
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES)
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    body = models.TextField(
        _("text"),
        help_text=_(
            "Placeholders: {customer_name}, {customer_number}, {amount}, {fee}, {interest}, "
            "{compensation}, {total}, {charges}, {currency}, {items}, {documents}, {references}, "
            "{deadline}, {portal_url}, {operator_name}."
        ),
    )

    class Meta:
        verbose_name = _("dunning text")
        verbose_name_plural = _("dunning texts")
        ordering = ["level", "language"]
        constraints = [
            models.UniqueConstraint(fields=["level", "language"], name="dunningtext_once"),
        ]

    def __str__(self) -> str:
        return f"{self.level} ({self.language})"

    def clean(self) -> None:
        sample = dict.fromkeys(TEXT_PLACEHOLDERS, "")
        errors: dict[str, str] = {}
        for name in ("subject", "body"):
            try:
                getattr(self, name).format_map(sample)
            except (KeyError, ValueError, IndexError) as exc:
                errors[name] = gettext("Unknown or broken placeholder: %(problem)s") % {
                    "problem": exc
                }
        if errors:
            raise ValidationError(errors)


# --- Exclusions and pauses -------------------------------------------------------


class PauseReason(models.TextChoices):
    COMPLAINT = "complaint", _("Complaint pending")
    PAYMENT_PLAN = "payment_plan", _("Payment plan agreed")
    OTHER = "other", pgettext_lazy("pause reason", "Other")


class CustomerDunning(models.Model):
    """A customer's dunning settings: another policy, excluded, or paused until a day."""

    customer = models.OneToOneField(
        Customer, models.CASCADE, related_name="dunning", verbose_name=_("customer")
    )
    policy = models.ForeignKey(
        DunningPolicy, models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("policy"), help_text=_("Blank: the default policy."),
    )
    excluded = models.BooleanField(_("never dun"), default=False)
    paused_until = models.DateField(_("paused until"), null=True, blank=True)
    pause_reason = models.CharField(
        _("why paused"), max_length=16, choices=PauseReason.choices, blank=True
    )
    note = models.CharField(_("note"), max_length=300, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("customer dunning setting")
        verbose_name_plural = _("customer dunning settings")

    def __str__(self) -> str:
        return str(self.customer)


class DunningPause(models.Model):
    """A pause of a customer's dunning, or of one disputed invoice only (the rest still goes)."""

    customer = models.ForeignKey(
        Customer, models.CASCADE, related_name="dunning_pauses", verbose_name=_("customer")
    )
    invoice = models.ForeignKey(
        Invoice, models.CASCADE, null=True, blank=True, related_name="dunning_pauses",
        verbose_name=_("disputed invoice"), help_text=_("Blank: every item of the customer."),
    )
    reason = models.CharField(_("reason"), max_length=16, choices=PauseReason.choices)
    note = models.CharField(_("note"), max_length=300, blank=True)
    until = models.DateField(_("until"), null=True, blank=True, help_text=_("Blank: until lifted."))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(_("lifted at"), null=True, blank=True)

    class Meta:
        verbose_name = _("dunning pause")
        verbose_name_plural = _("dunning pauses")
        ordering = ["-created_at"]
        indexes = [
            # The run: NOT EXISTS (… WHERE customer_id = … AND lifted_at IS NULL …).
            models.Index(
                fields=["customer"], condition=models.Q(lifted_at=None), name="dunningpause_active"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.invoice_id or '*'} {self.reason}"

    def clean(self) -> None:
        invoice = self.invoice if self.invoice_id else None
        if invoice is not None and self.customer_id and invoice.customer_id != self.customer_id:
            raise ValidationError({"invoice": gettext("This invoice belongs to another customer.")})


# --- Runs, notices, letters -------------------------------------------------------


class DunningRun(models.Model):
    """One pass of the nightly job (or of the command) over the overdue items of a day."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    run_date = models.DateField(_("date"))
    started_at = models.DateTimeField(_("started"))
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    item_count = models.PositiveIntegerField(_("items"), default=0)
    notice_count = models.PositiveIntegerField(_("notices"), default=0)
    queued_count = models.PositiveIntegerField(_("queued"), default=0)
    approval_count = models.PositiveIntegerField(_("waiting for approval"), default=0)
    letter_count = models.PositiveIntegerField(_("letters"), default=0)

    class Meta:
        verbose_name = _("dunning run")
        verbose_name_plural = _("dunning runs")
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.run_date} ({self.notice_count})"

    def office_link(self) -> tuple[str, str]:
        """The page its approval task links to (portal.office shows it on the task)."""
        url = reverse("dunning-office:approvals") + f"?run={self.public_id}"
        return gettext("Dunning notices of %(day)s waiting for approval") % {
            "day": self.run_date.isoformat()
        }, url


class NoticeStatus(models.TextChoices):
    PENDING_APPROVAL = "pending_approval", _("Waiting for approval")
    APPROVED = "approved", pgettext_lazy("dunning notice", "Approved")
    QUEUED = "queued", pgettext_lazy("dunning notice", "Queued")
    SENT = "sent", pgettext_lazy("dunning notice", "Sent")
    UNKNOWN = "unknown", _("Outcome unknown")
    CANCELLED = "cancelled", pgettext_lazy("dunning notice", "Cancelled")
    REJECTED = "rejected", pgettext_lazy("dunning notice", "Rejected")


def letter_path(notice: DunningNotice, filename: str) -> str:
    return f"dunning/letters/{notice.created_at:%Y/%m}/{filename}"


class DunningNotice(models.Model):
    """What one customer is told at one level in one run, about one or more items."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Indexed by the unique (run, customer, level, currency) and by dunningnotice_customer.
    run = models.ForeignKey(DunningRun, models.PROTECT, related_name="notices", db_index=False)
    # No database constraint: the customer is its items' invoices' customer, which
    # billing's constraint keeps (and an issued invoice is never deleted). Checking it
    # again would lock every dunned customer's row at commit, seconds of a night's run.
    customer = models.ForeignKey(
        Customer, models.PROTECT, related_name="dunning_notices", verbose_name=_("customer"),
        db_index=False, db_constraint=False,
    )
    level = models.ForeignKey(
        DunningLevel, models.PROTECT, related_name="notices", verbose_name=_("level")
    )
    status = models.CharField(_("status"), max_length=20, choices=NoticeStatus.choices)
    channel = models.CharField(_("channel"), max_length=20, choices=DunningChannel.choices)
    language = models.CharField(_("language"), max_length=8)
    currency = currency_field()
    open_total = amount_field(_("open amount"), default=NO_MONEY)
    fee = amount_field(_("fee"), default=NO_MONEY)
    interest = amount_field(_("interest"), default=NO_MONEY)
    compensation = amount_field(_("compensation"), default=NO_MONEY)
    item_count = models.PositiveIntegerField(_("items"), default=0)
    s10_number = models.CharField(_("S10 number"), max_length=13, blank=True)
    outbox_message = models.OneToOneField(
        "notifications.OutboxMessage", models.PROTECT, null=True, blank=True, related_name="+"
    )
    letter_pdf = models.FileField(upload_to=letter_path, blank=True)
    letter_sha256 = models.CharField(max_length=64, blank=True)
    # Not indexed: empty until the letter is batched; a batch's letters are in its list.
    letter_batch = models.ForeignKey(
        "LetterBatch", models.PROTECT, null=True, blank=True, related_name="notices",
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+",
        db_index=False,
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("dunning notice")
        verbose_name_plural = _("dunning notices")
        ordering = ["-created_at", "-id"]
        constraints = [
            # The run groups a customer's items of one level (and currency) into one notice.
            models.UniqueConstraint(
                fields=["run", "customer", "level", "currency"], name="dunningnotice_per_run"
            ),
            models.UniqueConstraint(
                fields=["s10_number"], condition=~models.Q(s10_number=""),
                name="dunningnotice_s10_once",
            ),
        ]
        indexes = [
            # Approval queue, reconciliation list, outcome sync: WHERE status = … ORDER BY id.
            models.Index(fields=["status", "id"], name="dunningnotice_status"),
            # Letters waiting for a batch: WHERE status = 'approved' AND channel IN (letters).
            models.Index(
                fields=["channel"], condition=models.Q(status="approved"),
                name="dunningnotice_letters_waiting",
            ),
            models.Index(fields=["customer", "-created_at"], name="dunningnotice_customer"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.level_id} {self.status}"

    @property
    def charges(self) -> Decimal:
        """Fee, interest and compensation together."""
        return self.fee + self.interest + self.compensation

    @property
    def total(self) -> Decimal:
        return self.open_total + self.charges

    @property
    def is_letter(self) -> bool:
        return self.channel in DunningChannel.letters()

    @property
    def is_registered(self) -> bool:
        return self.channel == DunningChannel.REGISTERED_LETTER


class DunningNoticeItem(models.Model):
    """One overdue invoice in a notice. Once per invoice and level, whatever happens."""

    notice = models.ForeignKey(DunningNotice, models.CASCADE, related_name="items")
    # Indexed by the unique (invoice, level). No database constraints: the run inserts
    # items of issued invoices only, which billing's trigger never lets go, and the level
    # is the notice's, whose constraint is checked; checking them again per item would
    # lock a night's invoices at commit.
    invoice = models.ForeignKey(
        Invoice, models.PROTECT, related_name="dunning_items", db_index=False,
        db_constraint=False,
    )
    level = models.ForeignKey(
        DunningLevel, models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    level_sequence = models.PositiveSmallIntegerField(_("level"))
    open_amount = amount_field(_("open amount"))
    days_overdue = models.IntegerField(_("days overdue"))
    interest = amount_field(_("interest"), default=NO_MONEY)
    # The days the interest covers (the next level charges from the day after).
    interest_from = models.DateField(null=True, blank=True)
    interest_to = models.DateField(null=True, blank=True)
    compensation = amount_field(_("compensation"), default=NO_MONEY)

    class Meta:
        verbose_name = _("dunning notice item")
        verbose_name_plural = _("dunning notice items")
        ordering = ["notice", "invoice__due_date", "invoice_id"]
        constraints = [
            # Effectively once: serves the run's NOT EXISTS (WHERE invoice_id = …) too.
            models.UniqueConstraint(fields=["invoice", "level"], name="dunningitem_once"),
        ]

    def __str__(self) -> str:
        return f"{self.notice_id} {self.invoice_id} L{self.level_sequence}"


def batch_path(batch: LetterBatch, filename: str) -> str:
    return f"dunning/batches/{batch.created_at:%Y/%m}/{filename}"


class LetterBatch(models.Model):
    """Dunning letters of a day merged into one PDF for the printer, with their posting list."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(_("made at"))
    letter_count = models.PositiveIntegerField(_("letters"), default=0)
    registered_count = models.PositiveIntegerField(_("registered letters"), default=0)
    page_count = models.PositiveIntegerField(_("pages"), default=0)
    merged_pdf = models.FileField(upload_to=batch_path, blank=True)
    list_csv = models.FileField(upload_to=batch_path, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("letter batch")
        verbose_name_plural = _("letter batches")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} ({self.letter_count})"
