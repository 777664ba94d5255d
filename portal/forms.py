"""Forms of the customer portal: they validate and normalise; views apply."""

from __future__ import annotations

import copy
import re
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from portal.models import Customer, Representative, User
from portal.validators import normalise_phone, validate_mobile


class ContactForm(forms.Form):
    """Contact details and consents a representative changes without the office."""

    email = forms.EmailField(
        label=_("E-mail"),
        required=False,
        help_text=_("A new address changes only after you follow the link we send to it."),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    mobile = forms.CharField(
        label=_("Mobile phone"),
        required=False,
        max_length=32,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"}),
    )
    consent_ebilling = forms.BooleanField(
        label=_("Invoices by e-mail instead of paper"), required=False
    )
    consent_electronic_delivery = forms.BooleanField(
        label=_("Letters and notices electronically instead of by post"), required=False
    )
    language = forms.ChoiceField(
        label=_("Language of letters and invoices"), choices=settings.LANGUAGES
    )

    IMMEDIATE_FIELDS = ("mobile", "consent_ebilling", "consent_electronic_delivery", "language")

    @classmethod
    def for_customer(cls, customer: Customer, data: Any = None) -> ContactForm:
        initial = {field: getattr(customer, field) for field in ("email", *cls.IMMEDIATE_FIELDS)}
        return cls(data, initial=initial)

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip()

    def clean_mobile(self) -> str:
        value = self.cleaned_data["mobile"].strip()
        return validate_mobile(value) if value else ""

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None
        if "email" in data and not data["email"]:
            if data.get("consent_ebilling"):
                self.add_error("consent_ebilling", _("Invoices by e-mail need an e-mail address."))
            if data.get("consent_electronic_delivery"):
                self.add_error(
                    "consent_electronic_delivery", _("Electronic delivery needs an e-mail address.")
                )
        return data


class BillingChangeForm(forms.ModelForm):
    """Billing data the office verifies before it applies.

    Bound to a copy of the customer, so Customer.clean() (tax id and VAT id
    checksums, names required by kind) runs on the typed values and reports
    next to each field, while the customer itself stays untouched.
    """

    comment = forms.CharField(
        label=_("Comment for customer service"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("For example why the data changes, or which document proves it."),
    )

    class Meta:
        model = Customer
        fields = Customer.BILLING_FIELDS
        widgets = {"country": forms.TextInput(attrs={"size": 2, "maxlength": 2})}

    def __init__(self, data: Any = None, *, customer: Customer) -> None:
        super().__init__(data, instance=copy.copy(customer))

    def clean_country(self) -> str:
        value = self.cleaned_data["country"].strip().upper()
        if not re.fullmatch(r"[A-Z]{2}", value):
            raise ValidationError(_("Enter the two-letter country code, e.g. RO."))
        return value

    def requested_changes(self) -> dict[str, Any]:
        """The validated, normalised billing data (changed or not)."""
        return {field: getattr(self.instance, field) for field in Customer.BILLING_FIELDS}


class RepresentativeForm(forms.ModelForm):
    class Meta:
        model = Representative
        fields = ("first_name", "last_name", "function", "email", "phone")
        widgets = {"phone": forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"})}

    def clean_phone(self) -> str:
        value = self.cleaned_data["phone"].strip()
        if not value:
            return ""
        phone = normalise_phone(value)
        if not re.fullmatch(r"\+?\d{6,15}", phone):
            raise ValidationError(
                _("Enter a phone number of 6 to 15 digits, e.g. +40 21 300 4000.")
            )
        return phone


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ("language",)
        labels = {"language": _("Language of the portal and of e-mails to you")}
