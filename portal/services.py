"""Workflows of the core: customers, change requests, the audit trail, tasks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core import signing
from django.db import IntegrityError, connection, models, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from notifications.services import queue_email
from portal.models import (
    AuditEvent,
    ChangeRequest,
    ChangeRequestStatus,
    Customer,
    Representative,
    Task,
    TaskKind,
    TaskPriority,
    TaskStatus,
    User,
)
from portal.roles import Role


class ServiceError(Exception):
    """A business rule refused the action; the message is shown to the user."""


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, models.Model):
        return value.pk
    return (
        value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else str(value)
    )


def record(
    *,
    action: str,
    actor: User | None,
    customer: Customer | None = None,
    obj: models.Model | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    note: str = "",
    request: HttpRequest | None = None,
) -> AuditEvent:
    """Write one audit event (who, when, what, before, after)."""
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        customer=customer,
        action=action,
        object_type=obj._meta.label if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        before={k: _jsonable(v) for k, v in (before or {}).items()},
        after={k: _jsonable(v) for k, v in (after or {}).items()},
        note=note,
        ip_address=client_ip(request),
    )


def snapshot(obj: models.Model, fields: list[str] | tuple[str, ...]) -> dict[str, Any]:
    return {field: _jsonable(getattr(obj, field)) for field in fields}


def create_task(
    *,
    subject: str,
    kind: str = TaskKind.GENERAL,
    customer: Customer | None = None,
    team: Role | None = None,
    assignee: User | None = None,
    priority: int = TaskPriority.NORMAL,
    due_at: datetime | None = None,
    source: models.Model | None = None,
) -> Task:
    """Put an item in the staff work queue of a team and/or a person."""
    return Task.objects.create(
        subject=subject[:200],
        kind=kind,
        customer=customer,
        team=Group.objects.get(name=team.value) if team is not None else None,
        assignee=assignee,
        priority=priority,
        due_at=due_at,
        source_type=ContentType.objects.get_for_model(source) if source is not None else None,
        source_id=source.pk if source is not None else None,
    )


def close_tasks_of(source: models.Model) -> None:
    Task.objects.open().filter(
        source_type=ContentType.objects.get_for_model(source), source_id=source.pk
    ).update(status="done", closed_at=timezone.now())


def next_customer_number() -> str:
    # nextval() never hands the same value out twice, in or out of a transaction.
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval('portal_customer_number_seq')")
        (value,) = cursor.fetchone()  # type: ignore[misc]
    return f"C{value:07d}"


@transaction.atomic
def create_customer(
    *, customer: Customer, created_by: User, request: HttpRequest | None = None
) -> Customer:
    """Save a new (validated) customer with the next customer number."""
    if not customer.number:
        customer.number = next_customer_number()
    customer.save()
    record(
        action="customer.created",
        actor=created_by,
        customer=customer,
        obj=customer,
        after=snapshot(customer, Customer.BILLING_FIELDS + ("email", "mobile", "language")),
        request=request,
    )
    return customer


@transaction.atomic
def update_customer(
    *,
    customer: Customer,
    changes: dict[str, Any],
    actor: User,
    action: str = "customer.updated",
    request: HttpRequest | None = None,
    note: str = "",
) -> Customer:
    """Apply field changes to a customer and record before/after."""
    changes = {k: v for k, v in changes.items() if getattr(customer, k) != v}
    if not changes:
        return customer
    before = snapshot(customer, list(changes))
    for field, value in changes.items():
        setattr(customer, field, value)
    customer.save(update_fields=list(changes))
    record(
        action=action,
        actor=actor,
        customer=customer,
        obj=customer,
        before=before,
        after=snapshot(customer, list(changes)),
        note=note,
        request=request,
    )
    return customer


# --- Billing data change requests ----------------------------------------------


@transaction.atomic
def submit_change_request(
    *,
    customer: Customer,
    requested_by: User,
    changes: dict[str, Any],
    comment: str = "",
    request: HttpRequest | None = None,
) -> ChangeRequest:
    """Ask the office to verify and apply a change of billing data."""
    changes = {k: v for k, v in changes.items() if getattr(customer, k) != v}
    if not changes:
        raise ServiceError(_("Nothing was changed."))
    Customer.objects.select_for_update().get(pk=customer.pk)
    if ChangeRequest.objects.pending().filter(customer=customer).exists():
        raise ServiceError(_("A change request is already waiting for approval."))
    try:
        with transaction.atomic():
            change = ChangeRequest.objects.create(
                customer=customer,
                requested_by=requested_by,
                before=snapshot(customer, list(changes)),
                after={k: _jsonable(v) for k, v in changes.items()},
                comment=comment,
            )
    except IntegrityError:
        raise ServiceError(_("A change request is already waiting for approval.")) from None
    create_task(
        subject=_("Verify billing data change for %(customer)s") % {"customer": customer},
        kind=TaskKind.CHANGE_REQUEST,
        customer=customer,
        team=Role.CUSTOMER_SERVICE,
        due_at=timezone.now() + timedelta(days=2),
        source=change,
    )
    record(
        action="change_request.submitted",
        actor=requested_by,
        customer=customer,
        obj=change,
        before=change.before,
        after=change.after,
        note=comment,
        request=request,
    )
    return change


@transaction.atomic
def decide_change_request(
    *,
    change: ChangeRequest,
    approve: bool,
    decided_by: User,
    reason: str = "",
    request: HttpRequest | None = None,
) -> ChangeRequest:
    """Approve (apply) or reject a pending change request."""
    change = ChangeRequest.objects.select_for_update().get(pk=change.pk)
    if change.status != ChangeRequestStatus.PENDING:
        raise ServiceError(_("This request was already decided."))
    if not approve and not reason.strip():
        raise ServiceError(_("Give the customer a reason for the rejection."))
    customer = Customer.objects.select_for_update().get(pk=change.customer_id)
    if approve:
        stale = [f for f, old in change.before.items() if _jsonable(getattr(customer, f)) != old]
        if stale:
            raise ServiceError(
                _(
                    "The customer's data changed since the request was made (%(fields)s); "
                    "reject it and ask for a new one."
                )
                % {"fields": ", ".join(stale)}
            )
        update_customer(
            customer=customer,
            changes=change.after,
            actor=decided_by,
            action="customer.billing_data_changed",
            request=request,
            note=f"change request {change.public_id}",
        )
    change.status = ChangeRequestStatus.APPROVED if approve else ChangeRequestStatus.REJECTED
    change.decided_by = decided_by
    change.decided_at = timezone.now()
    change.reason = reason
    change.save(update_fields=["status", "decided_by", "decided_at", "reason"])
    close_tasks_of(change)
    record(
        action=f"change_request.{change.status}",
        actor=decided_by,
        customer=customer,
        obj=change,
        note=reason,
        request=request,
    )
    if change.requested_by.email:
        queue_email(
            to=change.requested_by.email,
            kind="change_request_decided",
            template="portal/email/change_request_decided",
            context={
                "change": change,
                "customer": customer,
                "url": absolute_url(reverse("portal:account")),
            },
            language=change.requested_by.language,
            about=customer,
        )
    return change


# --- Contact details the customer changes alone --------------------------------

EMAIL_CHANGE_SALT = "guichet.contact-email"
EMAIL_CHANGE_MAX_AGE = 60 * 60 * 48


def absolute_url(path: str) -> str:
    from django.conf import settings

    return f"{settings.SITE_URL}{path}"


@transaction.atomic
def change_contact_email(
    *, customer: Customer, new_email: str, actor: User, request: HttpRequest | None = None
) -> None:
    """Send a confirmation link to the new address; it applies when clicked."""
    token = signing.dumps(
        {"c": customer.pk, "e": new_email, "u": actor.pk}, salt=EMAIL_CHANGE_SALT, compress=True
    )
    queue_email(
        to=new_email,
        kind="contact_email_verification",
        template="portal/email/contact_email_verification",
        context={
            "customer": customer,
            "url": absolute_url(reverse("portal:contact-email-confirm", args=[token])),
        },
        language=customer.language,
        about=customer,
    )
    record(
        action="customer.email_verification_sent",
        actor=actor,
        customer=customer,
        obj=customer,
        after={"email": new_email},
        request=request,
    )


def read_email_token(token: str) -> dict[str, Any] | None:
    try:
        data = signing.loads(token, salt=EMAIL_CHANGE_SALT, max_age=EMAIL_CHANGE_MAX_AGE)
    except signing.BadSignature:
        return None
    return data if isinstance(data, dict) else None


def representative_fields() -> tuple[str, ...]:
    return ("first_name", "last_name", "function", "email", "phone")


@transaction.atomic
def save_representative(
    *,
    representative: Representative,
    actor: User,
    request: HttpRequest | None = None,
    before: dict[str, Any] | None = None,
) -> Representative:
    created = representative.pk is None
    representative.save()
    record(
        action="representative.created" if created else "representative.updated",
        actor=actor,
        customer=representative.customer,
        obj=representative,
        before=before or {},
        after=snapshot(representative, representative_fields()),
        request=request,
    )
    return representative


# --- The staff work queue --------------------------------------------------------


@transaction.atomic
def take_task(*, task: Task, user: User, request: HttpRequest | None = None) -> Task:
    """Assign an open task to ``user`` and mark it in progress."""
    task = Task.objects.select_for_update().get(pk=task.pk)
    if not task.is_open:
        raise ServiceError(_("This task is closed; reopen it first."))
    before = snapshot(task, ["assignee_id", "status"])
    task.assignee = user
    task.status = TaskStatus.IN_PROGRESS
    task.save(update_fields=["assignee", "status"])
    record(
        action="task.taken",
        actor=user,
        customer=task.customer,
        obj=task,
        before=before,
        after=snapshot(task, ["assignee_id", "status"]),
        request=request,
    )
    return task


@transaction.atomic
def set_task_status(
    *, task: Task, status: str, actor: User, request: HttpRequest | None = None
) -> Task:
    """Move a task to ``status``; closing stamps closed_at, reopening clears it."""
    task = Task.objects.select_for_update().get(pk=task.pk)
    if task.status == status:
        return task
    before = snapshot(task, ["status"])
    task.status = status
    task.closed_at = None if task.is_open else timezone.now()
    task.save(update_fields=["status", "closed_at"])
    record(
        action="task.status_changed",
        actor=actor,
        customer=task.customer,
        obj=task,
        before=before,
        after=snapshot(task, ["status"]),
        request=request,
    )
    return task
