"""The courier login; the courier pages themselves live in meters.courier."""

from __future__ import annotations

from allauth.account.views import LoginView


class CourierLoginView(LoginView):
    template_name = "courier/login.html"


login = CourierLoginView.as_view()

