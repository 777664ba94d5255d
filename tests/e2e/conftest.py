"""Browser tests: Playwright driving Debian's chromium against live_server."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from allauth.mfa.totp.internal.auth import (
    format_hotp_value,
    hotp_value,
    yield_hotp_counters_from_time,
)
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--disable-quic",
        ],
    }


@pytest.fixture(autouse=True)
def _site_url(settings: Any, live_server: Any) -> None:
    # Links in e-mails point at the server the browser talks to.
    settings.SITE_URL = live_server.url


# --- Content Security Policy ------------------------------------------------------


class CspViolations(list[str]):
    """Console messages about the Content Security Policy, from every watched context."""

    def watch(self, context: BrowserContext) -> BrowserContext:
        context.on("console", self._collect)
        return context

    def _collect(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.append(f"{message.page.url if message.page else '?'}: {message.text}")


@pytest.fixture(autouse=True)
def csp_violations(context: BrowserContext) -> Iterator[CspViolations]:
    """Fails the test when a page it visited broke the CSP (inline script, style="")."""
    violations = CspViolations()
    violations.watch(context)
    yield violations
    if violations:
        pytest.fail("Content Security Policy violations:\n" + "\n".join(violations),
                    pytrace=False)


@pytest.fixture
def new_page(browser: Browser, browser_context_args: dict[str, Any],
             csp_violations: CspViolations) -> Iterator[Callable[..., Page]]:
    """Pages in further contexts (another person at another computer), CSP-watched too."""
    contexts: list[BrowserContext] = []

    def factory(**kwargs: Any) -> Page:
        context = csp_violations.watch(browser.new_context(**{**browser_context_args, **kwargs}))
        contexts.append(context)
        return context.new_page()

    yield factory
    for context in contexts:
        context.close()


# --- Logging in -------------------------------------------------------------------


def totp_now(secret: str) -> str:
    """The authenticator code, still valid when the browser's request arrives.

    The server accepts only the current 30-second step (MFA_TOTP_TOLERANCE is 0):
    near the end of a step, wait for the next one rather than race the clock.
    """
    from allauth.mfa import app_settings

    left = app_settings.TOTP_PERIOD - time.time() % app_settings.TOTP_PERIOD
    if left < 3:
        time.sleep(left + 0.1)
    counters = list(yield_hotp_counters_from_time())
    return format_hotp_value(hotp_value(secret, counters[len(counters) // 2]))


def log_in(page: Page, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label(re.compile("e-?mail", re.I)).fill(email)
    page.get_by_label(re.compile("password", re.I)).fill(password)
    page.get_by_role("button", name=re.compile("sign in|log in", re.I)).click()


def log_in_staff(page: Page, base: str, email: str) -> None:
    """E-mail and password, then the authenticator code (staff always have TOTP on)."""
    from tests.conftest import TOTP_SECRET

    log_in(page, base, email)
    page.get_by_label(re.compile("code", re.I)).fill(totp_now(TOTP_SECRET))
    page.get_by_role("button", name=re.compile("sign in|log in", re.I)).click()
    expect(page).to_have_url(f"{base}/office/")
