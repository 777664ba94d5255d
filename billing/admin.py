"""The Django admin for billing configuration: VAT rates, price lists, series.

A published price list version is shown read-only: its prices are what
issued invoices were priced with. Changes go into a new version.
Invoices are not edited here (they are issued and corrected through
billing.services).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from billing.models import (
    InvoiceSeries,
    PriceAgreement,
    PriceComponent,
    PriceList,
    PriceListVersion,
    PriceTier,
    TariffAssignment,
    VatRate,
)


def _published(obj: Any) -> bool:
    version = obj if isinstance(obj, PriceListVersion) else getattr(obj, "version", None)
    if isinstance(obj, PriceTier):
        version = obj.component.version
    return version is not None and version.is_published


class FrozenWhenPublished:
    """Admin mixin: no change or delete on rows of a published version."""

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and _published(obj):
            return False
        return super().has_change_permission(request, obj)  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and _published(obj):
            return False
        return super().has_delete_permission(request, obj)  # type: ignore[misc]


class FrozenInline(FrozenWhenPublished):
    """Inline rows: nothing added to a published version either (obj is the parent)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and _published(obj):
            return False
        return super().has_add_permission(request, obj)  # type: ignore[misc]


@admin.register(VatRate)
class VatRateAdmin(admin.ModelAdmin):
    list_display = ("country", "code", "rate", "valid_from", "valid_to")
    list_filter = ("country", "code")


class PriceListVersionInline(admin.TabularInline):
    model = PriceListVersion
    extra = 0
    fields = ("valid_from", "valid_to", "published_at", "note")
    readonly_fields = ("published_at",)
    show_change_link = True

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Versions are edited on their own page, where their components are.
        return False


@admin.register(PriceList)
class PriceListAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "service", "currency", "is_public")
    list_filter = ("service", "is_public", "currency")
    search_fields = ("code", "name")
    inlines = [PriceListVersionInline]


class PriceComponentInline(FrozenInline, admin.TabularInline):
    model = PriceComponent
    extra = 0
    fields = ("position", "code", "name", "kind", "register_code", "unit", "unit_price",
              "vat_code", "tier_mode")
    show_change_link = True


@admin.register(PriceListVersion)
class PriceListVersionAdmin(FrozenWhenPublished, admin.ModelAdmin):
    list_display = ("price_list", "valid_from", "valid_to", "published_at")
    list_filter = ("price_list",)
    list_select_related = ("price_list",)
    readonly_fields = ("published_at",)
    inlines = [PriceComponentInline]
    actions = ["publish"]

    @admin.action(description=_("Publish (prices become final)"))
    def publish(self, request: HttpRequest, queryset: QuerySet[PriceListVersion]) -> None:
        count = queryset.filter(published_at=None).update(published_at=timezone.now())
        self.message_user(
            request,
            ngettext("%(count)d version published.", "%(count)d versions published.", count)
            % {"count": count},
            messages.SUCCESS,
        )


class PriceTierInline(FrozenInline, admin.TabularInline):
    model = PriceTier
    extra = 0
    fields = ("from_quantity", "unit_price")


@admin.register(PriceComponent)
class PriceComponentAdmin(FrozenWhenPublished, admin.ModelAdmin):
    list_display = ("code", "name", "version", "kind", "unit", "unit_price", "tier_mode")
    list_filter = ("kind", "tier_mode")
    list_select_related = ("version__price_list",)
    search_fields = ("code", "name")
    inlines = [PriceTierInline]


@admin.register(PriceAgreement)
class PriceAgreementAdmin(admin.ModelAdmin):
    list_display = ("customer", "price_list", "component_code", "unit_price",
                    "discount_percent", "valid_from", "valid_to")
    list_select_related = ("customer", "price_list")
    raw_id_fields = ("customer",)
    search_fields = ("customer__number", "component_code")


@admin.register(TariffAssignment)
class TariffAssignmentAdmin(admin.ModelAdmin):
    list_display = ("supply_point", "price_list", "valid_from", "contract")
    list_select_related = ("supply_point", "price_list", "contract")
    raw_id_fields = ("supply_point", "contract")
    search_fields = ("supply_point__code",)


@admin.register(InvoiceSeries)
class InvoiceSeriesAdmin(admin.ModelAdmin):
    list_display = ("code", "prefix", "kind", "is_default", "padding", "payment_days")
    list_filter = ("kind",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Numbers already issued carry the prefix and padding of their time.
        if obj is not None and obj.invoices.exclude(status="draft").exists():
            return ("code", "prefix", "padding")
        return ()
