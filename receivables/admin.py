"""The Django admin for receivables: collectors are configuration; the rest is shown only.

Payment files, payments and ledger entries are posted by the import and by
receivables.payments, and corrected by reversals, never by editing: the
admin lists them read-only.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from receivables.models import Collector, LedgerEntry, Payment, PaymentImport


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Collector)
class CollectorAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "kind", "office_type", "report_days", "currency", "active")
    list_filter = ("kind", "office_type", "active")
    search_fields = ("code", "name", "account")


@admin.register(PaymentImport)
class PaymentImportAdmin(ReadOnlyAdmin):
    list_display = (
        "file_name", "collector", "format", "status", "business_date", "late", "line_count",
        "total", "matched_count", "unmatched_count", "created_at",
    )
    list_filter = ("status", "collector", "late")
    search_fields = ("file_name", "statement_id", "sha256")
    list_select_related = ("collector",)
    date_hierarchy = "created_at"


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = (
        "booking_date", "amount", "currency", "channel", "kind", "source", "txn_id", "customer",
        "match_method", "unallocated",
    )
    list_filter = ("channel", "kind", "match_method", "currency")
    search_fields = ("txn_id", "reference", "payer_name", "payer_account", "customer__number")
    list_select_related = ("customer",)
    date_hierarchy = "booking_date"
    raw_id_fields = ("customer", "payment_import", "reverses", "created_by")


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("entry_date", "customer", "kind", "amount", "currency", "description", "cause")
    list_filter = ("kind", "currency")
    search_fields = ("customer__number", "description", "cause")
    list_select_related = ("customer",)
    date_hierarchy = "entry_date"
    raw_id_fields = ("customer", "invoice", "payment")


from receivables import dunning_admin  # noqa: E402, F401  (dunning registers its own admin)
