"""Office views (/office/): the work queue, customers, change requests.

Every view is guarded by ``@office_view(permission)``: people who are not
staff get 404, staff whose role lacks the permission get 403.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import F, Field
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.middleware import HtmxDetails

from notifications import services as notifications
from notifications.models import OutboxMessage, Status
from portal import activation, services
from portal.models import (
    AuditEvent,
    ChangeRequest,
    ChangeRequestStatus,
    Customer,
    Membership,
    Task,
    TaskQuerySet,
)
from portal.office_forms import CustomerForm, DecisionForm, RepresentativeForm, TaskStatusForm
from portal.staff import StaffRequest, office_view

TASKS_PER_PAGE = 50
SEARCH_LIMIT = 50
HISTORY_LIMIT = 50


class OfficeRequest(StaffRequest):
    htmx: HtmxDetails


def _posted(request: HttpRequest) -> QueryDict | None:
    """The submitted data of a POST (even an empty one), None for a GET."""
    return request.POST if request.method == "POST" else None


# --- Extra sections of the customer page ----------------------------------------


@dataclass(frozen=True)
class CustomerSection:
    """A section another app adds to the customer page (supply points, invoices…).

    ``template`` is included with ``customer`` and ``data`` (what ``load``
    returned) in its context; ``permission`` hides it from roles without it.
    Register once, from the app's ``AppConfig.ready()``.
    """

    title: str
    template: str
    load: Callable[[OfficeRequest, Customer], dict[str, Any]]
    permission: str = ""
    order: int = 100


CUSTOMER_SECTIONS: list[CustomerSection] = []


def add_customer_section(section: CustomerSection) -> None:
    if all(s.template != section.template for s in CUSTOMER_SECTIONS):
        CUSTOMER_SECTIONS.append(section)
        CUSTOMER_SECTIONS.sort(key=lambda s: s.order)


def _extra_sections(request: OfficeRequest, customer: Customer) -> list[dict[str, Any]]:
    return [
        {"title": s.title, "template": s.template, "data": s.load(request, customer)}
        for s in CUSTOMER_SECTIONS
        if not s.permission or request.user.has_perm(s.permission)
    ]


# --- Work queue -----------------------------------------------------------------


def _render_tasks(request: OfficeRequest, tasks: TaskQuerySet, *, tab: str) -> HttpResponse:
    rows = tasks.select_related("customer", "team", "assignee")
    page = Paginator(rows, TASKS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "office/home.html", {"page": page, "tab": tab})


@office_view("portal.view_task")
@require_GET
def home(request: OfficeRequest) -> HttpResponse:
    """My tasks: open tasks assigned to me, most urgent first."""
    tasks = Task.objects.open().assigned_to(request.user).by_urgency()
    return _render_tasks(request, tasks, tab="mine")


@office_view("portal.view_task")
@require_GET
def team_tasks(request: OfficeRequest) -> HttpResponse:
    """Open tasks of my teams; nobody's tasks first so they get picked up."""
    tasks = (
        Task.objects.open()
        .for_teams_of(request.user)
        .order_by(F("assignee_id").asc(nulls_first=True), "-priority",
                  F("due_at").asc(nulls_last=True), "created_at")
    )
    return _render_tasks(request, tasks, tab="team")


def _get_task(public_id: Any) -> Task:
    return get_object_or_404(
        Task.objects.select_related("customer", "team", "assignee"), public_id=public_id
    )


def _source_link(task: Task) -> tuple[str, str] | None:
    """(label, url) of the object the task is about, when the office has a page for it."""
    if task.source_type_id is None or task.source_id is None:
        return None
    source = task.source
    if isinstance(source, ChangeRequest):
        return _("Billing data change request"), reverse(
            "office:change-request", args=[source.public_id]
        )
    # Other apps' objects name their own office page.
    office_link = getattr(source, "office_link", None)
    return office_link() if callable(office_link) else None


@office_view("portal.view_task")
@require_http_methods(["GET", "POST"])
def task_detail(request: OfficeRequest, public_id: Any) -> HttpResponse:
    task = _get_task(public_id)
    if request.method == "POST":
        if not request.user.has_perm("portal.change_task"):
            raise PermissionDenied
        action = request.POST.get("action")
        status_form = TaskStatusForm(request.POST)
        try:
            if action == "take":
                services.take_task(task=task, user=request.user, request=request)
                messages.success(request, _("The task is yours now."))
            elif action == "status" and status_form.is_valid():
                services.set_task_status(task=task, status=status_form.cleaned_data["status"],
                                         actor=request.user, request=request)
                messages.success(request, _("Status changed."))
            else:
                messages.error(request, _("Choose what to do with the task."))
        except services.ServiceError as exc:
            messages.error(request, str(exc))
        return redirect("office:task", public_id=task.public_id)
    ctx = {
        "task": task,
        "source": _source_link(task),
        "status_form": TaskStatusForm(initial={"status": task.status}),
    }
    return render(request, "office/task_detail.html", ctx)


# --- Customers ------------------------------------------------------------------


@office_view("portal.view_customer")
@require_GET
def customers(request: OfficeRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()[:200]
    results: list[Customer] = []
    if q:
        # One more than shown tells whether to say "refine your search".
        results = list(Customer.objects.search(q).order_by("number")[: SEARCH_LIMIT + 1])
    ctx = {
        "q": q,
        "results": results[:SEARCH_LIMIT],
        "more": len(results) > SEARCH_LIMIT,
        "limit": SEARCH_LIMIT,
    }
    # A live search swaps the results only; a full load (or history restore) gets the page.
    partial = request.htmx and not request.htmx.history_restore_request
    template = "office/customers.html#results" if partial else "office/customers.html"
    response = render(request, template, ctx)
    patch_vary_headers(response, ["HX-Request"])
    return response


@office_view("portal.add_customer")
@require_http_methods(["GET", "POST"])
def customer_create(request: OfficeRequest) -> HttpResponse:
    form = CustomerForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        customer = services.create_customer(
            customer=form.save(commit=False), created_by=request.user, request=request
        )
        messages.success(request, _("Customer %(number)s created.") % {"number": customer.number})
        return redirect("office:customer", public_id=customer.public_id)
    return render(request, "office/customer_form.html", {"form": form, "customer": None})


def _get_customer(public_id: Any) -> Customer:
    return get_object_or_404(Customer, public_id=public_id)


def _audit_rows(events: list[AuditEvent]) -> list[tuple[AuditEvent, list[tuple[str, Any, Any]]]]:
    rows = []
    for event in events:
        fields = list(dict.fromkeys([*event.before, *event.after]))
        rows.append((event, [(f, event.before.get(f), event.after.get(f)) for f in fields]))
    return rows


@office_view("portal.view_customer")
@require_GET
def customer_detail(request: OfficeRequest, public_id: Any) -> HttpResponse:
    """The customer 360 page: everything the office knows about one customer."""
    customer = _get_customer(public_id)
    representatives = list(customer.representatives.select_related("user"))
    memberships = list(
        Membership.objects.filter(customer=customer)
        .select_related("user", "representative")
        .order_by("role", "user__email")
    )
    by_representative = {m.representative_id: m for m in memberships if m.representative_id}
    change_requests = list(
        customer.change_requests.select_related("requested_by", "decided_by")[:HISTORY_LIMIT]
    )
    ctx = {
        "customer": customer,
        "representatives": [(rep, by_representative.get(rep.pk)) for rep in representatives],
        "memberships": memberships,
        "pending_changes": [c for c in change_requests if c.status == ChangeRequestStatus.PENDING],
        "past_changes": [c for c in change_requests if c.status != ChangeRequestStatus.PENDING],
        "tasks": list(
            customer.tasks.open().select_related("team", "assignee").by_urgency()[:HISTORY_LIMIT]
        ),
        "outbox": list(OutboxMessage.objects.about(customer)[:HISTORY_LIMIT]),
        "history": _audit_rows(
            list(AuditEvent.objects.for_customer(customer).select_related("actor")[:HISTORY_LIMIT])
        ),
        # For office/_customer_activation.html (portal.activation owns that part).
        "activation_codes": list(activation.codes_for(customer)),
        "extra_sections": _extra_sections(request, customer),
    }
    return render(request, "office/customer_detail.html", ctx)


@office_view("portal.change_customer")
@require_http_methods(["GET", "POST"])
def customer_edit(request: OfficeRequest, public_id: Any) -> HttpResponse:
    customer = _get_customer(public_id)
    # The form works on a copy: update_customer compares against the original.
    form = CustomerForm(_posted(request), instance=copy.copy(customer))
    if request.method == "POST" and form.is_valid():
        if form.has_changed():
            services.update_customer(customer=customer, changes=form.changes(),
                                     actor=request.user, request=request)
            messages.success(request, _("Customer data saved."))
        else:
            messages.info(request, _("Nothing was changed."))
        return redirect("office:customer", public_id=customer.public_id)
    return render(request, "office/customer_form.html", {"form": form, "customer": customer})


@office_view("portal.add_representative")
@require_http_methods(["GET", "POST"])
def representative_create(request: OfficeRequest, public_id: Any) -> HttpResponse:
    customer = _get_customer(public_id)
    form = RepresentativeForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        representative = form.save(commit=False)
        representative.customer = customer
        services.save_representative(representative=representative, actor=request.user,
                                     request=request)
        messages.success(request, _("%(name)s added as a representative.")
                         % {"name": representative.full_name})
        return redirect("office:customer", public_id=customer.public_id)
    return render(request, "office/representative_form.html",
                  {"form": form, "customer": customer})


# --- Change requests ------------------------------------------------------------


def _customer_field(name: str) -> Field[Any, Any]:
    field = Customer._meta.get_field(name)
    assert isinstance(field, Field)
    return field


def _display(field: str, value: Any) -> Any:
    """A stored value as staff read it (choice labels instead of codes)."""
    return dict(_customer_field(field).flatchoices).get(value, value)


def _change_rows(change: ChangeRequest) -> list[dict[str, Any]]:
    customer = change.customer
    rows = []
    for field, new in change.after.items():
        old = change.before.get(field, "")
        current = services.snapshot(customer, [field])[field]
        rows.append({
            "label": _customer_field(field).verbose_name,
            "before": _display(field, old),
            "after": _display(field, new),
            "current": _display(field, current),
            # The customer's data moved on since the request: approving would refuse.
            "stale": change.status == ChangeRequestStatus.PENDING and current != old,
        })
    return rows


def _get_change(public_id: Any) -> ChangeRequest:
    return get_object_or_404(
        ChangeRequest.objects.select_related("customer", "requested_by", "decided_by"),
        public_id=public_id,
    )


def _render_change(
    request: OfficeRequest, change: ChangeRequest, form: DecisionForm, *, partial: bool = False
) -> HttpResponse:
    ctx = {"change": change, "rows": _change_rows(change), "form": form}
    template = "office/change_request.html"
    return render(request, f"{template}#decision" if partial else template, ctx)


@office_view("portal.view_changerequest")
@require_GET
def change_request(request: OfficeRequest, public_id: Any) -> HttpResponse:
    return _render_change(request, _get_change(public_id), DecisionForm())


@office_view("portal.decide_changerequest")
@require_POST
def change_request_decide(request: OfficeRequest, public_id: Any) -> HttpResponse:
    change = _get_change(public_id)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _render_change(request, change, form, partial=bool(request.htmx))
    try:
        change = services.decide_change_request(
            change=change, approve=form.approve, decided_by=request.user,
            reason=form.cleaned_data["reason"], request=request,
        )
    except services.ServiceError as exc:
        if request.htmx:
            form.add_error(None, str(exc))
            change.refresh_from_db()
            return _render_change(request, change, form, partial=True)
        messages.error(request, str(exc))
        return redirect("office:change-request", public_id=change.public_id)
    if request.htmx:
        # The fragment shows the decision; no flash message left for a later page.
        return _render_change(request, change, DecisionForm(), partial=True)
    if change.status == ChangeRequestStatus.APPROVED:
        messages.success(request, _("Approved: the customer's data was changed."))
    else:
        messages.success(request, _("Rejected: the customer will be told why."))
    return redirect("office:change-request", public_id=change.public_id)


# --- Outbox ---------------------------------------------------------------------


@office_view("notifications.view_outboxmessage")
@office_view("portal.change_customer")
@require_POST
def message_retry(request: OfficeRequest, public_id: Any) -> HttpResponse:
    """Queue a failed message about a customer again."""
    message = get_object_or_404(
        OutboxMessage, public_id=public_id,
        about_type=ContentType.objects.get_for_model(Customer),
    )
    customer = get_object_or_404(Customer, pk=message.about_id or 0)
    retried = message.status == Status.FAILED
    if retried:
        with transaction.atomic():
            notifications.requeue(message=message)
            services.record(action="message.requeued", actor=request.user, customer=customer,
                            obj=message, note=f"{message.channel} {message.to}", request=request)
        message.refresh_from_db()
        notice = _("The message is queued again.")
    else:
        notice = _("Only a failed message can be sent again.")
    if request.htmx:
        return render(request, "office/customer_detail.html#message_row",
                      {"message": message, "customer": customer, "notice": notice})
    (messages.success if retried else messages.error)(request, notice)
    return redirect(reverse("office:customer", args=[customer.public_id]) + "#messages")
