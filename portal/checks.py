"""Start-up checks."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register


@register()
def check_operator(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    if settings.PRODUCTION and settings.EMAIL_BACKEND.endswith("console.EmailBackend"):
        messages.append(Warning(
            "E-mail goes to the console in production.",
            hint="Set EMAIL_BACKEND to django.core.mail.backends.smtp.EmailBackend.",
            id="guichet.W001",
        ))
    if settings.PRODUCTION and settings.SMS_PROVIDER == "console":
        messages.append(Warning(
            "SMS go to a log file in production.",
            hint="Set SMS_PROVIDER=twilio and its credentials.",
            id="guichet.W002",
        ))
    return messages
