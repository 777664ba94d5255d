"""Customer portal views (/)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from portal import access
from portal.access import CustomerRequest, customer_view
from portal.models import ChangeRequest


@customer_view()
def home(request: CustomerRequest) -> HttpResponse:
    ctx = {
        "customer": request.customer,
        "membership": request.membership,
        "pending_change": ChangeRequest.objects.pending().filter(customer=request.customer).first(),
        "other_customers": access.memberships_of(request.user).count() > 1,
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


# TODO(helper): account, contact, billing change, representatives, profile.
def _todo(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    return HttpResponse("todo")


account = contact_update = contact_email_confirm = billing_change = _todo
representatives = representative_create = representative_edit = profile = _todo
