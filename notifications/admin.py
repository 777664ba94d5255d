"""The outbox in the Django admin: read-only, to see what was sent and what failed.

Retrying a failed message is an office action (notifications.services.requeue),
never an edit of the row: the dispatcher relies on its status transitions.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from notifications.models import OutboxMessage


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
