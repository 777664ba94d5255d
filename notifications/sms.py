"""SMS providers: a small interface, a console/file provider for development
and an HTTP adapter for Twilio's Messages API."""

from __future__ import annotations

import logging
from typing import Protocol

import httpx
from django.conf import settings
from django.utils import timezone

log = logging.getLogger(__name__)


class SmsError(Exception):
    """The provider refused or could not be reached; ``permanent`` ones are not retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class SmsProvider(Protocol):
    def send(self, *, to: str, text: str, reference: str) -> str:
        """Send one SMS; return the provider's message id."""


class ConsoleSmsProvider:
    """Writes each SMS to the log and appends it to SMS_LOG_FILE."""

    def send(self, *, to: str, text: str, reference: str) -> str:
        line = f"{timezone.now().isoformat()}\t{reference}\t{to}\t{text}\n"
        settings.SMS_LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
        with settings.SMS_LOG_FILE.open("a", encoding="utf-8") as fh:
            fh.write(line)
        log.info("SMS to %s: %s", to, text)
        return f"console-{reference}"


class TwilioSmsProvider:
    """POST /2010-04-01/Accounts/{sid}/Messages.json with basic auth."""

    def __init__(self, *, account_sid: str, auth_token: str, sender: str, base_url: str) -> None:
        if not account_sid or not auth_token:
            raise SmsError(
                "SMS_TWILIO_ACCOUNT_SID and SMS_TWILIO_AUTH_TOKEN must be set", permanent=True
            )
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.sender = sender
        self.base_url = base_url.rstrip("/")

    def send(self, *, to: str, text: str, reference: str) -> str:
        url = f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        try:
            response = httpx.post(
                url,
                data={"To": to, "From": self.sender, "Body": text},
                auth=(self.account_sid, self.auth_token),
                timeout=15,
            )
        except httpx.HTTPError as exc:
            raise SmsError(f"SMS provider unreachable: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise SmsError(f"SMS provider busy: HTTP {response.status_code}")
        if response.status_code >= 400:
            try:
                detail = response.json().get("message", response.text)
            except ValueError:
                detail = response.text
            raise SmsError(f"SMS refused: HTTP {response.status_code} {detail}", permanent=True)
        try:
            return str(response.json()["sid"])
        except (ValueError, KeyError) as exc:
            raise SmsError("SMS provider answered without a message id", permanent=True) from exc


def get_provider() -> SmsProvider:
    name = settings.SMS_PROVIDER
    if name == "console":
        return ConsoleSmsProvider()
    if name == "twilio":
        return TwilioSmsProvider(
            account_sid=settings.SMS_TWILIO_ACCOUNT_SID,
            auth_token=settings.SMS_TWILIO_AUTH_TOKEN,
            sender=settings.SMS_FROM,
            base_url=settings.SMS_TWILIO_BASE_URL,
        )
    raise SmsError(f"Unknown SMS_PROVIDER {name!r}", permanent=True)
