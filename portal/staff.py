"""Who is staff, and the decorator that guards office and courier views."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from portal.models import User
from portal.roles import OFFICE_ROLES, Role


def role_names(user: Any) -> set[str]:
    if not user.is_authenticated:
        return set()
    cached = getattr(user, "_guichet_roles", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._guichet_roles = cached
    return cached


def is_office_user(user: Any) -> bool:
    return user.is_authenticated and (
        user.is_superuser or bool(role_names(user) & {r.value for r in OFFICE_ROLES})
    )


def is_courier(user: Any) -> bool:
    return user.is_authenticated and Role.COURIER.value in role_names(user)


def is_staff_member(user: Any) -> bool:
    """Anyone who must use MFA: office roles, couriers and admin users."""
    return user.is_authenticated and (user.is_staff or is_office_user(user) or is_courier(user))


class StaffRequest(HttpRequest):
    user: User


def office_view(
    permission: str | None = None,
) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """Guard an office view: customers get 404 (the office does not exist for
    them); couriers and staff without ``permission`` get 403."""

    def decorator(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not is_office_user(request.user):
                if is_courier(request.user):
                    raise PermissionDenied
                raise Http404
            if permission and not request.user.has_perm(permission):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def courier_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Guard a courier page: couriers only; office staff get 403, others 404."""

    @login_required(login_url="courier:login")
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_courier(request.user):
            if is_office_user(request.user):
                raise PermissionDenied
            raise Http404
        return view(request, *args, **kwargs)

    return wrapper
