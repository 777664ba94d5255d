"""Tariffs and price lists, invoices and credit notes, advance-payment schedules.

Money is Decimal throughout: document amounts have 2 decimal places, unit
prices up to 6 and quantities 3. The arithmetic lives in billing.pricing;
numbers are assigned at issue by billing.numbering; workflows are in
billing.services.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import ExtractYear
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from meters.models import Contract, Reading, Register, Service, SupplyPoint
from portal.models import Customer

ZERO = Decimal("0")


def amount_field(verbose_name: Any, **extra: Any) -> models.DecimalField:
    return models.DecimalField(verbose_name, max_digits=14, decimal_places=2, **extra)


def unit_price_field(verbose_name: Any, **extra: Any) -> models.DecimalField:
    return models.DecimalField(verbose_name, max_digits=16, decimal_places=6, **extra)


def quantity_field(verbose_name: Any, **extra: Any) -> models.DecimalField:
    return models.DecimalField(verbose_name, max_digits=16, decimal_places=3, **extra)


def currency_field(**extra: Any) -> models.CharField:
    return models.CharField(
        _("currency"), max_length=3, help_text=_("ISO 4217 code, e.g. EUR, RON, PLN."), **extra
    )


def validate_currency(code: str) -> None:
    from billing.pricing import CURRENCY_EXPONENTS

    if code not in CURRENCY_EXPONENTS:
        raise ValidationError(
            _("%(code)s is not a currency we can bill in."), params={"code": code}
        )


# ---------------------------------------------------------------------------
# VAT


class VatRateQuerySet(models.QuerySet["VatRate"]):
    def effective_on(self, day: date) -> VatRateQuerySet:
        return self.filter(valid_from__lte=day).filter(
            models.Q(valid_to=None) | models.Q(valid_to__gte=day)
        )


class VatRate(models.Model):
    """A VAT rate of a country, valid for a period: rates are data, never code."""

    code = models.CharField(
        _("code"), max_length=16, help_text=_("e.g. standard, reduced, zero, exempt")
    )
    country = models.CharField(_("country"), max_length=2)
    rate = models.DecimalField(_("rate (%)"), max_digits=5, decimal_places=2)
    valid_from = models.DateField(_("valid from"))
    valid_to = models.DateField(_("valid to"), null=True, blank=True)

    objects = VatRateQuerySet.as_manager()

    class Meta:
        verbose_name = _("VAT rate")
        verbose_name_plural = _("VAT rates")
        ordering = ["country", "code", "-valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["country", "code", "valid_from"], name="vatrate_unique_start"
            ),
            models.CheckConstraint(
                condition=models.Q(rate__gte=0) & models.Q(rate__lte=100),
                name="vatrate_rate_percent",
            ),
            models.CheckConstraint(
                condition=models.Q(valid_to=None) | models.Q(valid_to__gte=models.F("valid_from")),
                name="vatrate_valid_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.country} {self.code} {self.rate}%"


# ---------------------------------------------------------------------------
# Price lists


class PriceList(models.Model):
    """A tariff of one service; its prices live in dated, published versions."""

    code = models.CharField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=200)
    service = models.CharField(_("service"), max_length=16, choices=Service.choices)
    currency = currency_field(default="EUR", validators=[validate_currency])
    is_public = models.BooleanField(
        _("public"), default=True, help_text=_("Shown to customers in the portal.")
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("price list")
        verbose_name_plural = _("price lists")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class PublishedError(ValidationError):
    """A published price-list version (or its components) was about to change."""


class PriceListVersionQuerySet(models.QuerySet["PriceListVersion"]):
    def published(self) -> PriceListVersionQuerySet:
        return self.exclude(published_at=None)

    def overlapping(self, start: date, end: date) -> PriceListVersionQuerySet:
        return self.filter(valid_from__lte=end).filter(
            models.Q(valid_to=None) | models.Q(valid_to__gte=start)
        )


class PriceListVersion(models.Model):
    """The prices of a list from a date on; once published it never changes.

    A version runs until its valid_to, or until the next published version of
    the list starts: publishing new prices needs no change to the old ones.
    """

    price_list = models.ForeignKey(
        PriceList, models.PROTECT, related_name="versions", verbose_name=_("price list")
    )
    valid_from = models.DateField(_("valid from"))
    valid_to = models.DateField(_("valid to"), null=True, blank=True)
    published_at = models.DateTimeField(_("published at"), null=True, blank=True)
    note = models.CharField(_("note"), max_length=200, blank=True)

    objects = PriceListVersionQuerySet.as_manager()

    class Meta:
        verbose_name = _("price list version")
        verbose_name_plural = _("price list versions")
        ordering = ["price_list", "-valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["price_list", "valid_from"], name="pricelistversion_unique_start"
            ),
            models.CheckConstraint(
                condition=models.Q(valid_to=None) | models.Q(valid_to__gte=models.F("valid_from")),
                name="pricelistversion_valid_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.price_list.code} {self.valid_from}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            stored = PriceListVersion.objects.filter(pk=self.pk).values_list(
                "published_at", flat=True
            ).first()
            if stored is not None:
                raise PublishedError(_("A published price list version cannot be changed."))
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        if self.is_published:
            raise PublishedError(_("A published price list version cannot be deleted."))
        return super().delete(*args, **kwargs)

    @property
    def is_published(self) -> bool:
        return self.published_at is not None


class ComponentKind(models.TextChoices):
    PER_UNIT = "per_unit", _("Per unit consumed")
    FIXED_PER_PERIOD = "fixed_per_period", _("Fixed per month")
    PER_ACTIVITY = "per_activity", _("Per activity performed")


class TierMode(models.TextChoices):
    NONE = "none", pgettext_lazy("tiers", "None")
    VOLUME = "volume", _("Volume (whole quantity at its tier's price)")
    GRADUATED = "graduated", _("Graduated (each slice at its tier's price)")


class _PartOfVersion(models.Model):
    """Rows that belong to a price list version are frozen with it."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.version_published():
            raise PublishedError(_("A published price list version cannot be changed."))
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        if self.version_published():
            raise PublishedError(_("A published price list version cannot be changed."))
        return super().delete(*args, **kwargs)

    def version_published(self) -> bool:
        raise NotImplementedError


class PriceComponent(_PartOfVersion):
    """One priced item of a version: energy per kWh, a monthly fee, a reconnection."""

    version = models.ForeignKey(
        PriceListVersion, models.CASCADE, related_name="components", verbose_name=_("version")
    )
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    code = models.SlugField(
        _("code"), max_length=32, help_text=_("Stable across versions; agreements refer to it.")
    )
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=20, choices=ComponentKind.choices)
    register_code = models.CharField(
        _("register"), max_length=16, blank=True,
        help_text=_("Only consumption of registers with this code (e.g. day, night); "
                    "blank: all registers."),
    )
    unit = models.CharField(_("unit"), max_length=16, help_text=_("e.g. kWh, m3, month, visit"))
    unit_price = unit_price_field(_("unit price"))
    vat_code = models.CharField(_("VAT rate"), max_length=16, default="standard")
    tier_mode = models.CharField(
        _("tiers"), max_length=10, choices=TierMode.choices, default=TierMode.NONE
    )

    class Meta:
        verbose_name = _("price component")
        verbose_name_plural = _("price components")
        ordering = ["version", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["version", "code"], name="pricecomponent_code_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    def version_published(self) -> bool:
        return PriceListVersion.objects.filter(pk=self.version_id).exclude(
            published_at=None
        ).exists()


class PriceTier(_PartOfVersion):
    """From this quantity on (per month for consumption), this unit price."""

    component = models.ForeignKey(PriceComponent, models.CASCADE, related_name="tiers")
    from_quantity = quantity_field(_("from quantity"))
    unit_price = unit_price_field(_("unit price"))

    class Meta:
        verbose_name = _("price tier")
        verbose_name_plural = _("price tiers")
        ordering = ["component", "from_quantity"]
        constraints = [
            models.UniqueConstraint(
                fields=["component", "from_quantity"], name="pricetier_unique_start"
            ),
            models.CheckConstraint(
                condition=models.Q(from_quantity__gte=0), name="pricetier_from_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"≥ {self.from_quantity}: {self.unit_price}"

    def version_published(self) -> bool:
        return PriceListVersion.objects.filter(components=self.component_id).exclude(
            published_at=None
        ).exists()


class PriceAgreementQuerySet(models.QuerySet["PriceAgreement"]):
    def overlapping(self, start: date, end: date) -> PriceAgreementQuerySet:
        return self.filter(valid_from__lte=end).filter(
            models.Q(valid_to=None) | models.Q(valid_to__gte=start)
        )


class PriceAgreement(models.Model):
    """A customer's own price: it wins over the list for the components it names."""

    customer = models.ForeignKey(
        Customer, models.CASCADE, related_name="price_agreements", verbose_name=_("customer")
    )
    price_list = models.ForeignKey(
        PriceList, models.CASCADE, null=True, blank=True, related_name="agreements",
        verbose_name=_("price list"), help_text=_("Blank: any price list of the customer."),
    )
    component_code = models.SlugField(
        _("component code"), max_length=32, blank=True,
        help_text=_("Blank: every component of the list."),
    )
    unit_price = unit_price_field(_("unit price"), null=True, blank=True)
    discount_percent = models.DecimalField(
        _("discount (%)"), max_digits=5, decimal_places=2, null=True, blank=True
    )
    valid_from = models.DateField(_("valid from"))
    valid_to = models.DateField(_("valid to"), null=True, blank=True)
    note = models.CharField(_("note"), max_length=200, blank=True)

    objects = PriceAgreementQuerySet.as_manager()

    class Meta:
        verbose_name = _("price agreement")
        verbose_name_plural = _("price agreements")
        ordering = ["customer", "-valid_from"]
        constraints = [
            # Either an agreed price or a discount, never both.
            models.CheckConstraint(
                condition=(
                    models.Q(unit_price__isnull=False, discount_percent=None)
                    | models.Q(unit_price=None, discount_percent__isnull=False)
                ),
                name="priceagreement_price_xor_discount",
            ),
            # An agreed price replaces one component's price, so it names the component.
            models.CheckConstraint(
                condition=models.Q(unit_price=None) | ~models.Q(component_code=""),
                name="priceagreement_price_names_component",
            ),
            models.CheckConstraint(
                condition=models.Q(discount_percent=None)
                | (models.Q(discount_percent__gte=0) & models.Q(discount_percent__lte=100)),
                name="priceagreement_discount_percent",
            ),
        ]
        indexes = [
            # The loader: WHERE customer_id IN (…) AND valid_from <= period end.
            models.Index(fields=["customer", "valid_from"], name="priceagreement_customer"),
        ]

    def __str__(self) -> str:
        what = self.component_code or "*"
        if self.unit_price is not None:
            return f"{self.customer_id} {what} @ {self.unit_price}"
        return f"{self.customer_id} {what} -{self.discount_percent}%"


class TariffAssignment(models.Model):
    """From this date on, this price list prices this supply point."""

    supply_point = models.ForeignKey(
        SupplyPoint, models.CASCADE, related_name="tariff_assignments",
        verbose_name=_("supply point"),
    )
    contract = models.ForeignKey(
        Contract, models.SET_NULL, null=True, blank=True, related_name="tariff_assignments",
        verbose_name=_("contract"), help_text=_("The contract that agreed this tariff, if any."),
    )
    price_list = models.ForeignKey(
        PriceList, models.PROTECT, related_name="assignments", verbose_name=_("price list")
    )
    valid_from = models.DateField(_("valid from"))

    class Meta:
        verbose_name = _("tariff assignment")
        verbose_name_plural = _("tariff assignments")
        ordering = ["supply_point", "-valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["supply_point", "valid_from"], name="tariffassignment_unique_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.supply_point_id} → {self.price_list_id} from {self.valid_from}"


# ---------------------------------------------------------------------------
# Invoices


class SeriesKind(models.TextChoices):
    INVOICE = "invoice", _("Invoices")
    CREDIT_NOTE = "credit_note", _("Credit notes")
    ADVANCE = "advance", _("Advance payment requests")


class InvoiceSeriesQuerySet(models.QuerySet["InvoiceSeries"]):
    def default_for(self, kind: str) -> InvoiceSeries:
        return self.get(kind=kind, is_default=True)


class InvoiceSeries(models.Model):
    """A numbering series: FV-2026-000123 is number 123 of series FV in 2026."""

    code = models.SlugField(_("code"), max_length=16, unique=True)
    prefix = models.CharField(_("prefix"), max_length=12)
    kind = models.CharField(_("kind"), max_length=12, choices=SeriesKind.choices)
    is_default = models.BooleanField(
        _("default"), default=False, help_text=_("Used for new documents of its kind.")
    )
    padding = models.PositiveSmallIntegerField(_("digits"), default=6)
    payment_days = models.PositiveSmallIntegerField(
        _("days to pay"), default=14, help_text=_("Due date = issue date + this many days.")
    )

    objects = InvoiceSeriesQuerySet.as_manager()

    class Meta:
        verbose_name = _("invoice series")
        verbose_name_plural = _("invoice series")
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"], condition=models.Q(is_default=True),
                name="invoiceseries_one_default_per_kind",
            ),
        ]

    def __str__(self) -> str:
        return self.code

    def format_number(self, year: int, number: int) -> str:
        from billing.numbering import format_number

        return format_number(self.prefix, year, number, self.padding)


class NumberCounter(models.Model):
    """The last number handed out in a series and year; locked while issuing."""

    series = models.ForeignKey(InvoiceSeries, models.PROTECT, related_name="counters")
    year = models.PositiveSmallIntegerField()
    last = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["series", "year"], name="numbercounter_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.series_id}/{self.year}: {self.last}"


class BillingRunStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PRICING = "pricing", _("Pricing")
    REVIEW = "review", _("Ready for review")
    ISSUING = "issuing", _("Issuing")
    DONE = "done", pgettext_lazy("billing run", "Done")
    CANCELLED = "cancelled", pgettext_lazy("billing run", "Cancelled")


class BillingRunQuerySet(models.QuerySet["BillingRun"]):
    def in_progress(self) -> BillingRunQuerySet:
        return self.filter(status__in=[BillingRunStatus.PRICING, BillingRunStatus.ISSUING])


class BillingRun(models.Model):
    """A batch of invoices for a period: priced, reviewed, then issued and delivered.

    The workflow is in billing.runs; the supply points it covers are all of a
    service, or those of chosen customers (of that service, if one is given).
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(_("name"), max_length=100)
    period_start = models.DateField(_("from"))
    period_end = models.DateField(_("to"))
    status = models.CharField(
        _("status"), max_length=10, choices=BillingRunStatus.choices,
        default=BillingRunStatus.DRAFT,
    )
    service = models.CharField(
        _("service"), max_length=16, choices=Service.choices, blank=True,
        help_text=_("Blank: every service of the chosen customers."),
    )
    customers = models.ManyToManyField(
        Customer, blank=True, related_name="+", verbose_name=_("customers"),
        help_text=_("Blank: every customer with a supply point of the service."),
    )
    supply_point_count = models.PositiveIntegerField(_("supply points"), default=0)
    # The day every invoice of the run is issued on, fixed when staff press "issue all".
    issue_date = models.DateField(_("issue date"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    priced_at = models.DateTimeField(null=True, blank=True)
    issue_started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = BillingRunQuerySet.as_manager()

    class Meta:
        verbose_name = _("billing run")
        verbose_name_plural = _("billing runs")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(period_end__gte=models.F("period_start")),
                name="billingrun_period_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_running(self) -> bool:
        return self.status in (BillingRunStatus.PRICING, BillingRunStatus.ISSUING)


class RunExceptionKind(models.TextChoices):
    MISSING_READING = "missing_reading", _("Missing reading, no estimate possible")
    FLAGGED_READING = "flagged_reading", _("Reading waiting for review in the period")
    ZERO_AMOUNT = "zero_amount", _("Nothing to invoice (zero amount)")
    NO_TARIFF = "no_tariff", _("No tariff or VAT rate for the period")
    ALREADY_INVOICED = "already_invoiced", _("Already invoiced for the period")


class BillingRunExceptionQuerySet(models.QuerySet["BillingRunException"]):
    def open(self) -> BillingRunExceptionQuerySet:
        return self.filter(excluded_at=None)


class BillingRunException(models.Model):
    """Why a supply point of a run has no draft invoice; staff exclude it or re-price it."""

    run = models.ForeignKey(BillingRun, models.CASCADE, related_name="exceptions")
    supply_point = models.ForeignKey(SupplyPoint, models.CASCADE, related_name="+")
    kind = models.CharField(_("problem"), max_length=20, choices=RunExceptionKind.choices)
    message = models.CharField(_("details"), max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when staff leave the supply point out of the run.
    excluded_at = models.DateTimeField(null=True, blank=True)
    excluded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = BillingRunExceptionQuerySet.as_manager()

    class Meta:
        verbose_name = _("billing run exception")
        verbose_name_plural = _("billing run exceptions")
        ordering = ["run", "supply_point", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "supply_point", "kind"], name="runexception_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.run_id} {self.supply_point_id} {self.kind}"


class InvoiceKind(models.TextChoices):
    INVOICE = "invoice", pgettext_lazy("document kind", "Invoice")
    CREDIT_NOTE = "credit_note", _("Credit note")
    SETTLEMENT = "settlement", _("Settlement invoice")
    ADVANCE_REQUEST = "advance_request", _("Advance payment request")

    @classmethod
    def series_kind(cls, kind: str) -> str:
        return {
            cls.INVOICE: SeriesKind.INVOICE,
            cls.SETTLEMENT: SeriesKind.INVOICE,
            cls.CREDIT_NOTE: SeriesKind.CREDIT_NOTE,
            cls.ADVANCE_REQUEST: SeriesKind.ADVANCE,
        }[cls(kind)]


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", pgettext_lazy("invoice", "Draft")
    ISSUED = "issued", pgettext_lazy("invoice", "Issued")
    PARTLY_PAID = "partly_paid", _("Partly paid")
    PAID = "paid", pgettext_lazy("invoice", "Paid")
    CANCELLED = "cancelled", pgettext_lazy("invoice", "Cancelled")


class ImmutableDocumentError(ValidationError):
    """Someone tried to change an issued document; corrections are credit notes."""


class InvoiceQuerySet(models.QuerySet["Invoice"]):
    def for_customer(self, customer: Customer) -> InvoiceQuerySet:
        return self.filter(customer=customer)

    def issued(self) -> InvoiceQuerySet:
        return self.exclude(status=InvoiceStatus.DRAFT)

    def drafts(self) -> InvoiceQuerySet:
        return self.filter(status=InvoiceStatus.DRAFT)


class Invoice(models.Model):
    """An invoice, credit note, settlement invoice or advance request.

    A draft may change freely. From issue on, the content fields never change
    (save() refuses it): only the status moves on (paid, cancelled by a credit
    note) and the payment reference and PDF, made once after issue, are set.
    """

    # What an issued document may still get: the status, and once each, the payment
    # reference and the stored PDF.
    MUTABLE_AFTER_ISSUE: ClassVar[frozenset[str]] = frozenset({"status", "updated_at"})
    WRITE_ONCE_AFTER_ISSUE: ClassVar[frozenset[str]] = frozenset(
        {"payment_reference", "pdf", "pdf_sha256"}
    )

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(
        _("kind"), max_length=16, choices=InvoiceKind.choices, default=InvoiceKind.INVOICE
    )
    series = models.ForeignKey(
        InvoiceSeries, models.PROTECT, related_name="invoices", verbose_name=_("series")
    )
    number = models.PositiveIntegerField(_("number in series"), null=True, blank=True)
    # The number as printed (prefix-year-number), frozen at issue.
    document_number = models.CharField(_("number"), max_length=40, blank=True)
    customer = models.ForeignKey(
        Customer, models.PROTECT, related_name="invoices", verbose_name=_("customer")
    )
    supply_point = models.ForeignKey(
        SupplyPoint, models.PROTECT, null=True, blank=True, related_name="invoices",
        verbose_name=_("supply point"),
    )
    period_start = models.DateField(_("period from"), null=True, blank=True)
    period_end = models.DateField(_("period to"), null=True, blank=True)
    issue_date = models.DateField(_("issue date"), null=True, blank=True)
    due_date = models.DateField(_("due date"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=12, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT
    )
    currency = currency_field(validators=[validate_currency])
    net_total = amount_field(_("net total"), default=ZERO)
    vat_total = amount_field(_("VAT total"), default=ZERO)
    gross_total = amount_field(_("total"), default=ZERO)
    # EN 16931 BT-113 "paid amount": advances already paid that this document deducts.
    prepaid_amount = amount_field(_("advances paid"), default=ZERO)
    # BT-115: gross_total - prepaid_amount; negative on a settlement is a refund.
    amount_due = amount_field(_("amount due"), default=ZERO)
    credited_invoice = models.ForeignKey(
        "self", models.PROTECT, null=True, blank=True, related_name="credit_notes",
        verbose_name=_("credited invoice"),
    )
    note = models.CharField(_("note"), max_length=300, blank=True)
    payment_reference = models.CharField(_("payment reference"), max_length=40, blank=True)
    billing_run = models.ForeignKey(
        BillingRun, models.PROTECT, null=True, blank=True, related_name="invoices",
        verbose_name=_("billing run"),
    )
    pdf = models.FileField(upload_to="invoices/%Y/%m/", blank=True)
    pdf_sha256 = models.CharField(max_length=64, blank=True)
    issued_at = models.DateTimeField(null=True, blank=True)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        ordering = ["-issue_date", "-id"]
        permissions = [("issue_invoice", "Can issue invoices and credit notes")]
        constraints = [
            # Gapless numbering's other half: a number is used once per series and year.
            models.UniqueConstraint(
                models.F("series"), ExtractYear("issue_date"), models.F("number"),
                condition=models.Q(number__isnull=False),
                name="invoice_number_unique_per_series_year",
            ),
            # Drafts have no number, no issue date; everything else has both.
            models.CheckConstraint(
                condition=(
                    models.Q(status="draft", number=None, issue_date=None)
                    | (
                        ~models.Q(status="draft")
                        & models.Q(number__isnull=False, issue_date__isnull=False)
                    )
                ),
                name="invoice_number_iff_issued",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    gross_total=models.F("net_total") + models.F("vat_total")
                ),
                name="invoice_gross_is_net_plus_vat",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    amount_due=models.F("gross_total") - models.F("prepaid_amount")
                ),
                name="invoice_due_is_gross_minus_prepaid",
            ),
            models.CheckConstraint(
                condition=models.Q(kind="credit_note") | models.Q(credited_invoice=None),
                name="invoice_only_credit_notes_credit",
            ),
            # A billing run invoices a supply point once, however often it is restarted.
            models.UniqueConstraint(
                fields=["billing_run", "supply_point"],
                condition=models.Q(billing_run__isnull=False),
                name="invoice_once_per_run_and_point",
            ),
        ]
        # No index mentions the status: payments move it (issued → partly paid → paid)
        # for thousands of invoices at once, and with spare room on each page
        # (fillfactor, migration 0004) PostgreSQL updates such rows in place.
        indexes = [
            # Portal list: WHERE customer_id = … ORDER BY issue_date DESC, id DESC.
            models.Index(fields=["customer", "-issue_date", "-id"], name="invoice_customer_recent"),
        ]

    def __str__(self) -> str:
        return self.document_number or f"{self.get_kind_display()} ({_('draft')})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.check_changes_allowed()
        super().save(*args, **kwargs)
        self._loaded = {
            f.attname: f.get_prep_value(getattr(self, f.attname))
            for f in self._meta.concrete_fields
        }

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        if not self.is_draft:
            raise ImmutableDocumentError(_("An issued document cannot be deleted."))
        return super().delete(*args, **kwargs)

    @classmethod
    def from_db(cls, db: Any, field_names: Any, values: Any) -> Invoice:
        instance = super().from_db(db, field_names, values)
        instance._loaded = dict(zip(field_names, values, strict=True))
        return instance

    @property
    def is_draft(self) -> bool:
        return self.status == InvoiceStatus.DRAFT

    def _stored_state(self) -> dict[str, Any] | None:
        loaded: dict[str, Any] | None = getattr(self, "_loaded", None)
        if loaded is not None and {f.attname for f in self._meta.concrete_fields} <= set(loaded):
            return loaded
        # Built by hand or loaded with only(): ask the database.
        return Invoice.objects.filter(pk=self.pk).values(
            *[f.attname for f in self._meta.concrete_fields]
        ).first()

    def check_changes_allowed(self) -> None:
        """Raise ImmutableDocumentError if this save would change an issued document."""
        if self.pk is None or self._state.adding:
            return
        stored = self._stored_state()
        if stored is None or stored["status"] == InvoiceStatus.DRAFT:
            return
        if self.status == InvoiceStatus.DRAFT:
            raise ImmutableDocumentError(_("An issued document cannot go back to draft."))
        for field in self._meta.concrete_fields:
            name = field.attname
            if name in self.MUTABLE_AFTER_ISSUE:
                continue
            old, new = stored[name], field.get_prep_value(getattr(self, name))
            if name in self.WRITE_ONCE_AFTER_ISSUE:
                if old in ("", None) or str(old) == str(new or ""):
                    continue
            elif old == new:
                continue
            raise ImmutableDocumentError(
                _("%(number)s is issued and cannot change (%(field)s); "
                  "correct it with a credit note.")
                % {"number": stored["document_number"], "field": field.verbose_name}
            )

    def vat_breakdown(self) -> list[VatBreakdownRow]:
        """Per VAT rate: the taxable amount and the tax (EN 16931 BG-23)."""
        rows: dict[tuple[str, Decimal], VatBreakdownRow] = {}
        for line in self.lines.all():
            key = (line.vat_code, line.vat_rate)
            row = rows.setdefault(key, VatBreakdownRow(line.vat_code, line.vat_rate, ZERO, ZERO))
            row.net += line.net_amount
            row.vat += line.vat_amount
        return sorted(rows.values(), key=lambda r: (-r.rate, r.code))


@dataclass(slots=True)
class VatBreakdownRow:
    code: str
    rate: Decimal
    net: Decimal
    vat: Decimal


class InvoiceLine(models.Model):
    """One line: quantity × unit price = net (rounded); VAT is shared out per rate."""

    invoice = models.ForeignKey(Invoice, models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField(_("position"))
    description = models.CharField(_("description"), max_length=300)
    component = models.ForeignKey(
        PriceComponent, models.PROTECT, null=True, blank=True, related_name="+"
    )
    quantity = quantity_field(_("quantity"))
    unit = models.CharField(_("unit"), max_length=16)
    unit_price = unit_price_field(_("unit price"))
    net_amount = amount_field(_("net amount"))
    vat_code = models.CharField(_("VAT rate"), max_length=16)
    vat_rate = models.DecimalField(_("VAT (%)"), max_digits=5, decimal_places=2)
    # This line's share of its rate's VAT; the shares of a rate add up to the rate's VAT.
    vat_amount = amount_field(_("VAT"))
    register = models.ForeignKey(
        Register, models.PROTECT, null=True, blank=True, related_name="+"
    )
    start_reading = models.ForeignKey(
        Reading, models.PROTECT, null=True, blank=True, related_name="+"
    )
    end_reading = models.ForeignKey(
        Reading, models.PROTECT, null=True, blank=True, related_name="+"
    )
    period_start = models.DateField(_("from"), null=True, blank=True)
    period_end = models.DateField(_("to"), null=True, blank=True)

    class Meta:
        verbose_name = _("invoice line")
        verbose_name_plural = _("invoice lines")
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="invoiceline_position"),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.description}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._invoice_issued():
            raise ImmutableDocumentError(_("The lines of an issued document cannot change."))
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        if self._invoice_issued():
            raise ImmutableDocumentError(_("The lines of an issued document cannot change."))
        return super().delete(*args, **kwargs)

    def _invoice_issued(self) -> bool:
        return Invoice.objects.filter(pk=self.invoice_id).exclude(
            status=InvoiceStatus.DRAFT
        ).exists()


# ---------------------------------------------------------------------------
# Delivery of issued invoices


class DeliveryChannel(models.TextChoices):
    EMAIL = "email", _("E-mail")
    PAPER = "paper", _("Paper")


def print_batch_path(batch: PrintBatch, filename: str) -> str:
    return f"print-batches/{batch.created_at:%Y/%m}/{filename}"


class PrintBatch(models.Model):
    """Paper invoices of a run merged into one PDF for the printer, with its mailing list."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    run = models.ForeignKey(BillingRun, models.PROTECT, related_name="print_batches")
    sequence = models.PositiveSmallIntegerField(_("batch"))
    created_at = models.DateTimeField()
    item_count = models.PositiveIntegerField(_("letters"), default=0)
    page_count = models.PositiveIntegerField(_("pages"), default=0)
    merged_pdf = models.FileField(upload_to=print_batch_path, blank=True)
    list_csv = models.FileField(upload_to=print_batch_path, blank=True)

    class Meta:
        verbose_name = _("print batch")
        verbose_name_plural = _("print batches")
        ordering = ["run", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["run", "sequence"], name="printbatch_sequence"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id} #{self.sequence}"


class InvoiceDeliveryQuerySet(models.QuerySet["InvoiceDelivery"]):
    def unbatched_paper(self) -> InvoiceDeliveryQuerySet:
        return self.filter(channel=DeliveryChannel.PAPER, print_batch=None)


class InvoiceDelivery(models.Model):
    """How an issued invoice went out: one row per invoice, so it goes out once."""

    invoice = models.OneToOneField(Invoice, models.PROTECT, related_name="delivery")
    channel = models.CharField(_("channel"), max_length=8, choices=DeliveryChannel.choices)
    print_batch = models.ForeignKey(
        PrintBatch, models.PROTECT, null=True, blank=True, related_name="deliveries"
    )
    outbox_message = models.OneToOneField(
        "notifications.OutboxMessage", models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = InvoiceDeliveryQuerySet.as_manager()

    class Meta:
        verbose_name = _("invoice delivery")
        verbose_name_plural = _("invoice deliveries")
        ordering = ["-created_at"]
        indexes = [
            # Print batches: paper deliveries not in a batch yet (WHERE print_batch_id IS NULL).
            models.Index(fields=["channel"], condition=models.Q(print_batch=None),
                         name="delivery_unbatched"),
        ]

    def __str__(self) -> str:
        return f"{self.invoice_id} {self.channel}"


# ---------------------------------------------------------------------------
# Advance payments


class Frequency(models.TextChoices):
    MONTHLY = "monthly", _("Monthly")
    QUARTERLY = "quarterly", _("Quarterly")
    SEMIANNUAL = "semiannual", _("Every six months")
    ANNUAL = "annual", _("Yearly")

    @property
    def months(self) -> int:
        return {"monthly": 1, "quarterly": 3, "semiannual": 6, "annual": 12}[self.value]

    @property
    def per_year(self) -> int:
        return 12 // self.months


class ScheduleStatus(models.TextChoices):
    ACTIVE = "active", pgettext_lazy("schedule", "Active")
    SUPERSEDED = "superseded", _("Replaced by a newer schedule")
    CANCELLED = "cancelled", pgettext_lazy("schedule", "Cancelled")


class AdvanceSchedule(models.Model):
    """Agreed advance payments for a supply point until the next settlement."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    customer = models.ForeignKey(
        Customer, models.PROTECT, related_name="advance_schedules", verbose_name=_("customer")
    )
    supply_point = models.ForeignKey(
        SupplyPoint, models.PROTECT, related_name="advance_schedules",
        verbose_name=_("supply point"),
    )
    frequency = models.CharField(_("frequency"), max_length=12, choices=Frequency.choices)
    amount = amount_field(_("amount per instalment"))
    currency = currency_field(validators=[validate_currency])
    first_due_date = models.DateField(_("first due date"))
    count = models.PositiveSmallIntegerField(_("number of instalments"))
    status = models.CharField(
        _("status"), max_length=12, choices=ScheduleStatus.choices, default=ScheduleStatus.ACTIVE
    )
    settlement = models.ForeignKey(
        Invoice, models.PROTECT, null=True, blank=True, related_name="proposed_schedules",
        verbose_name=_("proposed by settlement"),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("advance schedule")
        verbose_name_plural = _("advance schedules")
        ordering = ["-first_due_date"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="schedule_amount_pos"),
            models.CheckConstraint(condition=models.Q(count__gt=0), name="schedule_count_pos"),
            # One active schedule per supply point.
            models.UniqueConstraint(
                fields=["supply_point"], condition=models.Q(status="active"),
                name="schedule_one_active_per_point",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.supply_point_id} {self.count}× {self.amount} {self.currency}"

    def due_dates(self) -> list[date]:
        from billing.pricing import add_months

        step = Frequency(self.frequency).months
        return [add_months(self.first_due_date, i * step) for i in range(self.count)]


class AdvanceInstalment(models.Model):
    schedule = models.ForeignKey(AdvanceSchedule, models.CASCADE, related_name="instalments")
    sequence = models.PositiveSmallIntegerField(_("instalment"))
    due_date = models.DateField(_("due date"))
    amount = amount_field(_("amount"))
    # The advance payment request sent for it, once issued.
    invoice = models.OneToOneField(
        Invoice, models.PROTECT, null=True, blank=True, related_name="instalment"
    )
    # Kept by receivables when payments are matched; settlements deduct it.
    paid_amount = amount_field(_("paid"), default=ZERO)

    class Meta:
        verbose_name = _("advance instalment")
        verbose_name_plural = _("advance instalments")
        ordering = ["schedule", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "sequence"], name="instalment_sequence"),
        ]
        indexes = [
            # Requests to send: WHERE invoice_id IS NULL AND due_date <= ….
            models.Index(fields=["due_date"], condition=models.Q(invoice=None),
                         name="instalment_unrequested"),
        ]

    def __str__(self) -> str:
        return f"{self.schedule_id} #{self.sequence} {self.due_date}"
