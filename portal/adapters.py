from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.db import models
from django.http import HttpRequest
from django.urls import reverse

from notifications.services import queue_rendered_email
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

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        """allauth's e-mails (password reset, address confirmation) go through the outbox."""
        message = self.render_mail(template_prefix, email, context)
        html = next(
            (body for body, mime in getattr(message, "alternatives", []) if mime == "text/html"),
            "",
        )
        user = context.get("user")
        queue_rendered_email(
            to=email,
            kind=template_prefix.rsplit("/", 1)[-1],
            subject=str(message.subject),
            body_text=str(message.body),
            body_html=str(html),
            about=user if isinstance(user, models.Model) else None,
        )
