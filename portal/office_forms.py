"""Forms of the back office (/office/)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from portal.models import Customer, Representative, TaskStatus
from portal.validators import normalise_phone, validate_mobile

# Countries the operator serves first, then neighbours customers move from.
COUNTRIES = [
    ("RO", _("Romania")),
    ("PL", _("Poland")),
    ("IT", _("Italy")),
    ("SK", _("Slovakia")),
    ("AT", _("Austria")),
    ("BG", _("Bulgaria")),
    ("CZ", _("Czechia")),
    ("DE", _("Germany")),
    ("FR", _("France")),
    ("HU", _("Hungary")),
    ("MD", _("Moldova")),
    ("UA", _("Ukraine")),
]


class CustomerForm(forms.ModelForm):
    """Billing and contact data as staff type it; Customer.clean() checks tax ids."""

    country = forms.ChoiceField(label=_("Country"), choices=COUNTRIES, initial="RO")

    class Meta:
        model = Customer
        fields = [
            "kind", "first_name", "last_name", "company_name", "tax_id", "vat_id",
            "street", "postal_code", "city", "country", "language", "email", "mobile",
            "consent_ebilling", "consent_electronic_delivery",
        ]
        widgets = {
            "email": forms.EmailInput(attrs={"autocomplete": "off"}),
            "mobile": forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = self.instance.country
        field = self.fields["country"]
        assert isinstance(field, forms.ChoiceField)
        if current and current not in dict(COUNTRIES):
            # Keep a country the list lacks (imported data) selectable.
            field.choices = [*COUNTRIES, (current, current)]

    FIELDSETS = [
        (_("Who"), ["kind", "first_name", "last_name", "company_name", "tax_id", "vat_id"]),
        (_("Billing address"), ["street", "postal_code", "city", "country"]),
        (_("Contact"), ["language", "email", "mobile", "consent_ebilling",
                        "consent_electronic_delivery"]),
    ]

    def fieldsets(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [(str(legend), [self[name] for name in names]) for legend, names in self.FIELDSETS]

    def clean_mobile(self) -> str:
        mobile = self.cleaned_data["mobile"]
        return validate_mobile(mobile) if mobile else ""

    def changes(self) -> dict[str, Any]:
        """Field → validated value, for services.update_customer."""
        return {name: getattr(self.instance, name) for name in self._meta.fields or ()}


class RepresentativeForm(forms.ModelForm):
    class Meta:
        model = Representative
        fields = ["first_name", "last_name", "function", "email", "phone"]
        widgets = {"phone": forms.TextInput(attrs={"type": "tel"})}

    def clean_phone(self) -> str:
        phone = self.cleaned_data["phone"]
        return normalise_phone(phone) if phone else ""


class Decision:
    APPROVE = "approve"
    REJECT = "reject"


class DecisionForm(forms.Form):
    """Approve or reject a change request; a rejection needs a reason."""

    decision = forms.ChoiceField(
        choices=[(Decision.APPROVE, _("Approve")), (Decision.REJECT, _("Reject"))],
    )
    reason = forms.CharField(
        label=_("Reason for the customer"), required=False, max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Required when you reject; the customer reads it."),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        data["reason"] = (data.get("reason") or "").strip()
        if data.get("decision") == Decision.REJECT and not data["reason"]:
            self.add_error("reason", _("Give the customer a reason for the rejection."))
        return data

    @property
    def approve(self) -> bool:
        return self.cleaned_data["decision"] == Decision.APPROVE


class TaskStatusForm(forms.Form):
    status = forms.ChoiceField(label=_("status"), choices=TaskStatus.choices)
