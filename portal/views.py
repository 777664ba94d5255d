"""Customer portal views (/)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from allauth.mfa.models import Authenticator
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from portal import access, extensions, services
from portal.access import CustomerRequest, customer_view
from portal.forms import BillingChangeForm, ContactForm, ProfileForm, RepresentativeForm
from portal.models import ChangeRequest, Representative, User


def _posted(request: HttpRequest) -> Any:
    """The submitted data of a POST (even an empty one), else None for an unbound form."""
    return request.POST if request.method == "POST" else None


def _can_edit(request: CustomerRequest) -> bool:
    return request.membership.role in access.EDITORS


@customer_view()
def home(request: CustomerRequest) -> HttpResponse:
    ctx = {
        "customer": request.customer,
        "membership": request.membership,
        "can_edit": _can_edit(request),
        "pending_change": access.scoped(request, ChangeRequest.objects.pending()).first(),
        "last_change": access.scoped(
            request, ChangeRequest.objects.order_by("-created_at")
        ).first(),
        "other_customers": access.memberships_of(request.user).count() > 1,
        "dashboard_cards": extensions.dashboard_cards(request, request.customer),
    }
    return render(request, "portal/home.html", ctx)


@login_required
def no_customer(request: HttpRequest) -> HttpResponse:
    if access.current_membership(request) is not None:
        return redirect("portal:home")
    return render(request, "portal/no_customer.html")


@login_required
@require_http_methods(["GET", "POST"])
def switch(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        membership = access.switch_customer(request, request.POST.get("customer", ""))
        messages.success(
            request, _("You now act for %(customer)s.") % {"customer": membership.customer.name}
        )
        return redirect("portal:home")
    memberships = access.memberships_of(request.user).order_by("customer__number")  # type: ignore[arg-type]
    current = access.current_membership(request)
    return render(request, "portal/switch.html", {"memberships": memberships, "current": current})


# --- Account: data, contact details, billing data change ------------------------


def _representatives(request: CustomerRequest) -> QuerySet[Representative]:
    # Each representative's portal access (role) comes in one extra query.
    return access.scoped(request, Representative.objects.all()).prefetch_related("memberships")


def _contact_context(
    request: CustomerRequest, form: ContactForm | None = None, notice: str = ""
) -> dict[str, Any]:
    can_edit = _can_edit(request)
    if can_edit and form is None:
        form = ContactForm.for_customer(request.customer)
    return {
        "customer": request.customer,
        "can_edit": can_edit,
        "contact_form": form,
        "contact_notice": notice,
    }


@customer_view()
def account(request: CustomerRequest) -> HttpResponse:
    return render(request, "portal/account.html", _account_context(request))


def _account_context(request: CustomerRequest, form: ContactForm | None = None) -> dict[str, Any]:
    change_requests = access.scoped(request, ChangeRequest.objects.select_related("requested_by"))
    return {
        **_contact_context(request, form),
        "membership": request.membership,
        "representatives": _representatives(request),
        "change_requests": change_requests.order_by("-created_at"),
    }


@customer_view(roles=access.EDITORS)
@require_POST
def contact_update(request: CustomerRequest) -> HttpResponse:
    customer = request.customer
    form = ContactForm.for_customer(customer, request.POST)
    if not form.is_valid():
        if request.htmx:  # type: ignore[attr-defined]
            return render(request, "portal/account.html#contact", _contact_context(request, form))
        return render(request, "portal/account.html", _account_context(request, form))

    data = form.cleaned_data
    new_email = data["email"]
    email_changed = new_email.lower() != customer.email.lower()
    changes = {
        field: data[field]
        for field in ContactForm.IMMEDIATE_FIELDS
        if getattr(customer, field) != data[field]
    }
    if email_changed and not new_email:
        changes["email"] = ""  # removing an address needs no proof of a mailbox
    with transaction.atomic():
        services.update_customer(
            customer=customer,
            changes=changes,
            actor=request.user,
            action="customer.contact_updated",
            request=request,
        )
        if email_changed and new_email:
            services.change_contact_email(
                customer=customer, new_email=new_email, actor=request.user, request=request
            )

    notices = []
    if changes:
        notices.append(_("Your contact details were saved."))
    if email_changed and new_email:
        notices.append(
            _("We sent a link to %(email)s. The e-mail address changes when you follow it.")
            % {"email": new_email}
        )
    notice = " ".join(notices) or _("Nothing was changed.")
    if request.htmx:  # type: ignore[attr-defined]
        return render(
            request, "portal/account.html#contact", _contact_context(request, notice=notice)
        )
    messages.success(request, notice)
    return redirect("portal:account")


def _email_token_for(request: CustomerRequest, token: str) -> str:
    """The new address in ``token``; 404 unless it was issued for the current customer."""
    data = services.read_email_token(token)
    if data is None:
        return ""
    if data.get("c") != request.customer.pk or not isinstance(data.get("e"), str):
        raise Http404
    return str(data["e"])


@customer_view(roles=access.EDITORS)
@require_http_methods(["GET", "POST"])
def contact_email_confirm(request: CustomerRequest, token: str) -> HttpResponse:
    new_email = _email_token_for(request, token)
    customer = request.customer
    if not new_email:
        return render(
            request,
            "portal/contact_email_confirm.html",
            {"customer": customer, "invalid": True},
            status=400,
        )
    if request.method == "POST":
        if new_email.lower() != customer.email.lower():
            services.update_customer(
                customer=customer,
                changes={"email": new_email},
                actor=request.user,
                action="customer.email_changed",
                note="confirmed by the link sent to the address",
                request=request,
            )
        messages.success(request, _("The e-mail address is now %(email)s.") % {"email": new_email})
        return redirect("portal:account")
    return render(
        request,
        "portal/contact_email_confirm.html",
        {
            "customer": customer,
            "new_email": new_email,
            "already": new_email.lower() == customer.email.lower(),
        },
    )


@customer_view(roles=access.EDITORS)
@require_http_methods(["GET", "POST"])
def billing_change(request: CustomerRequest) -> HttpResponse:
    customer = request.customer
    pending = access.scoped(request, ChangeRequest.objects.pending()).first()
    form = BillingChangeForm(_posted(request), customer=customer)
    if request.method == "POST" and form.is_valid():
        try:
            services.submit_change_request(
                customer=customer,
                requested_by=request.user,
                changes=form.requested_changes(),
                comment=form.cleaned_data["comment"],
                request=request,
            )
        except services.ServiceError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request,
                _(
                    "Your request was sent. Customer service will check it "
                    "and we will tell you by e-mail."
                ),
            )
            return redirect("portal:account")
    return render(
        request,
        "portal/billing_change.html",
        {"customer": customer, "form": form, "pending": pending},
    )


# --- Representatives ---------------------------------------------------------------


@customer_view()
def representatives(request: CustomerRequest) -> HttpResponse:
    return render(
        request,
        "portal/representatives.html",
        {
            "customer": request.customer,
            "representatives": _representatives(request),
            "can_edit": _can_edit(request),
        },
    )


@customer_view(roles=access.EDITORS)
@require_http_methods(["GET", "POST"])
def representative_create(request: CustomerRequest) -> HttpResponse:
    form = RepresentativeForm(_posted(request), instance=Representative(customer=request.customer))
    if request.method == "POST" and form.is_valid():
        representative = services.save_representative(
            representative=form.save(commit=False), actor=request.user, request=request
        )
        messages.success(request, _("%(name)s was added.") % {"name": representative.full_name})
        return redirect("portal:representatives")
    return render(
        request,
        "portal/representative_form.html",
        {"customer": request.customer, "form": form, "representative": None},
    )


@customer_view(roles=access.EDITORS)
@require_http_methods(["GET", "POST"])
def representative_edit(request: CustomerRequest, public_id: UUID) -> HttpResponse:
    representative = access.get_scoped(request, Representative.objects.all(), public_id=public_id)
    before = services.snapshot(representative, services.representative_fields())
    form = RepresentativeForm(_posted(request), instance=representative)
    if request.method == "POST" and form.is_valid():
        if form.has_changed():
            services.save_representative(
                representative=form.save(commit=False),
                actor=request.user,
                request=request,
                before=before,
            )
            messages.success(request, _("%(name)s was saved.") % {"name": representative.full_name})
        else:
            messages.info(request, _("Nothing was changed."))
        return redirect("portal:representatives")
    return render(
        request,
        "portal/representative_form.html",
        {"customer": request.customer, "form": form, "representative": representative},
    )


# --- The user's own settings -----------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    before = services.snapshot(user, ["language"])
    form = ProfileForm(_posted(request), instance=user)
    if request.method == "POST" and form.is_valid():
        if form.has_changed():
            user.save(update_fields=["language"])
            services.record(
                action="user.language_changed",
                actor=user,
                obj=user,
                before=before,
                after=services.snapshot(user, ["language"]),
                request=request,
            )
        with translation.override(user.language):
            messages.success(request, _("Your settings were saved."))
        return redirect("portal:profile")
    mfa_types = set(Authenticator.objects.filter(user=user).values_list("type", flat=True))
    return render(
        request,
        "portal/profile.html",
        {
            "form": form,
            "totp_on": Authenticator.Type.TOTP in mfa_types,
            "recovery_codes_on": Authenticator.Type.RECOVERY_CODES in mfa_types,
            "memberships": access.memberships_of(user).order_by("customer__number"),
        },
    )
