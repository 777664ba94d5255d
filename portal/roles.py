"""Staff roles: Django groups with the permissions each role needs.

The groups are (re)synchronised after every migrate, so adding a permission
to a role here and migrating is all a deployment needs.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db.models import TextChoices
from django.utils.translation import gettext_lazy as _


class Role(TextChoices):
    CUSTOMER_SERVICE = "customer_service", _("Customer service")
    BILLING = "billing", _("Billing")
    COLLECTIONS = "collections", _("Collections")
    METER_READING = "meter_reading", _("Meter-reading coordinator")
    COURIER = "courier", _("Courier")
    ESTIMATOR = "estimator", _("Estimator")
    ADMINISTRATOR = "administrator", _("Administrator")


_OFFICE_BASICS = [
    "portal.view_customer",
    "portal.view_task",
    "portal.change_task",
    "notifications.view_outboxmessage",
]

# Looking at invoices, tariffs and advance schedules.
_BILLING_VIEW = [
    "billing.view_invoice",
    "billing.view_pricelist",
    "billing.view_advanceschedule",
]

# A customer's account: payments and the ledger (receivables).
_RECEIVABLES_VIEW = [
    "receivables.view_payment",
    "receivables.view_ledgerentry",
]

# "app_label.codename" for each role.
ROLE_PERMISSIONS: dict[Role, list[str]] = {
    Role.CUSTOMER_SERVICE: [
        *_OFFICE_BASICS,
        "meters.view_supplypoint",
        "meters.view_reading",
        "portal.add_customer",
        "portal.change_customer",
        "portal.add_representative",
        "portal.change_representative",
        "portal.grant_portal_access",
        "portal.view_changerequest",
        "portal.decide_changerequest",
        *_BILLING_VIEW,
        *_RECEIVABLES_VIEW,
    ],
    Role.BILLING: [
        *_OFFICE_BASICS,
        "portal.view_changerequest",
        "meters.view_supplypoint",
        "meters.view_reading",
        *_BILLING_VIEW,
        "billing.add_invoice",
        "billing.change_invoice",
        "billing.issue_invoice",
        "billing.add_advanceschedule",
        "billing.view_billingrun",
        "billing.add_billingrun",
        "billing.change_billingrun",
        *_RECEIVABLES_VIEW,
    ],
    Role.COLLECTIONS: [
        *_OFFICE_BASICS,
        *_BILLING_VIEW,
        *_RECEIVABLES_VIEW,
        # Manual payments, matching, refunds and reversals (receivables.office).
        "receivables.add_payment",
        "receivables.change_payment",
        # Statements and collectors' files (receivables.office_files).
        "receivables.view_paymentimport",
        "receivables.add_paymentimport",
        # Dunning (receivables.dunning_office).
        "receivables.view_dunningpolicy",
        "receivables.view_dunningnotice",
        "receivables.change_dunningnotice",
        "receivables.view_letterbatch",
        "receivables.add_letterbatch",
    ],
    Role.METER_READING: [
        *_OFFICE_BASICS,
        "meters.view_supplypoint",
        "meters.view_reading",
        "meters.add_reading",
        "meters.change_reading",
        "meters.view_readinground",
        "meters.add_readinground",
        "meters.change_readinground",
        "meters.view_readingimport",
        "meters.add_readingimport",
    ],
    Role.COURIER: [],
    Role.ESTIMATOR: [*_OFFICE_BASICS, "meters.view_supplypoint", "meters.view_reading"],
    Role.ADMINISTRATOR: [
        *_OFFICE_BASICS,
        "portal.add_customer",
        "portal.change_customer",
        "portal.add_representative",
        "portal.change_representative",
        "portal.grant_portal_access",
        "portal.view_changerequest",
        "portal.decide_changerequest",
        "portal.view_user",
        "portal.change_user",
        "portal.view_auditevent",
        "meters.view_supplypoint",
        "meters.view_reading",
        "meters.add_reading",
        "meters.change_reading",
        "meters.view_readinground",
        "meters.add_readinground",
        "meters.change_readinground",
        "meters.view_readingimport",
        "meters.add_readingimport",
        *_BILLING_VIEW,
        "billing.view_billingrun",
    ],
}

# Roles that use the office (/office/); couriers use /courier/ only.
OFFICE_ROLES = [role for role in Role if role != Role.COURIER]


def group_for(role: Role) -> Group:
    return Group.objects.get(name=role.value)


def sync_role_groups(**kwargs: Any) -> None:
    """Create one group per role and give it exactly its permissions."""
    from django.apps import apps
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0)
    for role, codes in ROLE_PERMISSIONS.items():
        group, _created = Group.objects.get_or_create(name=role.value)
        wanted = []
        for code in codes:
            app_label, codename = code.split(".")
            wanted.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(wanted)
