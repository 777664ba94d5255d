from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest
from django.urls import reverse

from portal.staff import is_courier, is_office_user


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # Portal access is granted by the office (two-part activation).
        return False

    def get_login_redirect_url(self, request: HttpRequest) -> str:
        if is_office_user(request.user):
            return reverse("office:home")
        if is_courier(request.user):
            return reverse("courier:home")
        return super().get_login_redirect_url(request)
