"""Courier pages (/courier/): small, for phones."""

from __future__ import annotations

from allauth.account.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.staff import courier_view


class CourierLoginView(LoginView):
    template_name = "courier/login.html"


login = CourierLoginView.as_view()


@courier_view
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "courier/home.html")
