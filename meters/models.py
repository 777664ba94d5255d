"""Supply points, contracts, meters, registers, readings and reading rounds."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from portal.models import Customer


class Service(models.TextChoices):
    ELECTRICITY = "electricity", _("Electricity")
    GAS = "gas", _("Gas")
    WATER = "water", _("Water")
    HEAT = "heat", _("Heat")


class SupplyPointQuerySet(models.QuerySet["SupplyPoint"]):
    def for_customer(self, customer: Customer) -> SupplyPointQuerySet:
        return self.filter(customer=customer)

    def with_last_reading(self) -> SupplyPointQuerySet:
        """Annotate the current meter and the latest valid reading, in the same query.

        current_meter_serial, last_reading_value / _on / _unit / _decimals /
        _register (None when there is none).
        """
        latest = (
            Reading.objects.valid()
            .filter(register__meter__supply_point=models.OuterRef("pk"))
            .order_by("-read_on", "-id")
        )
        current = Meter.objects.filter(
            supply_point=models.OuterRef("pk"), removed_on=None
        ).order_by("-installed_on")
        return self.annotate(
            current_meter_serial=models.Subquery(current.values("serial_number")[:1]),
            last_reading_value=models.Subquery(latest.values("value")[:1]),
            last_reading_on=models.Subquery(latest.values("read_on")[:1]),
            last_reading_unit=models.Subquery(latest.values("register__unit")[:1]),
            last_reading_decimals=models.Subquery(latest.values("register__decimals")[:1]),
            last_reading_register=models.Subquery(latest.values("register__name")[:1]),
        )


class SupplyPoint(models.Model):
    """A place where the operator delivers a service and measures it."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    customer = models.ForeignKey(
        Customer, models.PROTECT, related_name="supply_points", verbose_name=_("customer")
    )
    code = models.CharField(
        _("supply point code"), max_length=40, unique=True,
        help_text=_("The point's identifier (EIC/POD/EAN)."),
    )
    service = models.CharField(_("service"), max_length=16, choices=Service.choices)
    street = models.CharField(_("street and number"), max_length=200)
    postal_code = models.CharField(_("postal code"), max_length=16)
    city = models.CharField(_("city"), max_length=100)
    self_reading_allowed = models.BooleanField(_("self-reading allowed"), default=False)
    access_notes = models.CharField(
        _("access notes"), max_length=300, blank=True,
        help_text=_("Where the meter is and how to reach it, for couriers."),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = SupplyPointQuerySet.as_manager()

    class Meta:
        verbose_name = _("supply point")
        verbose_name_plural = _("supply points")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.address}"

    @property
    def address(self) -> str:
        return f"{self.street}, {self.postal_code} {self.city}"


class Contract(models.Model):
    """The supply contract of a supply point; its PDF is downloadable in the portal."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    supply_point = models.ForeignKey(SupplyPoint, models.PROTECT, related_name="contracts")
    customer = models.ForeignKey(Customer, models.PROTECT, related_name="contracts")
    number = models.CharField(_("contract number"), max_length=40, unique=True)
    product = models.CharField(_("product"), max_length=100)
    starts_on = models.DateField(_("start"))
    ends_on = models.DateField(_("end"), null=True, blank=True)
    document = models.FileField(upload_to="contracts/%Y/", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("contract")
        verbose_name_plural = _("contracts")
        ordering = ["-starts_on"]

    def __str__(self) -> str:
        return self.number

    def is_active_on(self, day: date) -> bool:
        return self.starts_on <= day and (self.ends_on is None or day <= self.ends_on)


class Meter(models.Model):
    """A physical meter, installed at a supply point for a period (meter exchange)."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    supply_point = models.ForeignKey(SupplyPoint, models.PROTECT, related_name="meters")
    serial_number = models.CharField(_("serial number"), max_length=40)
    installed_on = models.DateField(_("installed on"))
    removed_on = models.DateField(_("removed on"), null=True, blank=True)

    class Meta:
        verbose_name = _("meter")
        verbose_name_plural = _("meters")
        ordering = ["-installed_on"]
        constraints = [
            # A serial number is on one place at a time.
            models.UniqueConstraint(
                fields=["serial_number"], condition=models.Q(removed_on=None),
                name="meter_serial_active_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.serial_number


class Register(models.Model):
    """One counter of a meter (day, night, total…) with its dial geometry."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    meter = models.ForeignKey(Meter, models.PROTECT, related_name="registers")
    code = models.CharField(_("register"), max_length=16, help_text=_("e.g. 1.8.0, day, night"))
    name = models.CharField(_("name"), max_length=60)
    integer_digits = models.PositiveSmallIntegerField(_("integer digits"), default=6)
    decimals = models.PositiveSmallIntegerField(_("decimals"), default=0)
    multiplier = models.DecimalField(
        _("multiplier"), max_digits=10, decimal_places=4, default=Decimal("1")
    )
    unit = models.CharField(_("unit"), max_length=10, default="kWh")

    class Meta:
        verbose_name = _("register")
        verbose_name_plural = _("registers")
        ordering = ["meter", "code"]
        constraints = [
            models.UniqueConstraint(fields=["meter", "code"], name="register_code_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.meter.serial_number} {self.code}"

    @property
    def rollover(self) -> Decimal:
        """The dial's wrap value: 10^integer_digits (999999 + 1 → 000000)."""
        return Decimal(10) ** self.integer_digits


class ReadingSource(models.TextChoices):
    COURIER = "courier", _("Courier")
    CUSTOMER = "customer", _("Customer")
    ESTIMATED = "estimated", _("Estimated")
    IMPORTED = "imported", _("Imported")


class ReadingReason(models.TextChoices):
    PERIODIC = "periodic", _("Periodic")
    MOVE_IN = "move_in", _("Move-in")
    MOVE_OUT = "move_out", _("Move-out")
    METER_EXCHANGE = "meter_exchange", _("Meter exchange")
    TARIFF_CHANGE = "tariff_change", _("Tariff change")
    CONTROL = "control", _("Control")


class ReadingStatus(models.TextChoices):
    ACCEPTED = "accepted", pgettext_lazy("reading status", "Accepted")
    FLAGGED = "flagged", pgettext_lazy("reading status", "Waiting for review")
    REJECTED = "rejected", pgettext_lazy("reading status", "Rejected")


class ReadingQuerySet(models.QuerySet["Reading"]):
    def valid(self) -> ReadingQuerySet:
        """Readings that count: accepted or flagged, not rejected."""
        return self.exclude(status=ReadingStatus.REJECTED)

    def for_customer(self, customer: Customer) -> ReadingQuerySet:
        return self.filter(register__meter__supply_point__customer=customer)


class Reading(models.Model):
    """One index read from a register, by whoever read it, with its evidence."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Indexed by reading_register_recent (register_id first).
    register = models.ForeignKey(Register, models.PROTECT, related_name="readings",
                                 db_index=False)
    value = models.DecimalField(_("index"), max_digits=18, decimal_places=3)
    read_at = models.DateTimeField(_("read at"))
    # The business date (operator's zone) of read_at: one reading per register and day.
    read_on = models.DateField(_("date"))
    source = models.CharField(_("source"), max_length=12, choices=ReadingSource.choices)
    reason = models.CharField(
        _("reason"), max_length=16, choices=ReadingReason.choices, default=ReadingReason.PERIODIC
    )
    status = models.CharField(
        _("status"), max_length=10, choices=ReadingStatus.choices, default=ReadingStatus.ACCEPTED
    )
    # [{"rule": code, "severity": "flag"|"reject", "message": text}]
    findings = models.JSONField(default=list, blank=True)
    # Consumption since the previous valid reading (after rollover and multiplier).
    consumption = models.DecimalField(max_digits=18, decimal_places=3, null=True, blank=True)
    used_for_billing = models.BooleanField(_("used for billing"), default=True)
    # Not indexed: nothing lists readings by who typed them, and every index
    # slows down the million-row imports (deleting a user is rare enough to scan).
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+",
        db_index=False,
    )
    # A courier's phone makes this id before sending: a reading sent twice is stored once.
    client_id = models.UUIDField(null=True, blank=True)
    round_stop = models.ForeignKey(
        "RoundStop", models.SET_NULL, null=True, blank=True, related_name="readings",
        db_index=False,
    )
    import_batch = models.ForeignKey(
        "ReadingImport", models.PROTECT, null=True, blank=True, related_name="readings",
        db_index=False,
    )
    photo = models.FileField(upload_to="reading-photos/%Y/%m/", blank=True)
    photo_sha256 = models.CharField(max_length=64, blank=True)
    photo_taken_at = models.DateTimeField(null=True, blank=True)
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ReadingQuerySet.as_manager()

    class Meta:
        verbose_name = _("reading")
        verbose_name_plural = _("readings")
        ordering = ["-read_on", "-id"]
        constraints = [
            # One reading per register and day (rejected attempts do not count).
            models.UniqueConstraint(
                fields=["register", "read_on"], condition=~models.Q(status="rejected"),
                name="reading_one_per_register_day",
            ),
            models.UniqueConstraint(
                fields=["client_id"], condition=models.Q(client_id__isnull=False),
                name="reading_client_id_once",
            ),
        ]
        indexes = [
            # History and "previous reading": WHERE register_id = … ORDER BY read_on DESC.
            models.Index(fields=["register", "-read_on"], name="reading_register_recent"),
            # Coordinator's review list: WHERE status = 'flagged'.
            models.Index(fields=["status"], condition=models.Q(status="flagged"),
                         name="reading_flagged"),
            # Partial: most readings come from neither a round nor a file.
            models.Index(fields=["round_stop"], condition=models.Q(round_stop__isnull=False),
                         name="reading_round_stop"),
            models.Index(fields=["import_batch"], condition=models.Q(import_batch__isnull=False),
                         name="reading_import_batch"),
        ]

    def __str__(self) -> str:
        return f"{self.register} {self.value} on {self.read_on}"

    def office_link(self) -> tuple[str, str]:
        """(label, url) of the page where the office reviews this reading."""
        return str(_("Reading to review")), reverse(
            "meters-office:reading-review", args=[self.public_id]
        )


class RuleSeverity(models.TextChoices):
    REJECT = "reject", pgettext_lazy("plausibility rule severity", "Reject")
    FLAG = "flag", pgettext_lazy("plausibility rule severity", "Flag for review")
    OFF = "off", pgettext_lazy("plausibility rule severity", "Off")


class PlausibilityRule(models.Model):
    """Configuration of one plausibility check: on/off, severity, parameters."""

    code = models.CharField(max_length=32, unique=True)
    severity = models.CharField(max_length=8, choices=RuleSeverity.choices)
    parameters = models.JSONField(default=dict, blank=True)
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name = _("plausibility rule")
        verbose_name_plural = _("plausibility rules")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} ({self.severity})"


class RoundStatus(models.TextChoices):
    DRAFT = "draft", pgettext_lazy("round status", "Draft")
    ASSIGNED = "assigned", pgettext_lazy("round status", "Assigned")
    DONE = "done", pgettext_lazy("round status", "Done")


class ReadingRound(models.Model):
    """An ordered list of supply points for one courier and period."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(pgettext_lazy("name of a reading round", "name"), max_length=100)
    period_start = models.DateField(_("from"))
    period_end = models.DateField(_("to"))
    courier = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True,
        related_name="reading_rounds", verbose_name=_("courier"),
    )
    status = models.CharField(max_length=10, choices=RoundStatus.choices, default=RoundStatus.DRAFT)
    # When the round became done: its last stop read or skipped, or closed by hand.
    done_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("reading round")
        verbose_name_plural = _("reading rounds")
        ordering = ["-period_start", "name"]
        indexes = [
            # Courier's list: WHERE courier_id = … AND status = 'assigned'.
            models.Index(fields=["courier", "status"], name="round_courier_status"),
        ]

    def __str__(self) -> str:
        return self.name


class SkipReason(models.TextChoices):
    NO_ACCESS = "no_access", _("No access to the meter")
    NOBODY_HOME = "nobody_home", _("Nobody at home")
    METER_MISSING = "meter_missing", _("Meter not found")
    UNREADABLE = "unreadable", _("Meter unreadable or broken")
    DANGER = "danger", _("Unsafe to reach (dog, damage)")
    OTHER = "other", pgettext_lazy("reason a meter was not read", "Other")


def _installed_registers() -> models.QuerySet[Register]:
    return Register.objects.filter(
        meter__supply_point=OuterRef("supply_point"), meter__removed_on=None
    )


def stop_read_condition() -> Q:
    """For a RoundStop query: every register installed at the stop's supply point
    has a valid reading taken on this stop, dated within the round's period."""
    taken = Reading.objects.valid().filter(
        register=OuterRef("pk"),
        round_stop=OuterRef(OuterRef("pk")),
        read_on__gte=OuterRef(OuterRef("round__period_start")),
        read_on__lte=OuterRef(OuterRef("round__period_end")),
    )
    unread = _installed_registers().filter(~Exists(taken))
    return Q(Exists(_installed_registers())) & ~Q(Exists(unread))


def stop_open_condition() -> Q:
    """For a RoundStop query: neither read nor marked as skipped by the courier."""
    return Q(skip_reason="") & ~stop_read_condition()


class RoundStopQuerySet(models.QuerySet["RoundStop"]):
    """Set-wise state of stops: one query answers for any number of stops."""

    def read(self) -> RoundStopQuerySet:
        return self.filter(stop_read_condition())

    def open(self) -> RoundStopQuerySet:
        return self.filter(stop_open_condition())


class RoundStop(models.Model):
    round = models.ForeignKey(ReadingRound, models.CASCADE, related_name="stops")
    supply_point = models.ForeignKey(SupplyPoint, models.PROTECT, related_name="round_stops")
    position = models.PositiveIntegerField()
    # Set when the courier could not read the meter: the stop no longer holds up the round.
    skip_reason = models.CharField(
        _("why it was not read"), max_length=16, choices=SkipReason.choices, blank=True
    )
    skip_note = models.CharField(_("note"), max_length=200, blank=True)
    skipped_at = models.DateTimeField(null=True, blank=True)
    skipped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = RoundStopQuerySet.as_manager()

    class Meta:
        ordering = ["round", "position"]
        constraints = [
            models.UniqueConstraint(fields=["round", "supply_point"], name="roundstop_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.round} #{self.position}"


class ImportStatus(models.TextChoices):
    UPLOADED = "uploaded", _("Waiting to be checked")
    CHECKING = "checking", _("Being checked")
    VALIDATED = "validated", _("Checked, ready to post")
    POSTING = "posting", _("Being posted")
    FAILED = "failed", _("Has errors")
    COMMITTED = "committed", _("Posted")
    DISCARDED = "discarded", _("Discarded")


class ReadingImport(models.Model):
    """A file of readings: stored, hashed, checked row by row, then posted whole.

    The checked rows wait in an unlogged table (meters.imports.checked_table)
    until the file is posted or discarded.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    file = models.FileField(upload_to="imports/readings/%Y/%m/")
    original_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=ImportStatus.choices)
    row_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    flagged_count = models.PositiveIntegerField(default=0)
    # Why a checked file could not be posted (it is then failed and may be uploaded again).
    problem = models.CharField(max_length=300, blank=True)
    # The first errors, for the page: [{"line": n, "column": name, "message": text}]
    errors = models.JSONField(default=list, blank=True)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    committed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # The same file is posted once: a second upload of it is refused.
            models.UniqueConstraint(
                fields=["sha256"], condition=~models.Q(status__in=["failed", "discarded"]),
                name="readingimport_file_once",
            ),
        ]

    def __str__(self) -> str:
        return self.original_name
