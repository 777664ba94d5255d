"""Real servers on loopback for the outbox tests.

smtp_server   an aiosmtpd SMTP server; Django's SMTP backend is pointed at it
sms_api       a stdlib HTTP server that speaks the part of Twilio's Messages API we use
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

TEMPLATES_DIR = Path(__file__).parent / "templates"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _test_templates(settings: Any) -> None:
    # queue_email renders <template>_subject.txt/.txt/.html: the tests bring their own.
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [*settings.TEMPLATES[0]["DIRS"], TEMPLATES_DIR]}
    ]


@pytest.fixture(autouse=True)
def _media_root(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@dataclass
class SmtpServer:
    host: str
    port: int
    received: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    # Recipients the server answers "550" for.
    refuse: set[str] = field(default_factory=set)


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self,
        smtp: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.server.refuse:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, smtp: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.server.received.append(parsed)
        self.server.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 2.0.0 Accepted"


def point_django_at(settings: Any, port: int) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "Guichet <no-reply@guichet.example>"


@pytest.fixture
def smtp_server(settings: Any) -> Iterator[SmtpServer]:
    server = SmtpServer(host="127.0.0.1", port=free_port())
    controller = Controller(_Handler(server), hostname=server.host, port=server.port)
    controller.start()
    point_django_at(settings, server.port)
    try:
        yield server
    finally:
        controller.stop()


@dataclass
class SmsApi:
    """What the fake provider received, and what it answers next."""

    base_url: str
    account_sid: str = "AC0123456789abcdef"
    auth_token: str = "demo-token"
    requests: list[dict[str, Any]] = field(default_factory=list)
    # (HTTP status, JSON body) answered to each valid request, in turn; the last one repeats.
    answers: list[tuple[int, dict[str, Any]]] = field(
        default_factory=lambda: [(201, {"sid": "SM123", "status": "queued"})]
    )


def _sms_handler(api: SmsApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            expected_auth = (
                "Basic " + base64.b64encode(f"{api.account_sid}:{api.auth_token}".encode()).decode()
            )
            api.requests.append(
                {
                    "path": self.path,
                    "form": form,
                    "authorization": self.headers.get("Authorization"),
                }
            )
            if self.headers.get("Authorization") != expected_auth:
                return self._answer(401, {"code": 20003, "message": "Authenticate"})
            if self.path != f"/2010-04-01/Accounts/{api.account_sid}/Messages.json":
                return self._answer(404, {"code": 20404, "message": "Not found"})
            missing = [name for name in ("To", "From", "Body") if not form.get(name)]
            if missing:
                return self._answer(400, {"code": 21604, "message": f"Missing {missing}"})
            status, body = api.answers.pop(0) if len(api.answers) > 1 else api.answers[0]
            return self._answer(status, body)

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


@pytest.fixture
def sms_api(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmsApi]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    api = SmsApi(base_url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _sms_handler(api))
    api.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    settings.SMS_PROVIDER = "twilio"
    settings.SMS_FROM = "+40700000000"
    settings.SMS_TWILIO_ACCOUNT_SID = api.account_sid
    settings.SMS_TWILIO_AUTH_TOKEN = api.auth_token
    settings.SMS_TWILIO_BASE_URL = api.base_url
    try:
        yield api
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
