"""Forms of the courier page and of typing a tally sheet back."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from meters.models import SkipReason, SupplyPoint
from portal.models import User
from portal.roles import Role


class CourierReadingForm(forms.Form):
    """One register's index, as a courier enters it (or as the phone's queue sends it)."""

    value = forms.DecimalField(
        label=_("New index"),
        min_value=0,
        max_digits=18,
        decimal_places=3,
        widget=forms.NumberInput(attrs={"inputmode": "decimal", "step": "any"}),
    )
    confirm = forms.BooleanField(
        label=_("I checked the meter: this index is right"), required=False
    )
    photo = forms.ImageField(
        label=_("Photo of the meter"),
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": "image/*", "capture": "environment"}),
    )
    # Filled in by the page's script: the phone's id of this reading, when it was
    # entered (it may be sent much later) and, if the courier allowed it, where.
    client_id = forms.UUIDField(required=False, widget=forms.HiddenInput)
    read_at = forms.DateTimeField(required=False, widget=forms.HiddenInput)
    latitude = forms.DecimalField(
        required=False,
        min_value=-90,
        max_value=90,
        decimal_places=6,
        max_digits=9,
        widget=forms.HiddenInput,
    )
    longitude = forms.DecimalField(
        required=False,
        min_value=-180,
        max_value=180,
        decimal_places=6,
        max_digits=9,
        widget=forms.HiddenInput,
    )

    def clean_latitude(self) -> object:
        value = self.cleaned_data["latitude"]
        return None if value is None else round(value, 6)

    def clean_longitude(self) -> object:
        value = self.cleaned_data["longitude"]
        return None if value is None else round(value, 6)


class CourierChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: User) -> str:
        return obj.get_full_name() or obj.email


class SkipStopForm(forms.Form):
    """Why the courier could not read the meters of a stop."""

    reason = forms.ChoiceField(
        label=_("Why could you not read it?"),
        choices=[("", "—"), *SkipReason.choices],
    )
    note = forms.CharField(label=_("Note"), max_length=200, required=False)

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("reason") == SkipReason.OTHER and not str(data.get("note", "")).strip():
            self.add_error("note", _("Say what kept you from reading the meter."))
        return data


class RoundActionForm(forms.Form):
    """Closing or reopening a round by hand: an optional note for the audit trail."""

    note = forms.CharField(label=_("Note"), max_length=300, required=False)


class RoundForm(forms.Form):
    name = forms.CharField(label=pgettext_lazy("name of a reading round", "Name"), max_length=100)
    period_start = forms.DateField(label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    period_end = forms.DateField(
        label=pgettext_lazy("end of a date range", "To"),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    courier = CourierChoiceField(label=_("Courier"), queryset=User.objects.none(), required=False)
    codes = forms.CharField(
        label=_("Supply points, in visiting order"),
        help_text=_("One supply point code per line."),
        widget=forms.Textarea(attrs={"rows": 8}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["courier"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = User.objects.filter(groups__name=Role.COURIER.value, is_active=True)

    def clean_codes(self) -> list[str]:
        codes = [line.strip() for line in self.cleaned_data["codes"].splitlines() if line.strip()]
        if not codes:
            raise forms.ValidationError(_("Give at least one supply point code."))
        twice = [code for code, n in Counter(codes).items() if n > 1]
        if twice:
            raise forms.ValidationError(
                _("Listed twice: %(codes)s") % {"codes": ", ".join(sorted(set(twice)))}
            )
        points = {p.code: p for p in SupplyPoint.objects.filter(code__in=codes)}
        unknown = [code for code in codes if code not in points]
        if unknown:
            raise forms.ValidationError(
                _("No such supply point: %(codes)s") % {"codes": ", ".join(unknown)}
            )
        self.supply_points = [points[code] for code in codes]
        return codes

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        start, end = data.get("period_start"), data.get("period_end")
        if start and end and end < start:
            self.add_error("period_end", _("The period ends before it starts."))
        return data


class AssignForm(forms.Form):
    courier = CourierChoiceField(label=_("Courier"), queryset=User.objects.none())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["courier"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = User.objects.filter(groups__name=Role.COURIER.value, is_active=True)
