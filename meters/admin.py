"""The Django admin for meters: superusers' view of the tables.

Plausibility rules are configured here (severity and parameters per rule; a
code without a row keeps its default from meters.plausibility). Readings are
stored through meters.services only, so here they cannot be added, and what
the checks found cannot be edited.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from meters.models import (
    Meter,
    PlausibilityRule,
    Reading,
    ReadingRound,
    Register,
    RoundStop,
    SupplyPoint,
)
from meters.plausibility import DEFAULT_RULES


class PlausibilityRuleForm(forms.ModelForm):
    code = forms.ChoiceField(
        label=_("rule"), choices=[(code, code) for code in DEFAULT_RULES]
    )

    class Meta:
        model = PlausibilityRule
        fields = ["code", "severity", "parameters", "description"]

    def clean_parameters(self) -> dict[str, Any]:
        parameters = self.cleaned_data.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise forms.ValidationError(_("Parameters are a JSON object, e.g. {\"days\": 90}."))
        code = self.data.get("code", "")
        known = DEFAULT_RULES[code].parameters if code in DEFAULT_RULES else {}
        unknown = sorted(set(parameters) - set(known))
        if unknown:
            raise forms.ValidationError(
                _("Unknown parameters %(names)s; this rule takes: %(known)s.")
                % {"names": ", ".join(unknown), "known": ", ".join(known) or "-"}
            )
        for name, value in parameters.items():
            if name == "factors":
                values = value if isinstance(value, list) else [value]
            else:
                values = [value]
            for item in values:
                try:
                    number = Decimal(str(item))
                except InvalidOperation:
                    number = Decimal(-1)
                if not number.is_finite() or number < 0:
                    raise forms.ValidationError(
                        _("%(name)s must be a number of zero or more.") % {"name": name}
                    )
        return parameters


@admin.register(PlausibilityRule)
class PlausibilityRuleAdmin(admin.ModelAdmin):
    form = PlausibilityRuleForm
    list_display = ("code", "severity", "parameters", "description")
    list_filter = ("severity",)


class RegisterInline(admin.TabularInline):
    model = Register
    extra = 0
    fields = ("code", "name", "integer_digits", "decimals", "multiplier", "unit")


@admin.register(SupplyPoint)
class SupplyPointAdmin(admin.ModelAdmin):
    list_display = ("code", "service", "customer", "city", "self_reading_allowed")
    list_filter = ("service", "self_reading_allowed")
    search_fields = ("code", "street", "city", "customer__number")
    list_select_related = ("customer",)
    raw_id_fields = ("customer",)
    readonly_fields = ("public_id", "created_at")


@admin.register(Meter)
class MeterAdmin(admin.ModelAdmin):
    list_display = ("serial_number", "supply_point", "installed_on", "removed_on")
    search_fields = ("serial_number", "supply_point__code")
    list_select_related = ("supply_point",)
    raw_id_fields = ("supply_point",)
    readonly_fields = ("public_id",)
    inlines = [RegisterInline]


@admin.register(Register)
class RegisterAdmin(admin.ModelAdmin):
    list_display = ("__str__", "name", "integer_digits", "decimals", "multiplier", "unit")
    search_fields = ("meter__serial_number", "code")
    list_select_related = ("meter",)
    raw_id_fields = ("meter",)
    readonly_fields = ("public_id",)


@admin.register(Reading)
class ReadingAdmin(admin.ModelAdmin):
    list_display = ("register", "read_on", "value", "source", "reason", "status",
                    "used_for_billing")
    list_filter = ("status", "source", "reason", "used_for_billing")
    search_fields = ("register__meter__serial_number", "register__meter__supply_point__code")
    list_select_related = ("register__meter",)
    date_hierarchy = "read_on"
    # A coordinator's review decides status and billing use; the rest is evidence.
    fields = (
        "register", "value", "read_at", "read_on", "source", "reason", "status",
        "used_for_billing", "consumption", "findings_list", "entered_by", "client_id",
        "round_stop", "import_batch", "photo", "photo_sha256", "photo_taken_at",
        "latitude", "longitude", "created_at",
    )
    readonly_fields = tuple(f for f in fields if f not in ("status", "used_for_billing"))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("findings"))
    def findings_list(self, obj: Reading) -> SafeString:
        return format_html_join(
            "\n", "<p>{} ({}): {}</p>",
            ((f.get("rule", ""), f.get("severity", ""), f.get("message", ""))
             for f in obj.findings or []),
        )


class RoundStopInline(admin.TabularInline):
    model = RoundStop
    extra = 0
    raw_id_fields = ("supply_point",)


@admin.register(ReadingRound)
class ReadingRoundAdmin(admin.ModelAdmin):
    list_display = ("name", "period_start", "period_end", "courier", "status")
    list_filter = ("status",)
    list_select_related = ("courier",)
    raw_id_fields = ("courier", "created_by")
    readonly_fields = ("public_id", "created_at")
    inlines = [RoundStopInline]
