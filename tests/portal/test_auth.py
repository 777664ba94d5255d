from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from portal.models import User
from portal.roles import Role
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def test_it_logs_in_by_email_and_lands_on_the_portal(alice: User) -> None:
    client = Client()
    response = client.post(
        "/accounts/login/", {"login": "alice@example.com", "password": "correct-horse-battery"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_it_sends_staff_to_the_office_after_login(make_staff: Callable[[Role], User]) -> None:
    staff = make_staff(Role.BILLING)
    client = Client()
    response = client.post(
        "/accounts/login/", {"login": staff.email, "password": "correct-horse-battery"}
    )
    # Staff have TOTP: the login stops at the code step.
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/2fa/authenticate")


def test_it_makes_staff_without_mfa_set_it_up_first(db: None) -> None:
    from django.contrib.auth.models import Group

    staff = make_user("new.staff@example.com")
    staff.groups.add(Group.objects.get(name=Role.BILLING.value))
    client = Client()
    client.post("/accounts/login/", {"login": staff.email, "password": "correct-horse-battery"})
    response = client.get("/office/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/2fa/totp/activate/"
    assert client.get("/").status_code == 302
    # allauth asks for the password again before MFA can be set up.
    response = client.get("/accounts/2fa/totp/activate/")
    assert response["Location"].startswith("/accounts/reauthenticate/")
    client.post(response["Location"], {"password": "correct-horse-battery"})
    assert client.get("/accounts/2fa/totp/activate/").status_code == 200


def test_it_does_not_ask_customers_for_mfa(
    alice: User, client_for: Callable[[User], Client]
) -> None:
    assert client_for(alice).get("/").status_code == 200


def test_it_refuses_self_signup(db: None) -> None:
    response = Client().post(
        "/accounts/signup/",
        {
            "email": "mallory@example.com",
            "password1": "x-Very-long-pass-1",
            "password2": "x-Very-long-pass-1",
        },
    )
    assert not User.objects.filter(email="mallory@example.com").exists()
    assert response.status_code == 200


def test_it_rate_limits_failed_logins(alice: User) -> None:
    client = Client()
    for _ in range(5):
        response = client.post("/accounts/login/", {"login": alice.email, "password": "wrong"})
        assert b"Too many failed login attempts" not in response.content
    response = client.post("/accounts/login/", {"login": alice.email, "password": "wrong"})
    assert b"Too many failed login attempts" in response.content
    # Even the right password is refused while the limit holds.
    response = client.post(
        "/accounts/login/", {"login": alice.email, "password": "correct-horse-battery"}
    )
    assert b"Too many failed login attempts" in response.content
    assert "_auth_user_id" not in client.session


def test_it_ends_idle_sessions(alice: User, client_for: Callable[[User], Client]) -> None:
    client = client_for(alice)
    assert client.get("/").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(minutes=25)):
        assert client.get("/").status_code == 200  # activity renews the session
    with time_machine.travel(timezone.now() + timedelta(minutes=25 + 31)):
        response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_protects_the_admin_with_the_same_login(
    alice: User, client_for: Callable[[User], Client]
) -> None:
    response = Client().get("/admin/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"] or "/admin/login/" in response["Location"]
    response = Client().get("/admin/login/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_serves_the_courier_pages_to_couriers_only(
    alice: User, make_staff: Callable[[Role], User], client_for: Callable[[User], Client]
) -> None:
    assert Client().get("/courier/login/").status_code == 200
    anonymous = Client().get("/courier/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/courier/login/")
    courier = make_staff(Role.COURIER)
    response = client_for(courier).get("/courier/")
    assert response.status_code == 200
    assert b"reading round" in response.content
    assert client_for(make_staff(Role.BILLING)).get("/courier/").status_code == 403
    assert client_for(alice).get("/courier/").status_code == 404


def test_it_keeps_couriers_out_of_the_office(
    make_staff: Callable[[Role], User], client_for: Callable[[User], Client]
) -> None:
    courier = make_staff(Role.COURIER)
    assert client_for(courier).get("/office/").status_code == 403


def test_it_sends_security_headers(alice: User, client_for: Callable[[User], Client]) -> None:
    response = client_for(alice).get("/")
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_it_sends_password_reset_mail_through_the_outbox(
    alice: User, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    from django.core import mail

    from notifications.models import OutboxMessage, Status

    with django_capture_on_commit_callbacks(execute=True):
        response = Client().post("/accounts/password/reset/", {"email": alice.email})
    assert response.status_code == 302
    message = OutboxMessage.objects.get(kind="password_reset_key")
    assert message.to == alice.email
    assert message.status == Status.SENT
    assert "/accounts/password/reset/key/" in message.body_text
    assert [m.to for m in mail.outbox] == [[alice.email]]


def test_it_checks_a_staff_members_mfa_once_per_session(
    make_staff: Callable[[Role], User], client_for: Callable[[User], Client]
) -> None:
    from allauth.mfa.models import Authenticator
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    staff = make_staff(Role.BILLING)
    client = client_for(staff)

    def authenticator_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/office/").status_code == 200
        return sum('"mfa_authenticator"' in q["sql"] for q in ctx.captured_queries)

    assert authenticator_queries() == 1
    assert authenticator_queries() == 0
    assert authenticator_queries() == 0

    # Turning TOTP off (allauth's own page) makes the next request ask again, and send
    # the staff member back to setting it up.
    totp = Authenticator.objects.get(user=staff, type=Authenticator.Type.TOTP)
    # allauth asks for the password again first.
    response = client.post("/accounts/2fa/totp/deactivate/")
    assert response["Location"].startswith("/accounts/reauthenticate/")
    client.post(response["Location"], {"password": "correct-horse-battery"})
    client.post("/accounts/2fa/totp/deactivate/")
    assert not Authenticator.objects.filter(pk=totp.pk).exists()
    response = client.get("/office/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/2fa/totp/activate/"
