"""The Django admin (/admin/): superusers' view of the core tables.

Day-to-day work happens in the office (/office/), where every change goes
through portal.services and is audited. Here, records whose history matters
(audit events, activation codes, change-request decisions) are read-only.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from portal.models import (
    ActivationCode,
    AuditEvent,
    ChangeRequest,
    Customer,
    Membership,
    Representative,
    Task,
    User,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Look, never touch: no add, change or delete, for anyone."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- Users ----------------------------------------------------------------------


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(_("A user with this e-mail address already exists."))
        return email


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        others = User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk)
        if others.exists():
            raise forms.ValidationError(_("A user with this e-mail address already exists."))
        return email


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Personal info"), {"fields": ("first_name", "last_name", "language")}),
        (
            _("Permissions"),
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "usable_password", "password1", "password2"),
            },
        ),
    )
    readonly_fields = ("last_login", "date_joined")
    list_display = ("email", "first_name", "last_name", "language", "is_staff", "is_superuser",
                    "is_active", "last_login")
    list_filter = ("is_staff", "is_superuser", "is_active", "groups", "language")
    search_fields = ("email", "first_name", "last_name")
    ordering = ("email",)


# --- Customers and the people acting for them --------------------------------------


class RepresentativeInline(admin.TabularInline):
    model = Representative
    fields = ("first_name", "last_name", "function", "email", "phone", "user")
    raw_id_fields = ("user",)
    extra = 0


class MembershipInline(admin.TabularInline):
    model = Membership
    fields = ("user", "role", "representative", "created_at")
    readonly_fields = ("created_at",)
    raw_id_fields = ("user", "representative")
    extra = 0


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("number", "name", "kind", "city", "country", "email", "mobile", "language",
                    "consent_ebilling")
    list_filter = ("kind", "country", "language", "consent_ebilling",
                   "consent_electronic_delivery")
    # The search box uses Customer.objects.search (full-text prefix match over
    # number, names, e-mail, phone, tax ids and address); see get_search_results.
    search_fields = ("number",)
    search_help_text = _("Number, name, e-mail, phone, tax id or address; word beginnings match.")
    readonly_fields = ("public_id", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("number", "public_id", "kind", "language")}),
        (_("Name"), {"fields": ("first_name", "last_name", "company_name")}),
        (_("Billing data"), {"fields": ("tax_id", "vat_id", "street", "postal_code", "city",
                                        "country")}),
        (_("Contact"), {"fields": ("email", "mobile", "consent_ebilling",
                                   "consent_electronic_delivery")}),
        (_("History"), {"fields": ("created_at", "updated_at")}),
    )
    inlines = [RepresentativeInline, MembershipInline]
    date_hierarchy = "created_at"

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Customer], search_term: str
    ) -> tuple[QuerySet[Customer], bool]:
        if not search_term.strip():
            return queryset, False
        return queryset.search(search_term), False  # type: ignore[attr-defined]


@admin.register(Representative)
class RepresentativeAdmin(admin.ModelAdmin):
    list_display = ("full_name", "customer", "function", "email", "phone", "user")
    list_select_related = ("customer", "user")
    list_filter = (("user", admin.EmptyFieldListFilter),)
    search_fields = ("first_name", "last_name", "email", "phone", "customer__number")
    raw_id_fields = ("customer", "user")
    readonly_fields = ("public_id", "created_at")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "customer", "role", "representative", "created_at")
    list_select_related = ("user", "customer", "representative")
    list_filter = ("role",)
    search_fields = ("user__email", "customer__number", "customer__company_name",
                     "customer__last_name")
    raw_id_fields = ("user", "customer", "representative")
    readonly_fields = ("created_at",)


# --- Office work --------------------------------------------------------------------


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("subject", "kind", "customer", "team", "assignee", "priority", "status",
                    "due_at", "created_at")
    list_select_related = ("customer", "team", "assignee")
    list_filter = ("status", "kind", "priority", "team")
    search_fields = ("subject", "customer__number", "assignee__email")
    raw_id_fields = ("customer", "assignee")
    readonly_fields = ("public_id", "source_type", "source_id", "created_at", "closed_at")
    date_hierarchy = "created_at"


@admin.register(ChangeRequest)
class ChangeRequestAdmin(admin.ModelAdmin):
    """Decisions are taken in the office (they apply the change and audit it);
    the admin only shows them."""

    list_display = ("public_id", "customer", "requested_by", "status", "created_at",
                    "decided_by", "decided_at")
    list_select_related = ("customer", "requested_by", "decided_by")
    list_filter = ("status",)
    search_fields = ("customer__number", "requested_by__email")
    fields = ("public_id", "customer", "requested_by", "created_at", "changes", "comment",
              "status", "decided_by", "decided_at", "reason")
    readonly_fields = ("public_id", "customer", "requested_by", "created_at", "changes",
                       "status", "decided_by", "decided_at", "reason")
    date_hierarchy = "created_at"

    @admin.display(description=_("changes"))
    def changes(self, obj: ChangeRequest) -> SafeString:
        return format_html_join(
            "\n", "<div>{}: {} → {}</div>", obj.changed_fields()
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A request comes from a customer, through portal.services.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "action", "actor", "customer", "object_type", "object_id",
                    "ip_address")
    list_select_related = ("actor", "customer")
    list_filter = ("action", "object_type")
    search_fields = ("action", "object_id", "customer__number", "actor__email", "note")
    date_hierarchy = "created_at"


class ActivationStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("waiting", _("waiting")), ("used", _("used")), ("revoked", _("revoked")),
                ("locked", _("locked")), ("expired", _("expired"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        now = timezone.now()
        unused = Q(used_at=None)
        live = unused & Q(revoked_at=None)
        conditions = {
            "waiting": live & Q(locked_at=None, expires_at__gt=now),
            "used": ~Q(used_at=None),
            "revoked": unused & ~Q(revoked_at=None),
            "locked": live & ~Q(locked_at=None),
            "expired": live & Q(locked_at=None, expires_at__lte=now),
        }
        condition = conditions.get(self.value() or "")
        return queryset if condition is None else queryset.filter(condition)


@admin.register(ActivationCode)
class ActivationCodeAdmin(ReadOnlyAdmin):
    # Never the two secret hashes, nor the letter (it holds part 1 in clear).
    list_display = ("lookup", "representative", "customer", "role", "state", "created_at",
                    "expires_at", "used_at")
    list_select_related = ("representative", "customer")
    list_filter = (ActivationStateFilter, "role")
    search_fields = ("lookup", "customer__number", "representative__last_name", "user__email")
    fields = ("public_id", "lookup", "user", "customer", "representative", "role", "state",
              "created_by", "created_at", "expires_at", "failed_attempts", "locked_at",
              "used_at", "revoked_at")
    readonly_fields = fields
    date_hierarchy = "created_at"

    @admin.display(description=_("state"))
    def state(self, obj: ActivationCode) -> str:
        return obj.state
