"""Forms of the receivables pages: statement period, manual payment, match, refund, reversal,
courier cash. They validate and normalise (dates, Decimal amounts, the customer and
document named); the views call receivables.payments with what they return."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

from django import forms
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from billing.models import Invoice, InvoiceKind
from billing.pricing import CURRENCY_EXPONENTS
from meters.models import SupplyPoint
from portal.models import Customer
from receivables.ledger import open_items

MAX_STATEMENT_YEARS = 5
CUSTOMER_CHOICES_SHOWN = 5


def _date_input() -> forms.DateInput:
    return forms.DateInput(attrs={"type": "date"})


def _amount_field(label: Any, **extra: Any) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0.01"),
        localize=True,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        **extra,
    )


def years_before(day: date, years: int) -> date:
    """The same calendar day ``years`` earlier (28 February for a 29th)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        if day.year - years < date.min.year:
            return date.min
        return day.replace(year=day.year - years, day=28)


def statement_defaults(today: date) -> tuple[date, date]:
    """The period shown when none is asked for: this year so far."""
    return date(today.year, 1, 1), today


class StatementForm(forms.Form):
    """The period of a statement, read from ?from=…&to=… (both optional)."""

    def __init__(self, data: Any = None, *, today: date | None = None) -> None:
        super().__init__(data)
        self.today = today or timezone.localdate()
        start, end = statement_defaults(self.today)
        # "from" is a Python keyword: the fields are added here, not declared.
        self.fields["from"] = forms.DateField(
            label=gettext_lazy("From"), required=False, widget=_date_input(), initial=start
        )
        self.fields["to"] = forms.DateField(
            label=pgettext_lazy("end of a date range", "To"), required=False,
            widget=_date_input(), initial=end,
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        default_start, default_end = statement_defaults(self.today)
        start = data.get("from") or default_start
        end = data.get("to") or default_end
        if "from" in self.errors or "to" in self.errors:
            return data
        if end < start:
            self.add_error("to", _("The end of the period is before its start."))
        elif start < years_before(end, MAX_STATEMENT_YEARS):
            self.add_error(
                "from",
                _("A statement covers at most %(years)d years; choose a later start.")
                % {"years": MAX_STATEMENT_YEARS},
            )
        data["from"], data["to"] = start, end
        return data

    def period(self) -> tuple[date, date]:
        """The valid period (after is_valid())."""
        return self.cleaned_data["from"], self.cleaned_data["to"]


def find_customer(text: str) -> Customer:
    """The customer with this number, else the only one whose name matches; ValidationError
    naming the candidates otherwise."""
    text = text.strip()
    exact = Customer.objects.filter(number__iexact=text).first()
    if exact is not None:
        return exact
    found = list(Customer.objects.search(text).order_by("number")[: CUSTOMER_CHOICES_SHOWN + 1])
    if len(found) == 1:
        return found[0]
    if not found:
        raise forms.ValidationError(_("No customer has this number or name."))
    listed = ", ".join(f"{c.number} {c.name}" for c in found[:CUSTOMER_CHOICES_SHOWN])
    raise forms.ValidationError(
        _("Several customers match (%(customers)s); type the customer number.")
        % {"customers": listed}
    )


def find_document(number: str) -> Invoice | None:
    """The issued invoice (not a credit note) with this number, in any spelling of case."""
    return (
        Invoice.objects.issued().exclude(kind=InvoiceKind.CREDIT_NOTE)
        .filter(document_number__iexact=number.strip()).select_related("customer").first()
    )


class ManualPaymentForm(forms.Form):
    customer = forms.CharField(
        label=gettext_lazy("Customer"), max_length=200,
        help_text=gettext_lazy("Customer number, or a name that only one customer has."),
    )
    amount = _amount_field(gettext_lazy("Amount"))
    currency = forms.ChoiceField(
        label=gettext_lazy("Currency"), required=False,
        choices=[("", gettext_lazy("As the customer's documents"))]
        + [(code, code) for code in sorted(CURRENCY_EXPONENTS)],
    )
    booking_date = forms.DateField(label=gettext_lazy("Paid on"), widget=_date_input())
    invoice = forms.CharField(
        label=gettext_lazy("Document paid"), max_length=40, required=False,
        help_text=gettext_lazy(
            "Optional. Without it the money goes to the oldest open documents first."
        ),
    )
    receipt_number = forms.CharField(
        label=gettext_lazy("Receipt number"), max_length=60, required=False,
        help_text=gettext_lazy("The number of the receipt you gave, if any. It is used once."),
    )
    reference = forms.CharField(label=gettext_lazy("Reference"), max_length=60, required=False)
    text = forms.CharField(
        label=gettext_lazy("Note"), max_length=500, required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    # Made when the form is shown: the same form sent twice posts once.
    entry_id = forms.CharField(widget=forms.HiddenInput, required=False, max_length=40)

    def __init__(self, data: Any = None, *, initial: dict[str, Any] | None = None) -> None:
        initial = {"booking_date": timezone.localdate(), "entry_id": uuid.uuid4().hex,
                   **(initial or {})}
        super().__init__(data, initial=initial)

    def clean_customer(self) -> Customer:
        return find_customer(self.cleaned_data["customer"])

    def clean_booking_date(self) -> date:
        day: date = self.cleaned_data["booking_date"]
        if day > timezone.localdate():
            raise forms.ValidationError(_("The payment date cannot be in the future."))
        return day

    def clean_invoice(self) -> Invoice | None:
        number = self.cleaned_data["invoice"].strip()
        if not number:
            return None
        document = find_document(number)
        if document is None:
            raise forms.ValidationError(_("No issued document has this number."))
        return document

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        customer, document = data.get("customer"), data.get("invoice")
        if document is not None and customer is not None:
            if document.customer_id != customer.pk:
                self.add_error(
                    "invoice",
                    _("%(number)s belongs to customer %(customer)s.")
                    % {"number": document.document_number, "customer": document.customer.number},
                )
            elif not open_items(customer).filter(pk=document.pk).exists():
                self.add_error(
                    "invoice",
                    _("Nothing is open on %(number)s.") % {"number": document.document_number},
                )
            elif data.get("currency") and data["currency"] != document.currency:
                self.add_error(
                    "currency",
                    _("%(number)s is in %(code)s.")
                    % {"number": document.document_number, "code": document.currency},
                )
        return data


class ReverseForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Why is the payment reversed?"), max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy(
            "Returned by the bank, posted twice, posted to the wrong customer… "
            "Kept in the audit trail."
        ),
    )


class RefundForm(forms.Form):
    amount = _amount_field(gettext_lazy("Amount to refund"))
    note = forms.CharField(
        label=gettext_lazy("Note"), max_length=200, required=False,
        help_text=gettext_lazy("How the money is paid back, e.g. the transfer's reference."),
    )


class MatchForm(forms.Form):
    """Match an unmatched payment: a suggested document (one click) or a number typed."""

    invoice = forms.UUIDField(widget=forms.HiddenInput, required=False)
    target = forms.CharField(
        label=gettext_lazy("Document or customer number"), max_length=40, required=False,
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        document: Invoice | None = None
        customer: Customer | None = None
        if data.get("invoice"):
            document = (
                Invoice.objects.issued().exclude(kind=InvoiceKind.CREDIT_NOTE)
                .filter(public_id=data["invoice"]).select_related("customer").first()
            )
            if document is None:
                raise forms.ValidationError(_("That document does not exist any more."))
        elif (data.get("target") or "").strip():
            text = data["target"].strip()
            document = find_document(text)
            if document is None:
                customer = Customer.objects.filter(number__iexact=text).first()
            if document is None and customer is None:
                self.add_error("target", _("No document or customer has this number."))
        else:
            self.add_error("target", _("Type a document number or a customer number."))
        data["document"], data["customer"] = document, customer
        return data


class CourierCashForm(forms.Form):
    supply_point = forms.CharField(
        label=gettext_lazy("Supply point code"), max_length=40,
        help_text=gettext_lazy("As printed on the bill."),
    )
    amount = _amount_field(gettext_lazy("Amount collected"))
    receipt_number = forms.CharField(
        label=gettext_lazy("Receipt number"), max_length=60,
        help_text=gettext_lazy("The number printed on the paper receipt you hand over."),
    )
    # Made when the form is shown (or on the phone): a form sent twice is stored once.
    client_id = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, data: Any = None, *, initial: dict[str, Any] | None = None) -> None:
        super().__init__(data, initial={"client_id": uuid.uuid4(), **(initial or {})})

    def clean_supply_point(self) -> SupplyPoint:
        code = "".join(self.cleaned_data["supply_point"].split())
        point = (
            SupplyPoint.objects.filter(Q(code__iexact=code)).select_related("customer").first()
        )
        if point is None:
            raise forms.ValidationError(_("No supply point has this code."))
        return point

    def clean_receipt_number(self) -> str:
        receipt = self.cleaned_data["receipt_number"].strip().upper()
        if not receipt:
            raise forms.ValidationError(_("Write the number printed on the receipt."))
        return receipt
