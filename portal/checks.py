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


def harfbuzz_subsetting() -> bool:
    """Whether WeasyPrint subsets fonts with HarfBuzz (fast) rather than fontTools (slow)."""
    from weasyprint.text import ffi

    return ffi.harfbuzz_subset is not None and bool(ffi.harfbuzz.hb_version_atleast(4, 1, 0))


@register()
def check_pdf_fonts(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    # Without libharfbuzz-subset0 WeasyPrint silently falls back to fontTools and
    # every invoice PDF takes about three times as long.
    if harfbuzz_subsetting():
        return []
    return [Warning(
        "WeasyPrint cannot use HarfBuzz to subset fonts; PDFs render about 3× slower.",
        hint="Install HarfBuzz subset ≥ 4.1 (Debian: apt-get install libharfbuzz-subset0).",
        id="guichet.W003",
    )]
