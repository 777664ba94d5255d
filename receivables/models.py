"""Payments, collection files, allocations and the customer ledger.

Money that comes in is a :class:`Payment` (from a bank statement, a
collector's counter file, a courier's cash round or a clerk's hand). A
payment is allocated to open invoices by :class:`Allocation` rows; what is
not allocated is the customer's credit. Every document and every movement of
money is also an immutable :class:`LedgerEntry`, and a customer's balance is
the sum of their entries (positive: the customer owes; negative: credit).

Ledger entries and allocations are never updated or deleted: corrections are
new rows (a reversal entry, a negative allocation). PostgreSQL triggers in
migration 0002 refuse UPDATE and DELETE on both tables.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from billing.models import Invoice, amount_field, currency_field
from portal.models import Customer

ZERO = Decimal("0.00")


class Channel(models.TextChoices):
    BANK = "bank", _("Bank transfer")
    COLLECTOR = "collector", _("Counter (collector)")
    COURIER = "courier", _("Cash to a courier")
    MANUAL = "manual", _("Entered by staff")


class CollectorKind(models.TextChoices):
    BANK = "bank", pgettext_lazy("collector kind", "Bank")
    POST_OFFICE = "post_office", _("Post office")
    OTHER = "other", _("Other collector")


class OfficeType(models.TextChoices):
    ONLINE = "online", _("Online offices (Z+1)")
    OFFLINE = "offline", _("Offline offices (Z+4)")


class Collector(models.Model):
    """A bank account we receive statements for, or a collector network with its file layout.

    ``report_days`` is the reporting deadline in working days after the
    collection day Z (1 for online offices, 4 for offline ones): a file that
    arrives later, or a working day without a file, raises a task.
    """

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=120)
    kind = models.CharField(
        _("kind"), max_length=16, choices=CollectorKind.choices, default=CollectorKind.POST_OFFICE
    )
    # Collector files: the layout (receivables.formats.collector.Layout.from_dict).
    layout = models.JSONField(_("file layout"), default=dict, blank=True)
    office_type = models.CharField(
        _("office type"), max_length=8, choices=OfficeType.choices, default=OfficeType.ONLINE
    )
    report_days = models.PositiveSmallIntegerField(
        _("reporting deadline (working days after Z)"), default=1
    )
    expects_daily_files = models.BooleanField(_("a file every working day"), default=False)
    # Our account the statements are for (banks), or the account the collector's
    # settlement credit comes from (collectors): it tells settlements from payments.
    account = models.CharField(_("account (IBAN)"), max_length=34, blank=True)
    currency = currency_field(default="EUR")
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("collector")
        verbose_name_plural = _("collectors")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """A collector's layout must be one the parser can use (checked when staff save it)."""
        from django.core.exceptions import ValidationError

        from receivables.formats.collector import Layout
        from receivables.formats.common import FormatError

        if self.layout:
            try:
                Layout.from_dict(self.layout)
            except FormatError as error:
                raise ValidationError({"layout": error.message}) from error
            except (TypeError, ValueError, KeyError, AttributeError) as error:
                raise ValidationError({"layout": _("This layout cannot be read: %(error)s")
                                       % {"error": error}}) from error


class ImportStatus(models.TextChoices):
    UPLOADED = "uploaded", pgettext_lazy("import", "Uploaded")
    CHECKED = "checked", pgettext_lazy("import", "Checked")
    POSTING = "posting", pgettext_lazy("import", "Posting")
    POSTED = "posted", pgettext_lazy("import", "Posted")
    FAILED = "failed", pgettext_lazy("import", "Failed")
    DISCARDED = "discarded", pgettext_lazy("import", "Discarded")


class PaymentImport(models.Model):
    """One uploaded statement or collection file, from upload to posting."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    collector = models.ForeignKey(
        Collector, models.PROTECT, related_name="imports", verbose_name=_("collector")
    )
    file = models.FileField(upload_to="payment-imports/%Y/%m/")
    file_name = models.CharField(_("file name"), max_length=255)
    # The same content twice (renamed or not) is refused, unless the first failed or was discarded.
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField(default=0)
    format = models.CharField(_("format"), max_length=40, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=ImportStatus.choices, default=ImportStatus.UPLOADED
    )
    statement_id = models.CharField(_("statement"), max_length=80, blank=True)
    business_date = models.DateField(_("collection day (Z)"), null=True, blank=True)
    deadline = models.DateField(_("reporting deadline"), null=True, blank=True)
    late = models.BooleanField(_("arrived late"), default=False)
    line_count = models.PositiveIntegerField(_("lines"), default=0)
    total = amount_field(_("total"), default=ZERO)
    fees = amount_field(_("fees"), default=ZERO)
    matched_count = models.PositiveIntegerField(_("matched"), default=0)
    unmatched_count = models.PositiveIntegerField(_("not matched"), default=0)
    duplicate_count = models.PositiveIntegerField(_("already posted"), default=0)
    # [[line_no, message], …] for the upload page; the first 500.
    errors = models.JSONField(default=list, blank=True)
    problem = models.TextField(_("problem"), blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    posted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("payment file")
        verbose_name_plural = _("payment files")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["sha256"], condition=~models.Q(status__in=["failed", "discarded"]),
                name="paymentimport_file_once",
            ),
        ]
        indexes = [
            # Missing-file check: WHERE collector_id = … AND business_date = ….
            models.Index(fields=["collector", "business_date"], name="paymentimport_day"),
        ]

    def __str__(self) -> str:
        return self.file_name


class PaymentKind(models.TextChoices):
    PAYMENT = "payment", pgettext_lazy("payment kind", "Payment")
    REVERSAL = "reversal", _("Reversal")
    RETURN = "return", _("Returned payment")
    SETTLEMENT = "settlement", _("Collector settlement")


class MatchMethod(models.TextChoices):
    REFERENCE = "reference", _("Payment reference")
    INVOICE_NUMBER = "invoice_number", _("Invoice number in the text")
    CUSTOMER = "customer", _("Customer key, oldest first")
    MANUAL = "manual", _("By staff")
    NONE = "", _("Not matched")


class Payment(models.Model):
    """Money received (or a reversal of it). Never edited once posted, except its match.

    ``source`` and ``txn_id`` identify the transaction at the bank or
    collector: the pair is unique, so overlapping files never post it twice.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    kind = models.CharField(
        _("kind"), max_length=10, choices=PaymentKind.choices, default=PaymentKind.PAYMENT
    )
    # Collector code (or "manual", "courier") + its transaction id.
    source = models.CharField(_("source"), max_length=40)
    txn_id = models.CharField(_("transaction id"), max_length=120)
    payment_import = models.ForeignKey(
        PaymentImport, models.PROTECT, null=True, blank=True, related_name="payments",
        verbose_name=_("payment file"),
    )
    line_no = models.PositiveIntegerField(_("line"), null=True, blank=True)
    # Indexed by payment_customer_recent and payment_credit (every index costs each insert).
    customer = models.ForeignKey(
        Customer, models.PROTECT, null=True, blank=True, related_name="payments",
        verbose_name=_("customer"), db_index=False,
    )
    booking_date = models.DateField(_("booking date"))
    value_date = models.DateField(_("value date"), null=True, blank=True)
    amount = amount_field(_("amount"))
    fee = amount_field(_("fee"), default=ZERO)
    currency = currency_field()
    payer_name = models.CharField(_("payer"), max_length=140, blank=True)
    payer_account = models.CharField(_("payer account"), max_length=40, blank=True)
    reference = models.CharField(_("reference"), max_length=60, blank=True)
    text = models.CharField(_("remittance text"), max_length=500, blank=True)
    office_code = models.CharField(_("office"), max_length=20, blank=True)
    settlement_ref = models.CharField(_("settlement"), max_length=80, blank=True)
    reverses = models.ForeignKey(
        "self", models.PROTECT, null=True, blank=True, related_name="reversals",
        verbose_name=_("reverses"), db_index=False,
    )
    match_method = models.CharField(
        _("matched by"), max_length=16, choices=MatchMethod.choices, blank=True
    )
    # Amount not allocated to any invoice: the customer's credit (or, with no
    # customer, the suspense queue). Kept in step with the allocations.
    unallocated = amount_field(_("not allocated"), default=ZERO)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-booking_date", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "txn_id"], name="payment_once_per_source"),
        ]
        indexes = [
            # Portal and customer page: WHERE customer_id = … ORDER BY booking_date DESC.
            models.Index(
                fields=["customer", "-booking_date", "-id"], name="payment_customer_recent"
            ),
            # Suspense queue: payments with money nobody has.
            models.Index(
                fields=["-booking_date"], condition=models.Q(customer=None),
                name="payment_unmatched",
            ),
            # Credit to use: WHERE customer_id = … AND unallocated > 0.
            models.Index(
                fields=["customer"], condition=models.Q(unallocated__gt=0), name="payment_credit"
            ),
            models.Index(
                fields=["reverses"], condition=models.Q(reverses__isnull=False),
                name="payment_reverses",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} {self.booking_date:%Y-%m-%d} ({self.txn_id})"


class Allocation(models.Model):
    """Part of a payment applied to an invoice; a negative row undoes one (reversal)."""

    payment = models.ForeignKey(
        Payment, models.PROTECT, related_name="allocations", db_index=False
    )
    invoice = models.ForeignKey(
        Invoice, models.PROTECT, related_name="allocations", db_index=False
    )
    amount = amount_field(_("amount"))
    method = models.CharField(_("matched by"), max_length=16, choices=MatchMethod.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("allocation")
        verbose_name_plural = _("allocations")
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["invoice"], name="allocation_invoice"),
            models.Index(fields=["payment"], name="allocation_payment"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} → {self.invoice_id}"


class EntryKind(models.TextChoices):
    INVOICE = "invoice", pgettext_lazy("ledger", "Invoice")
    CREDIT_NOTE = "credit_note", pgettext_lazy("ledger", "Credit note")
    PAYMENT = "payment", pgettext_lazy("ledger", "Payment")
    REVERSAL = "reversal", pgettext_lazy("ledger", "Payment reversed")
    FEE = "fee", pgettext_lazy("ledger", "Reminder fee")
    INTEREST = "interest", pgettext_lazy("ledger", "Late-payment interest")
    REFUND = "refund", pgettext_lazy("ledger", "Refund")


class LedgerEntry(models.Model):
    """One immutable line of a customer's account; the balance is their sum.

    ``amount`` is signed from the operator's side: positive raises what the
    customer owes (invoice, fee, interest, refund paid out, reversed payment),
    negative lowers it (payment, credit note).
    """

    # The foreign keys are indexed by the constraints and indexes below.
    customer = models.ForeignKey(
        Customer, models.PROTECT, related_name="ledger_entries", db_index=False
    )
    kind = models.CharField(_("kind"), max_length=12, choices=EntryKind.choices)
    entry_date = models.DateField(_("date"))
    amount = amount_field(_("amount"))
    currency = currency_field()
    invoice = models.ForeignKey(
        Invoice, models.PROTECT, null=True, blank=True, related_name="ledger_entries",
        db_index=False,
    )
    payment = models.ForeignKey(
        Payment, models.PROTECT, null=True, blank=True, related_name="ledger_entries",
        db_index=False,
    )
    description = models.CharField(_("description"), max_length=200, blank=True)
    # What else caused it (a dunning notice: "dunning.notice:<id>"): one entry per cause.
    cause = models.CharField(max_length=80, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        ordering = ["entry_date", "id"]
        constraints = [
            # A document, a payment or a cause is entered once, however often it is replayed.
            models.UniqueConstraint(
                fields=["invoice"], condition=models.Q(payment=None, cause=""),
                name="ledger_invoice_once",
            ),
            models.UniqueConstraint(
                fields=["payment"], condition=models.Q(payment__isnull=False),
                name="ledger_payment_once",
            ),
            models.UniqueConstraint(
                fields=["cause"], condition=~models.Q(cause=""), name="ledger_cause_once"
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "entry_date", "id"], name="ledger_customer_date"),
        ]

    def __str__(self) -> str:
        return f"{self.entry_date} {self.get_kind_display()} {self.amount}"


class PayerAccount(models.Model):
    """An account a customer has paid from: a customer key for later payments without reference."""

    account = models.CharField(max_length=40, unique=True)
    customer = models.ForeignKey(Customer, models.CASCADE, related_name="payer_accounts")
    learned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("payer account")
        verbose_name_plural = _("payer accounts")

    def __str__(self) -> str:
        return self.account


class SettlementStatus(models.TextChoices):
    OPEN = "open", pgettext_lazy("settlement", "Waiting for the bank credit")
    RECONCILED = "reconciled", _("Reconciled")
    DIFFERENCE = "difference", _("Amount differs")


class CollectorSettlement(models.Model):
    """What a collector owes us for one settlement (its lines, net of fees) and the bank credit.

    Lines of a counter file are posted to customers at once; the collector's
    single bank credit arrives days later and is reconciled here instead of
    being posted as a customer payment a second time.
    """

    collector = models.ForeignKey(Collector, models.PROTECT, related_name="settlements")
    reference = models.CharField(_("settlement"), max_length=80)
    business_date = models.DateField(_("collection day (Z)"), null=True, blank=True)
    line_count = models.PositiveIntegerField(_("lines"), default=0)
    gross = amount_field(_("collected"), default=ZERO)
    fees = amount_field(_("fees"), default=ZERO)
    expected = amount_field(_("expected credit"), default=ZERO)
    bank_payment = models.OneToOneField(
        Payment, models.PROTECT, null=True, blank=True, related_name="settlement"
    )
    status = models.CharField(
        _("status"), max_length=10, choices=SettlementStatus.choices, default=SettlementStatus.OPEN
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("collector settlement")
        verbose_name_plural = _("collector settlements")
        ordering = ["-business_date", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["collector", "reference"], name="settlement_once"),
        ]

    def __str__(self) -> str:
        return f"{self.collector} {self.reference}"


class Suggestion(models.Model):
    """A possible match of an unmatched payment, for staff to confirm (amount and date)."""

    payment = models.ForeignKey(Payment, models.CASCADE, related_name="suggestions")
    invoice = models.ForeignKey(Invoice, models.CASCADE, related_name="+")
    score = models.PositiveSmallIntegerField(default=0)
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-score", "id"]
        constraints = [
            models.UniqueConstraint(fields=["payment", "invoice"], name="suggestion_once"),
        ]

    def __str__(self) -> str:
        return f"{self.payment_id} → {self.invoice_id} ({self.score})"


from receivables.dunning_models import *  # noqa: E402, F403
