"""Notifications in the Django admin.

The outbox is read-only, to see what was sent and what failed: retrying a
failed message is an office action (notifications.services.requeue), never an
edit of the row, as the dispatcher relies on its status transitions.

S10 ranges are configuration (what the postal operator assigned us); the
numbers issued from them are read-only.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import F
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from notifications.models import OutboxMessage, S10Number, S10Range


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    list_display = ("created_at", "channel", "kind", "to", "subject", "status", "attempts",
                    "sent_at")
    list_filter = ("status", "channel", "kind")
    search_fields = ("to", "subject", "provider_id")
    date_hierarchy = "created_at"
    fields = ("public_id", "channel", "kind", "to", "subject", "status", "attempts",
              "not_before", "claimed_at", "sent_at", "provider_id", "error", "about_type",
              "about_id", "attachments", "created_at", "body_text", "body_html")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _started(range_: S10Range) -> bool:
    """Whether the stored range handed out (or skipped) a serial, as the database trigger sees it.

    Asked of the database: on a refused POST the instance holds what was typed.
    """
    return S10Range.objects.filter(pk=range_.pk, next_serial__gt=F("first_serial")).exists()


@admin.register(S10Range)
class S10RangeAdmin(admin.ModelAdmin):
    list_display = (
        "prefix",
        "country",
        "product",
        "first_serial",
        "last_serial",
        "used",
        "remaining",
        "alarm_sent_at",
        "active",
    )
    list_filter = ("active", "prefix", "country")
    search_fields = ("product",)
    fields = (
        "prefix",
        "country",
        "product",
        "first_serial",
        "last_serial",
        "next_serial",
        "alarm_remaining",
        "active",
        "alarm_sent_at",
        "created_at",
    )

    @admin.display(description=_("used"))
    def used(self, obj: S10Range) -> int:
        return obj.used

    @admin.display(description=_("remaining"))
    def remaining(self, obj: S10Range) -> int:
        return obj.remaining

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        fixed: tuple[str, ...] = ("alarm_sent_at", "created_at")
        if obj is not None and _started(obj):
            # A serial was handed out: these are part of it (the database refuses a change too).
            fixed += ("prefix", "country", "first_serial")
        return fixed

    def save_model(
        self, request: HttpRequest, obj: S10Range, form: ModelForm, change: bool
    ) -> None:
        obj.rearm_alarm()
        super().save_model(request, obj, form, change)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A range that issued numbers stays, so they are never issued again.
        return obj is None or not _started(obj)


@admin.register(S10Number)
class S10NumberAdmin(admin.ModelAdmin):
    list_display = ("number", "issued_at", "purpose", "about_label", "range")
    list_select_related = ("range",)
    search_fields = ("=number", "about_label")
    date_hierarchy = "issued_at"
    fields = ("number", "range", "serial", "purpose", "about_label", "issued_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
