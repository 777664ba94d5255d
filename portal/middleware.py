from __future__ import annotations

from collections.abc import Callable

from allauth.mfa.signals import authenticator_removed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import translation

from portal.staff import is_staff_member

# Pages a staff member without MFA may still open: the MFA set-up itself,
# logout, and the files those pages need.
_MFA_SETUP_PREFIXES = ("/accounts/", "/static/", "/i18n/")

# Session key: the pk of the user whose TOTP authenticator was found, so that
# the common staff request needs no query. Dropped when an authenticator is removed.
MFA_SEEN_SESSION_KEY = "guichet_mfa_user"


class UserLanguageMiddleware:
    """Serve each signed-in user in the language chosen in their profile."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and user.language:  # type: ignore[union-attr]
            translation.activate(user.language)  # type: ignore[union-attr]
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)


class StaffMFAMiddleware:
    """Staff must turn on MFA before they can use anything but its set-up."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            is_staff_member(user)
            and not request.path.startswith(_MFA_SETUP_PREFIXES)
            and not _has_totp(request)
        ):
            return redirect("mfa_activate_totp")
        return self.get_response(request)


def _has_totp(request: HttpRequest) -> bool:
    from allauth.mfa.models import Authenticator

    user = request.user
    if request.session.get(MFA_SEEN_SESSION_KEY) == user.pk:
        return True
    found = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    if found:
        request.session[MFA_SEEN_SESSION_KEY] = user.pk
    return found


# Connected on import: Django loads the middleware before it serves a request,
# and allauth sends this signal only while serving one.
@receiver(authenticator_removed)
def _forget_mfa(sender: object, request: HttpRequest | None = None, **kwargs: object) -> None:
    if request is not None and hasattr(request, "session"):
        request.session.pop(MFA_SEEN_SESSION_KEY, None)
