"""The admin of dunning: policies, levels, texts, rates and customer settings are configuration;
runs, notices and letter batches are shown only (they change through the office pages)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from receivables.dunning_models import (
    CustomerDunning,
    DunningLevel,
    DunningNotice,
    DunningNoticeItem,
    DunningPause,
    DunningPolicy,
    DunningRun,
    DunningText,
    InterestRate,
    LetterBatch,
)


class _ShownOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(InterestRate)
class InterestRateAdmin(admin.ModelAdmin):
    list_display = ("kind", "name", "rate", "valid_from", "valid_to")
    list_filter = ("kind",)


class DunningLevelInline(admin.StackedInline):
    model = DunningLevel
    extra = 0
    fields = (
        ("sequence", "name"), ("days_after_due", "channel"), ("fee", "minimum_amount"),
        ("charge_interest", "interest_kind"), "compensation",
        ("needs_approval", "is_disconnection_warning"),
    )


@admin.register(DunningPolicy)
class DunningPolicyAdmin(admin.ModelAdmin):
    list_display = ("name", "is_default", "minimum_amount")
    inlines = [DunningLevelInline]


@admin.register(DunningText)
class DunningTextAdmin(admin.ModelAdmin):
    list_display = ("level", "language", "subject")
    list_filter = ("language", "level__policy")
    list_select_related = ("level__policy",)


@admin.register(CustomerDunning)
class CustomerDunningAdmin(admin.ModelAdmin):
    list_display = ("customer", "policy", "excluded", "paused_until", "pause_reason")
    list_filter = ("excluded", "pause_reason")
    raw_id_fields = ("customer",)
    search_fields = ("customer__number", "customer__company_name", "customer__last_name")


@admin.register(DunningPause)
class DunningPauseAdmin(admin.ModelAdmin):
    list_display = ("customer", "invoice", "reason", "until", "created_at", "lifted_at")
    list_filter = ("reason",)
    raw_id_fields = ("customer", "invoice", "created_by")
    search_fields = ("customer__number", "invoice__document_number")


@admin.register(DunningRun)
class DunningRunAdmin(_ShownOnly):
    list_display = (
        "run_date", "started_at", "finished_at", "notice_count", "queued_count", "approval_count",
        "letter_count",
    )


class DunningNoticeItemInline(admin.TabularInline):
    model = DunningNoticeItem
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "invoice", "level_sequence", "open_amount", "days_overdue", "interest", "compensation",
    )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DunningNotice)
class DunningNoticeAdmin(_ShownOnly):
    list_display = (
        "public_id", "customer", "level", "channel", "status", "open_total", "fee", "interest",
        "compensation", "s10_number", "created_at", "sent_at",
    )
    list_filter = ("status", "channel", "level__policy")
    list_select_related = ("customer", "level__policy")
    search_fields = ("customer__number", "s10_number")
    inlines = [DunningNoticeItemInline]


@admin.register(LetterBatch)
class LetterBatchAdmin(_ShownOnly):
    list_display = ("created_at", "letter_count", "registered_count", "page_count", "created_by")
