"""The only way customer-facing code looks objects up.

Every lookup is scoped to the customer the user is acting for (the "current
customer", chosen among the customers the user represents). An object of
another customer answers 404, exactly like an object that does not exist, so
ids reveal nothing. A user whose membership role is too weak for an action
gets 403.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

from portal.models import Customer, Membership, MembershipRole, User

SESSION_KEY = "guichet_customer"

M = TypeVar("M", bound=Model)


class CustomerRequest(HttpRequest):
    """A request of a signed-in representative, with its current customer."""

    user: User
    membership: Membership
    customer: Customer


def memberships_of(user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("customer")


def customers_of(user: User) -> QuerySet[Customer]:
    """All customers the user may act for."""
    return Customer.objects.filter(memberships__user=user)


def current_membership(request: HttpRequest) -> Membership | None:
    """The membership for the customer chosen in this session, else the first one."""
    user = request.user
    if not user.is_authenticated:
        return None
    memberships = memberships_of(user).order_by("customer__number")  # type: ignore[arg-type]
    chosen = request.session.get(SESSION_KEY)
    if chosen:
        membership = memberships.filter(customer__public_id=chosen).first()
        if membership is not None:
            return membership
    membership = memberships.first()
    if membership is not None:
        request.session[SESSION_KEY] = str(membership.customer.public_id)
    return membership


def switch_customer(request: HttpRequest, public_id: str) -> Membership:
    """Make another represented customer current; 404 if the user does not represent it."""
    membership = get_membership(request.user, public_id)  # type: ignore[arg-type]
    request.session[SESSION_KEY] = str(membership.customer.public_id)
    return membership


def get_membership(user: User, customer_public_id: Any) -> Membership:
    try:
        return memberships_of(user).get(customer__public_id=customer_public_id)
    except (Membership.DoesNotExist, ValueError, TypeError, ValidationError) as exc:
        raise Http404 from exc


def customer_view(
    *, roles: Iterable[str] | None = None
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Decorate a portal view: login required, sets request.membership/.customer.

    ``roles`` limits the view to those membership roles (others get 403).
    A user who represents no customer is sent to the page that says so.
    """
    allowed = set(roles) if roles is not None else None

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = current_membership(request)
            if membership is None:
                return redirect("portal:no-customer")
            if allowed is not None and membership.role not in allowed:
                raise PermissionDenied
            request.membership = membership  # type: ignore[attr-defined]
            request.customer = membership.customer  # type: ignore[attr-defined]
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


EDITORS = (MembershipRole.OWNER, MembershipRole.MANAGER)


def scoped(
    request: CustomerRequest, queryset: QuerySet[M], *, via: str = "customer"
) -> QuerySet[M]:
    """Restrict ``queryset`` to the current customer (``via`` names the path to it)."""
    return queryset.filter(**{via: request.customer})


def get_scoped(
    request: CustomerRequest, queryset: QuerySet[M], *, via: str = "customer", **lookup: Any
) -> M:
    """One object of the current customer, else 404 (also for malformed ids)."""
    try:
        return scoped(request, queryset, via=via).get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, TypeError, ValidationError) as exc:  # type: ignore[attr-defined]
        raise Http404 from exc
    except queryset.model.MultipleObjectsReturned as exc:  # type: ignore[attr-defined]
        raise Http404 from exc
