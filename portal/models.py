from __future__ import annotations

import re
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import BaseUserManager
from django.contrib.auth.models import AbstractUser, Group
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchQuery, SearchVector, SearchVectorField
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.validators import normalise_phone, validate_tax_id, validate_vat_id


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra: Any) -> User:
        if not email:
            raise ValueError("An e-mail address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)


class User(AbstractUser):
    """A person who logs in: a customer representative, staff or a courier.

    Logs in by e-mail. ``is_staff`` means "may use the Django admin"; office
    access comes from the staff role groups (see portal.roles).
    """

    username = None  # type: ignore[assignment]
    email = models.EmailField(_("e-mail address"), unique=True)
    language = models.CharField(
        _("language"), max_length=8, choices=settings.LANGUAGES, default="en"
    )

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = []  # type: ignore[misc]

    objects = UserManager()  # type: ignore[misc,assignment]

    def __str__(self) -> str:
        return self.get_full_name() or self.email


class CustomerKind(models.TextChoices):
    PERSON = "person", _("Person")
    COMPANY = "company", _("Company")


def _search_query(text: str) -> str | None:
    """A to_tsquery expression: every typed word must start a word of the customer.

    A typed phone number is one word, tried with and without its leading
    zeros ("0721 000 111" and "721000111"), which also keeps postal codes
    like "010101" findable.
    """
    text = text.strip().lower()
    if re.fullmatch(r"[+\d][\d\s().\-/]{3,}", text):
        digits = re.sub(r"\D", "", text)
        spellings = dict.fromkeys([digits, digits.lstrip("0")])
        return " | ".join(f"'{s}':*" for s in spellings if s) or None
    words = [w.strip(".-") for w in re.findall(r"[\w@.\-]+", text)]
    words = [w for w in words if w][:8]
    return " & ".join(f"'{w}':*" for w in words) or None


class CustomerQuerySet(models.QuerySet["Customer"]):
    def search(self, text: str) -> CustomerQuerySet:
        """Customers whose number, names, e-mail, phone, tax ids or address have
        words starting with every word typed (full-text prefix match)."""
        query = _search_query(text)
        if query is None:
            return self.none()
        return self.filter(search_vector=SearchQuery(query, search_type="raw", config="simple"))


class Customer(models.Model):
    """Someone the operator bills: a household or a company."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    number = models.CharField(_("customer number"), max_length=20, unique=True)
    kind = models.CharField(
        _("kind"), max_length=10, choices=CustomerKind.choices, default=CustomerKind.PERSON
    )
    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    company_name = models.CharField(_("company name"), max_length=200, blank=True)
    tax_id = models.CharField(
        _("tax id"),
        max_length=32,
        blank=True,
        help_text=_("Personal or company tax number (CNP/CUI, PESEL/NIP, codice fiscale, IČO)."),
    )
    vat_id = models.CharField(_("VAT id"), max_length=32, blank=True)
    street = models.CharField(_("street and number"), max_length=200)
    postal_code = models.CharField(_("postal code"), max_length=16)
    city = models.CharField(_("city"), max_length=100)
    country = models.CharField(_("country"), max_length=2, default="RO")
    language = models.CharField(
        _("language"), max_length=8, choices=settings.LANGUAGES, default="en"
    )
    email = models.EmailField(_("e-mail"), blank=True)
    mobile = models.CharField(_("mobile phone"), max_length=20, blank=True)
    consent_ebilling = models.BooleanField(
        _("e-billing"), default=False, help_text=_("Invoices by e-mail instead of paper.")
    )
    consent_electronic_delivery = models.BooleanField(
        _("electronic delivery"),
        default=False,
        help_text=_("Letters and notices delivered electronically instead of by post."),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Words to find the customer by, kept by save() (phone numbers in the
    # spellings people type them); search_vector indexes them for prefix search.
    search_text = models.TextField(editable=False, default="")
    search_vector = models.GeneratedField(
        expression=SearchVector("search_text", config="simple"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    objects = CustomerQuerySet.as_manager()

    BILLING_FIELDS = (
        "kind",
        "first_name",
        "last_name",
        "company_name",
        "tax_id",
        "vat_id",
        "street",
        "postal_code",
        "city",
        "country",
    )

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        ordering = ["number"]
        permissions = [
            ("grant_portal_access", "Can grant portal access to a representative"),
        ]
        indexes = [
            # Office customer search: search_vector @@ to_tsquery('simple', 'word:*').
            GinIndex(fields=["search_vector"], name="customer_search"),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.search_text = self.build_search_text()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "search_text", "updated_at"}
        super().save(*args, **kwargs)

    @property
    def name(self) -> str:
        if self.kind == CustomerKind.COMPANY:
            return self.company_name
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def address(self) -> str:
        return f"{self.street}, {self.postal_code} {self.city}"

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        if self.kind == CustomerKind.COMPANY and not self.company_name:
            errors["company_name"] = _("A company needs its registered name.")
        if self.kind == CustomerKind.PERSON and not self.last_name:
            errors["last_name"] = _("A person needs a last name.")
        if self.tax_id:
            try:
                self.tax_id = validate_tax_id(self.tax_id, self.country, self.kind)
            except ValidationError as exc:
                errors["tax_id"] = exc.messages
        if self.vat_id:
            try:
                self.vat_id = validate_vat_id(self.vat_id)
            except ValidationError as exc:
                errors["vat_id"] = exc.messages
        if self.mobile:
            self.mobile = normalise_phone(self.mobile)
        if errors:
            raise ValidationError(errors)

    def build_search_text(self) -> str:
        parts = [
            self.number,
            self.number.lstrip("C").lstrip("0"),
            self.first_name,
            self.last_name,
            self.company_name,
            self.email,
            self.street,
            self.postal_code,
            self.city,
            self.tax_id,
            self.vat_id,
        ]
        if "@" in self.email:
            parts += self.email.split("@", 1)  # "ana@ex" finds ana@example.com
        digits = re.sub(r"\D", "", self.mobile)
        if digits:
            # "+40 721 000 111", "0721 000 111" and "721 000 111" all find it.
            parts += [digits, digits[2:] if self.mobile.startswith("+") else digits.lstrip("0")]
        return " ".join(p for p in parts if p).lower()

    def billing_data(self) -> dict[str, str]:
        return {field: getattr(self, field) for field in self.BILLING_FIELDS}


class Representative(models.Model):
    """A named person who acts for a customer (S1: the relationship is with people)."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    customer = models.ForeignKey(
        Customer, models.CASCADE, related_name="representatives", verbose_name=_("customer")
    )
    first_name = models.CharField(_("first name"), max_length=100)
    last_name = models.CharField(_("last name"), max_length=100)
    function = models.CharField(_("function"), max_length=100, blank=True)
    email = models.EmailField(_("e-mail"), blank=True)
    phone = models.CharField(_("phone"), max_length=20, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="representations",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("representative")
        verbose_name_plural = _("representatives")
        ordering = ["last_name", "first_name"]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def clean(self) -> None:
        if self.phone:
            self.phone = normalise_phone(self.phone)


class MembershipRole(models.TextChoices):
    OWNER = "owner", _("Owner")
    MANAGER = "manager", _("Manager")
    VIEWER = "viewer", _("Viewer")


class Membership(models.Model):
    """A user's right to act for a customer in the portal."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="memberships")
    customer = models.ForeignKey(Customer, models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=10, choices=MembershipRole.choices)
    representative = models.ForeignKey(
        Representative, models.SET_NULL, null=True, blank=True, related_name="memberships"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(fields=["user", "customer"], name="membership_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} → {self.customer} ({self.role})"

    @property
    def can_request_changes(self) -> bool:
        return self.role in (MembershipRole.OWNER, MembershipRole.MANAGER)


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def for_customer(self, customer: Customer) -> AuditEventQuerySet:
        return self.filter(customer=customer)


class AuditEvent(models.Model):
    """One recorded change: who, when, what, before and after. Never edited."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    customer = models.ForeignKey(
        Customer, models.SET_NULL, null=True, blank=True, related_name="audit_events"
    )
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    note = models.TextField(blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Customer page history: WHERE customer_id = … ORDER BY created_at DESC.
            models.Index(fields=["customer", "-created_at"], name="audit_customer_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action}"


class TaskKind(models.TextChoices):
    GENERAL = "general", _("General")
    CHANGE_REQUEST = "change_request", _("Billing data change")
    READING_REVIEW = "reading_review", _("Reading review")
    BILLING = "billing", _("Billing")
    COLLECTIONS = "collections", _("Collections")


class TaskPriority(models.IntegerChoices):
    LOW = 10, _("Low")
    NORMAL = 20, _("Normal")
    HIGH = 30, _("High")
    URGENT = 40, _("Urgent")


class TaskStatus(models.TextChoices):
    OPEN = "open", _("Open")
    IN_PROGRESS = "in_progress", _("In progress")
    DONE = "done", _("Done")
    CANCELLED = "cancelled", _("Cancelled")


class TaskQuerySet(models.QuerySet["Task"]):
    def open(self) -> TaskQuerySet:
        return self.filter(status__in=[TaskStatus.OPEN, TaskStatus.IN_PROGRESS])

    def assigned_to(self, user: User) -> TaskQuerySet:
        return self.filter(assignee=user)

    def for_teams_of(self, user: User) -> TaskQuerySet:
        return self.filter(team__in=user.groups.all())

    def by_urgency(self) -> TaskQuerySet:
        return self.order_by("-priority", models.F("due_at").asc(nulls_last=True), "created_at")


class Task(models.Model):
    """An item in the staff work queue, created by any app."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    subject = models.CharField(_("subject"), max_length=200)
    kind = models.CharField(
        _("type"), max_length=32, choices=TaskKind.choices, default=TaskKind.GENERAL
    )
    customer = models.ForeignKey(
        Customer, models.CASCADE, null=True, blank=True, related_name="tasks"
    )
    team = models.ForeignKey(
        Group,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="tasks",
        verbose_name=_("team"),
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_tasks",
        verbose_name=_("assignee"),
    )
    priority = models.IntegerField(
        _("priority"), choices=TaskPriority.choices, default=TaskPriority.NORMAL
    )
    due_at = models.DateTimeField(_("due"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=TaskStatus.choices, default=TaskStatus.OPEN
    )
    # What the task is about (a change request, a reading, an invoice…).
    source_type = models.ForeignKey(
        ContentType, models.CASCADE, null=True, blank=True, related_name="+"
    )
    source_id = models.PositiveBigIntegerField(null=True, blank=True)
    source = GenericForeignKey("source_type", "source_id")
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = TaskQuerySet.as_manager()

    class Meta:
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        indexes = [
            # "My tasks": WHERE assignee_id = … AND status IN (open, in_progress).
            models.Index(fields=["assignee", "status"], name="task_assignee_status"),
            # "My team's tasks": WHERE team_id IN (…) AND status IN (…).
            models.Index(fields=["team", "status"], name="task_team_status"),
            # Closing the task of a source object.
            models.Index(fields=["source_type", "source_id"], name="task_source"),
        ]

    def __str__(self) -> str:
        return self.subject

    @property
    def is_overdue(self) -> bool:
        return self.due_at is not None and self.due_at < timezone.now() and self.is_open

    @property
    def is_open(self) -> bool:
        return self.status in (TaskStatus.OPEN, TaskStatus.IN_PROGRESS)

    def close(self, *, status: str = TaskStatus.DONE) -> None:
        self.status = status
        self.closed_at = timezone.now()
        self.save(update_fields=["status", "closed_at"])


class ChangeRequestStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for approval")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")


class ChangeRequestQuerySet(models.QuerySet["ChangeRequest"]):
    def pending(self) -> ChangeRequestQuerySet:
        return self.filter(status=ChangeRequestStatus.PENDING)


class ChangeRequest(models.Model):
    """A customer's request to change billing data, verified by the office."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    customer = models.ForeignKey(Customer, models.CASCADE, related_name="change_requests")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, related_name="change_requests"
    )
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    comment = models.TextField(_("comment"), blank=True)
    status = models.CharField(
        max_length=16, choices=ChangeRequestStatus.choices, default=ChangeRequestStatus.PENDING
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ChangeRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        permissions = [("decide_changerequest", "Can approve or reject change requests")]
        constraints = [
            # At most one pending request per customer: a second would race the first.
            models.UniqueConstraint(
                fields=["customer"],
                condition=models.Q(status="pending"),
                name="changerequest_one_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"Change request {self.public_id}"

    def changed_fields(self) -> list[tuple[str, str, str]]:
        """(label, before, after) for each field the request changes."""
        rows = []
        for field, new in self.after.items():
            label = str(getattr(Customer._meta.get_field(field), "verbose_name", field))
            rows.append((label, self.before.get(field, ""), new))
        return rows


class ActivationCodeQuerySet(models.QuerySet["ActivationCode"]):
    def usable(self) -> ActivationCodeQuerySet:
        return self.filter(
            used_at=None, locked_at=None, revoked_at=None, expires_at__gt=timezone.now()
        )


class ActivationCode(models.Model):
    """Two-part credentials for a representative's first login (seed S4).

    Part 1 is printed in a posted letter, part 2 is sent by e-mail. Only the
    letter's lookup key is stored in clear; both secrets are stored as keyed
    hashes. Single use, expiring, locked after a few wrong tries.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    lookup = models.CharField(max_length=8, unique=True)
    part1_hash = models.CharField(max_length=128)
    part2_hash = models.CharField(max_length=128)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.CASCADE, related_name="activation_codes"
    )
    customer = models.ForeignKey(Customer, models.CASCADE, related_name="activation_codes")
    representative = models.ForeignKey(
        Representative, models.CASCADE, related_name="activation_codes"
    )
    role = models.CharField(max_length=10, choices=MembershipRole.choices)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    failed_attempts = models.PositiveSmallIntegerField(default=0)
    locked_at = models.DateTimeField(null=True, blank=True)
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    letter = models.FileField(upload_to="activation-letters/%Y/%m/", blank=True)

    objects = ActivationCodeQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Activation {self.lookup} for {self.representative}"

    @property
    def state(self) -> str:
        if self.used_at:
            return str(_("used"))
        if self.revoked_at:
            return str(_("revoked"))
        if self.locked_at:
            return str(_("locked"))
        if self.expires_at <= timezone.now():
            return str(_("expired"))
        return str(_("waiting"))
