"""Customer forms for meters: the self-reading."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from meters.models import Register


class SelfReadingForm(forms.Form):
    """The index a customer reads from one register's dial."""

    value = forms.DecimalField(
        label=gettext_lazy("Meter index"),
        localize=True,
        min_value=Decimal(0),
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        error_messages={
            "required": gettext_lazy("Type the index shown on the meter."),
            "invalid": gettext_lazy("Type the index as a number, e.g. 012345."),
            "min_value": gettext_lazy("An index cannot be negative."),
        },
    )

    def __init__(self, *args: Any, register: Register, **kwargs: Any) -> None:
        self.register = register
        kwargs.setdefault("prefix", f"r{register.pk}")
        super().__init__(*args, **kwargs)
        self.fields["value"].label = _("Index in %(unit)s") % {"unit": register.unit}

    def clean_value(self) -> Decimal:
        value: Decimal = self.cleaned_data["value"]
        register = self.register
        exponent = value.normalize().as_tuple().exponent
        decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        if decimals > register.decimals:
            if register.decimals == 0:
                raise forms.ValidationError(
                    _("This meter shows whole numbers only: leave out the decimals.")
                )
            raise forms.ValidationError(
                ngettext(
                    "This meter shows %(count)d decimal; type at most that many.",
                    "This meter shows %(count)d decimals; type at most that many.",
                    register.decimals,
                )
                % {"count": register.decimals}
            )
        if value >= register.rollover:
            raise forms.ValidationError(
                ngettext(
                    "This meter has %(count)d digit before the decimal point.",
                    "This meter has %(count)d digits before the decimal point.",
                    register.integer_digits,
                )
                % {"count": register.integer_digits}
            )
        return value
