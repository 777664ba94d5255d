"""Production settings: safe or refusing to start, and the health endpoint.

Most tests start `manage.py` in a subprocess with a production environment,
the way the containers start it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.test import Client, override_settings

ROOT = Path(__file__).resolve().parents[2]
HOST = "portal.example.com"
SECRET = "k3J9-pQ7xV2mZ8rT4wY6bN1cF5hL0sD3gA9eU7iO2yR4tW8qE6zX1vB5nM3jK7pH"

# Every variable portal/settings.py reads through its env* helpers.
SETTINGS_VARIABLES = sorted(set(re.findall(
    r"env(?:str|bool|int|list)\(\s*\"([A-Z][A-Z0-9_]*)\"",
    (ROOT / "portal" / "settings.py").read_text(),
)))


def production_env(**overrides: str | None) -> dict[str, str]:
    """The environment of a production container; an override of None unsets."""
    # Nothing else from this test run leaks in (e.g. DJANGO_ALLOW_ASYNC_UNSAFE,
    # which browser tests set and check --deploy rightly rejects).
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update({
        "GUICHET_ENV": "production",
        "DEBUG": "false",
        "SECRET_KEY": SECRET,
        "ALLOWED_HOSTS": HOST,
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "SMS_PROVIDER": "twilio",
        "SMS_TWILIO_ACCOUNT_SID": "AC00000000000000000000000000000000",
        "SMS_TWILIO_AUTH_TOKEN": "dummy-token",
        # The embedded servers this test run already uses.
        "DATABASE_URL": settings.DATABASE_URL,
        "REDIS_URL": settings.REDIS_URL,
    })
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def manage(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=dict(env), capture_output=True,
        text=True, timeout=300, check=False,
    )


# --- Deployment checks ----------------------------------------------------------


def test_it_passes_the_deployment_checks_in_production() -> None:
    result = manage("check", "--deploy", env=production_env())

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output
    assert "W0" not in output
    assert "no issues" in output


@pytest.mark.parametrize(("overrides", "check_id"), [
    ({"SMS_PROVIDER": "console"}, "guichet.W002"),
    ({"SECURE_HSTS_SECONDS": "0"}, "security.W004"),
])
def test_it_warns_about_a_weakened_production_setting(overrides: dict[str, str],
                                                      check_id: str) -> None:
    result = manage("check", "--deploy", env=production_env(**overrides))

    assert check_id in result.stdout + result.stderr


@pytest.mark.parametrize(("overrides", "named"), [
    ({"DEBUG": "true"}, "DEBUG"),
    ({"SECRET_KEY": None}, "SECRET_KEY"),
    ({"SECRET_KEY": "dev-only-insecure-secret-key-change-me"}, "SECRET_KEY"),
    ({"SECRET_KEY": "too-short-to-be-a-real-secret"}, "SECRET_KEY"),
    ({"ALLOWED_HOSTS": None}, "ALLOWED_HOSTS"),
    ({"ALLOWED_HOSTS": " , "}, "ALLOWED_HOSTS"),
    ({"DATABASE_URL": None}, "DATABASE_URL"),
    ({"REDIS_URL": None}, "REDIS_URL"),
])
def test_it_refuses_to_start_in_production_with_an_unsafe_setting(
    overrides: dict[str, str | None], named: str
) -> None:
    result = manage("check", env=production_env(**overrides))

    assert result.returncode != 0
    assert "Refusing to start in production" in result.stderr
    assert named in result.stderr


@pytest.mark.parametrize(("environment", "overrides", "message"), [
    ("production", {"DEBUG": "maybe"}, "DEBUG must be a boolean"),
    ("development", {"DEBUG": "maybe"}, "DEBUG must be a boolean"),
    ("production", {"EMAIL_USE_TLS": "yes please"}, "EMAIL_USE_TLS must be a boolean"),
    ("production", {"SESSION_IDLE_MINUTES": "half an hour"},
     "SESSION_IDLE_MINUTES must be an integer"),
    ("prod", {}, "GUICHET_ENV must be production, development or test"),
])
def test_it_names_the_variable_with_a_bad_value(environment: str, overrides: dict[str, str],
                                                message: str) -> None:
    result = manage("check", env=production_env(GUICHET_ENV=environment, **overrides))

    assert result.returncode != 0
    assert message in result.stderr


def test_it_documents_every_setting_in_the_env_example() -> None:
    example = (ROOT / "deploy" / "env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))

    assert len(SETTINGS_VARIABLES) > 30  # the pattern still finds them
    assert [name for name in SETTINGS_VARIABLES if name not in documented] == []


# --- The production image ---------------------------------------------------------


@pytest.fixture(scope="module")
def collected_static(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """collectstatic as the Dockerfile runs it: throwaway values, no server reachable."""
    static_root = tmp_path_factory.mktemp("staticfiles")
    result = manage("collectstatic", "--no-input", "-v", "0", env=production_env(
        SECRET_KEY="build-only-not-a-secret-build-only-not-a-secret-build-only",
        ALLOWED_HOSTS="build.invalid",
        DATABASE_URL="postgres://build:build@build.invalid:5432/build",
        REDIS_URL="redis://build.invalid:6379/0",
        STATIC_ROOT=str(static_root),
    ))
    assert result.returncode == 0, result.stderr
    return static_root


def test_it_collects_static_files_without_a_database_or_redis(collected_static: Path) -> None:
    manifest = json.loads((collected_static / "staticfiles.json").read_text())

    assert "css/guichet.css" in manifest["paths"]
    assert "vendor/htmx.min.js" in manifest["paths"]
    hashed = manifest["paths"]["css/guichet.css"]
    assert (collected_static / hashed).exists()
    assert (collected_static / (hashed + ".gz")).exists()


# Runs inside `manage.py shell` with production settings; prints what a
# browser behind the TLS proxy would see.
PROBE = """
import json
from django.conf import settings
from django.test import Client

client = Client()
https = {"HTTP_HOST": "portal.example.com", "HTTP_X_FORWARDED_PROTO": "https"}
page = client.get("/accounts/login/", **https)
plain = client.get("/accounts/login/", HTTP_HOST="portal.example.com")
health = client.get("/health/", HTTP_HOST="portal.example.com")
other_host = client.get("/health/", HTTP_HOST="evil.example.net")
csrf = page.cookies[settings.CSRF_COOKIE_NAME]
print(json.dumps({
    "page": [page.status_code, dict(page.headers)],
    "plain": [plain.status_code, plain.headers.get("Location"),
              plain.headers.get("Strict-Transport-Security")],
    "health": [health.status_code, health.content.decode()],
    "other_host": other_host.status_code,
    "csrf_cookie": [csrf.key, bool(csrf["secure"]), csrf["path"], csrf["domain"],
                    csrf["samesite"]],
    "session_cookie": [settings.SESSION_COOKIE_NAME, settings.SESSION_COOKIE_SECURE,
                       settings.SESSION_COOKIE_HTTPONLY, settings.SESSION_COOKIE_SAMESITE],
}))
"""


def test_it_serves_production_pages_with_security_headers(collected_static: Path) -> None:
    result = manage("shell", "-v", "0", "-c", PROBE,
                    env=production_env(STATIC_ROOT=str(collected_static)))
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])

    status, headers = seen["page"]
    assert status == 200
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert headers["Strict-Transport-Security"] == (
        "max-age=31536000; includeSubDomains; preload"
    )
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"

    # Plain HTTP is sent to HTTPS, without HSTS; the health check is exempt.
    assert seen["plain"] == [301, f"https://{HOST}/accounts/login/", None]
    assert seen["health"] == [200, "ok"]
    assert seen["other_host"] == 400

    assert seen["csrf_cookie"] == ["__Host-csrftoken", True, "/", "", "Lax"]
    assert seen["session_cookie"] == ["__Host-sessionid", True, True, "Lax"]


# --- Health endpoint ------------------------------------------------------------------


@pytest.mark.django_db
def test_it_reports_healthy_when_database_and_redis_answer(client: Client) -> None:
    response = client.get("/health/")

    assert response.status_code == 200
    assert response.content == b"ok"
    assert "no-cache" in response["Cache-Control"]
    assert client.head("/health/").status_code == 200


@pytest.mark.django_db
def test_it_reports_unavailable_when_the_database_does_not_answer(client: Client) -> None:
    with mock.patch.object(connection, "cursor", side_effect=OperationalError("server closed")):
        response = client.get("/health/")

    assert response.status_code == 503
    assert response.content == b"unavailable: database"


@pytest.mark.django_db
def test_it_reports_unavailable_when_redis_does_not_answer(client: Client) -> None:
    dead_redis = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                              "LOCATION": "redis://127.0.0.1:1/0"}}
    with override_settings(CACHES=dead_redis):
        response = client.get("/health/")

    assert response.status_code == 503
    assert response.content == b"unavailable: redis"


@pytest.mark.django_db
def test_it_answers_only_safe_methods(client: Client) -> None:
    assert client.post("/health/").status_code == 405
