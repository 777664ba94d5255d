"""Two-part activation (S4): the office grants access, the letter carries part 1,
the e-mail part 2, and whoever holds both sets a password and is logged in."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from allauth.account.models import EmailAddress
from django.contrib.auth.models import AnonymousUser
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import formats, timezone, translation

from notifications.models import OutboxMessage
from portal import activation
from portal.documents import RefusedURL, StaticOnlyFetcher, render_pdf, static_path
from portal.models import (
    ActivationCode,
    AuditEvent,
    Customer,
    Membership,
    MembershipRole,
    Representative,
    User,
)
from portal.roles import Role
from portal.services import ServiceError

pytestmark = pytest.mark.django_db

PASSWORD = "lalele-in-aprilie-42"

Grant = tuple[ActivationCode, str, str]


@pytest.fixture(autouse=True)
def _letters_in_tmp(settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def agent(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.CUSTOMER_SERVICE)


@pytest.fixture
def dana(customer: Customer) -> Representative:
    return Representative.objects.create(
        customer=customer, first_name="Dana", last_name="Ionescu", email="Dana@Example.com",
    )


@pytest.fixture
def granted(dana: Representative, agent: User) -> Grant:
    return activation.grant_portal_access(
        representative=dana, role=MembershipRole.MANAGER, granted_by=agent
    )


def post_activation(client: Client, letter_code: str, email_code: str,
                    password: str = PASSWORD, password2: str | None = None) -> Any:
    return client.post(reverse("activate"), {
        "letter_code": letter_code, "email_code": email_code,
        "password1": password, "password2": password if password2 is None else password2,
    })


def logged_in_user_id(client: Client) -> str | None:
    return client.session.get("_auth_user_id")


def wrong(code: str) -> str:
    """The same code with its last character changed."""
    last = code[-1]
    return code[:-1] + ("A" if last != "A" else "B")


def pdf_text(pdf: bytes) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    result = subprocess.run(
        ["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True, timeout=30
    )
    return result.stdout.decode()


# --- The whole flow -------------------------------------------------------------


def test_it_grants_access_and_activates_through_the_pages(
    agent: User, dana: Representative, customer: Customer, client_for: Callable[[User], Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    returned: list[Grant] = []
    real_grant = activation.grant_portal_access

    def spy(**kwargs: Any) -> Grant:
        returned.append(real_grant(**kwargs))
        return returned[-1]

    monkeypatch.setattr(activation, "grant_portal_access", spy)
    office = client_for(agent)
    response = office.post(reverse("office:grant-access", args=[customer.public_id]),
                           {"representative": dana.public_id, "role": "manager"})
    assert response.status_code == 302
    code, letter_code, email_code = returned[0]

    message = OutboxMessage.objects.about(customer).get(kind="activation")
    assert message.to == "dana@example.com"
    assert email_code in message.body_text and email_code in message.body_html
    assert letter_code not in message.body_text
    assert "/accounts/activate/" in message.body_text
    user = User.objects.get(email="dana@example.com")
    assert not user.is_active and not user.has_usable_password()
    assert not Membership.objects.filter(user=user).exists()

    visitor = Client()
    assert visitor.get(reverse("activate")).status_code == 200
    # Typed the way people type: lower case, spaces instead of dashes.
    response = post_activation(visitor, letter_code.lower().replace("-", " "),
                               f" {email_code.lower()} ")
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:home")
    assert logged_in_user_id(visitor) == str(user.pk)

    user.refresh_from_db()
    assert user.is_active and user.check_password(PASSWORD)
    membership = Membership.objects.get(user=user, customer=customer)
    assert membership.role == MembershipRole.MANAGER
    assert membership.representative == dana
    assert EmailAddress.objects.get(user=user).verified
    code.refresh_from_db()
    assert code.used_at is not None
    home = visitor.get(reverse("portal:home"), follow=True)
    assert "two-factor authentication" in home.content.decode()
    assert list(AuditEvent.objects.filter(object_id=str(code.pk)).values_list(
        "action", flat=True).order_by("id")) == [
        "activation.granted", "activation.letter_rendered", "activation.email_queued",
        "activation.activated",
    ]


def test_it_prints_part_1_in_the_letter_the_office_downloads(
    granted: Grant, agent: User, client_for: Callable[[User], Client]
) -> None:
    code, letter_code, email_code = granted
    response = client_for(agent).get(reverse("office:activation-letter", args=[code.public_id]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert "no-store" in response["Cache-Control"]
    pdf = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf)
    assert letter_code in text
    assert email_code not in text
    assert "Dana Ionescu" in text and "Str. Lalelelor 5" in text and "Guichet Utilities" in text


def test_it_writes_the_letter_and_email_in_the_customers_language(
    dana: Representative, agent: User, customer: Customer, settings: Any
) -> None:
    customer.language = "ro"
    customer.save(update_fields=["language"])
    code, _letter_code, _email_code = activation.grant_portal_access(
        representative=dana, role=MembershipRole.VIEWER, granted_by=agent
    )
    assert code.user.language == "ro"
    with translation.override("ro"):
        valid_until = formats.date_format(
            timezone.localtime(code.expires_at, ZoneInfo(settings.OPERATOR_TIME_ZONE)).date()
        )
    assert valid_until != code.expires_at.strftime("%b. %-d, %Y")  # Romanian month names
    assert valid_until in " ".join(pdf_text(code.letter.read()).split())
    assert valid_until in OutboxMessage.objects.about(customer).get().body_text


# --- Wrong, expired, used, locked, revoked --------------------------------------


def test_it_refuses_a_wrong_letter_code_and_counts_the_try(granted: Grant) -> None:
    code, letter_code, email_code = granted
    client = Client()
    response = post_activation(client, wrong(letter_code), email_code)
    assert response.status_code == 200
    assert "These codes are not valid" in response.content.decode()
    assert "4 tries are left" in response.content.decode()
    assert logged_in_user_id(client) is None
    code.refresh_from_db()
    assert code.failed_attempts == 1 and code.used_at is None
    assert AuditEvent.objects.filter(action="activation.wrong_try", object_id=str(code.pk)).exists()
    assert not Membership.objects.filter(user=code.user).exists()


def test_it_refuses_a_wrong_email_code(granted: Grant) -> None:
    code, letter_code, email_code = granted
    response = post_activation(Client(), letter_code, wrong(email_code))
    assert "These codes are not valid" in response.content.decode()
    code.refresh_from_db()
    assert code.failed_attempts == 1
    assert not code.user.is_active


def test_it_answers_an_unknown_code_generically_without_counting(granted: Grant) -> None:
    code, letter_code, email_code = granted
    unknown = ("2222" if not letter_code.startswith("2222") else "3333") + letter_code[4:]
    response = post_activation(Client(), unknown, email_code)
    body = response.content.decode()
    assert "These codes are not valid" in body and "tries are left" not in body
    code.refresh_from_db()
    assert code.failed_attempts == 0


def test_it_explains_a_malformed_code_next_to_the_field(granted: Grant) -> None:
    _code, letter_code, email_code = granted
    response = post_activation(Client(), letter_code[:-2], "O0O0-1111")
    body = response.content.decode()
    assert "This code has 12 characters" in body
    assert "never 0, 1, I, L or O" in body


def test_it_asks_for_every_field_of_an_empty_form() -> None:
    response = Client().post(reverse("activate"), {})
    assert response.status_code == 200
    assert response.content.decode().count("This field is required") == 4


def test_it_keeps_the_typed_codes_but_not_the_passwords(granted: Grant) -> None:
    _code, letter_code, email_code = granted
    response = post_activation(Client(), letter_code, email_code, password2="something-else-9")
    body = response.content.decode()
    assert "The two passwords differ" in body
    assert f'value="{letter_code}"' in body and f'value="{email_code}"' in body
    assert PASSWORD not in body


def test_it_applies_the_password_rules_without_using_the_codes(granted: Grant) -> None:
    code, letter_code, email_code = granted
    response = post_activation(Client(), letter_code, email_code, password="dana@example.com")
    assert "too similar" in response.content.decode()
    response = post_activation(Client(), letter_code, email_code, password="short")
    assert "too short" in response.content.decode()
    code.refresh_from_db()
    assert code.used_at is None and code.failed_attempts == 0


def test_it_refuses_expired_codes(granted: Grant) -> None:
    code, letter_code, email_code = granted
    with time_machine.travel(timezone.now() + timedelta(days=31), tick=False):
        client = Client()
        response = post_activation(client, letter_code, email_code)
    assert "These codes expired on" in response.content.decode()
    assert logged_in_user_id(client) is None
    code.refresh_from_db()
    assert code.used_at is None


def test_it_accepts_codes_on_their_last_valid_day(granted: Grant) -> None:
    _code, letter_code, email_code = granted
    with time_machine.travel(timezone.now() + timedelta(days=29), tick=False):
        response = post_activation(Client(), letter_code, email_code)
    assert response.status_code == 302


def test_it_refuses_codes_used_once(granted: Grant) -> None:
    _code, letter_code, email_code = granted
    assert post_activation(Client(), letter_code, email_code).status_code == 302
    client = Client()
    response = post_activation(client, letter_code, email_code, password="another-pass-word-7")
    assert "These codes were already used" in response.content.decode()
    assert logged_in_user_id(client) is None
    user = User.objects.get(email="dana@example.com")
    assert user.check_password(PASSWORD)


def test_it_locks_the_codes_after_too_many_wrong_tries(granted: Grant, settings: Any) -> None:
    code, letter_code, email_code = granted
    client = Client()
    for _ in range(settings.ACTIVATION_MAX_ATTEMPTS - 1):
        post_activation(client, wrong(letter_code), email_code)
    response = post_activation(client, letter_code, wrong(email_code))
    assert "locked after too many wrong tries" in response.content.decode()
    assert "contact customer service" in response.content.decode()
    code.refresh_from_db()
    assert code.locked_at is not None
    assert code.failed_attempts == settings.ACTIVATION_MAX_ATTEMPTS
    locked = AuditEvent.objects.filter(action="activation.locked", object_id=str(code.pk))
    assert locked.count() == 1

    response = post_activation(client, letter_code, email_code)
    assert "locked after too many wrong tries" in response.content.decode()
    assert logged_in_user_id(client) is None
    assert not Membership.objects.filter(user=code.user).exists()
    code.refresh_from_db()
    assert code.failed_attempts == settings.ACTIVATION_MAX_ATTEMPTS


def test_it_refuses_revoked_codes(
    granted: Grant, agent: User, client_for: Callable[[User], Client], customer: Customer
) -> None:
    code, letter_code, email_code = granted
    office = client_for(agent)
    assert office.get(reverse("office:activation-revoke", args=[code.public_id])).status_code == 405
    response = office.post(reverse("office:activation-revoke", args=[code.public_id]))
    assert response.status_code == 302
    assert response["Location"] == reverse("office:grant-access", args=[customer.public_id])
    code.refresh_from_db()
    assert code.revoked_at is not None
    assert AuditEvent.objects.filter(action="activation.revoked", object_id=str(code.pk)).exists()

    response = post_activation(Client(), letter_code, email_code)
    assert "These codes were withdrawn" in response.content.decode()


def test_it_answers_a_revoke_from_htmx_with_the_code_list(
    granted: Grant, agent: User, client_for: Callable[[User], Client]
) -> None:
    code, _letter_code, _email_code = granted
    response = client_for(agent).post(
        reverse("office:activation-revoke", args=[code.public_id]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="activation-codes"' in body and "revoked" in body and "<html" not in body


def test_it_refuses_to_revoke_used_codes(
    granted: Grant, agent: User, client_for: Callable[[User], Client]
) -> None:
    code, letter_code, email_code = granted
    post_activation(Client(), letter_code, email_code)
    response = client_for(agent).post(
        reverse("office:activation-revoke", args=[code.public_id]), follow=True
    )
    assert "already used" in response.content.decode()
    code.refresh_from_db()
    assert code.revoked_at is None


def test_it_revokes_the_earlier_letter_when_granting_again(
    granted: Grant, dana: Representative, agent: User
) -> None:
    first, first_letter, first_email = granted
    second, _letter, _email = activation.grant_portal_access(
        representative=dana, role=MembershipRole.OWNER, granted_by=agent
    )
    first.refresh_from_db()
    assert first.revoked_at is not None and second.revoked_at is None
    assert second.user == first.user
    response = post_activation(Client(), first_letter, first_email)
    assert "These codes were withdrawn" in response.content.decode()


def test_it_answers_429_with_a_message_when_rate_limited(granted: Grant, settings: Any) -> None:
    # A small limit keeps the test quick (the real one is in ACCOUNT_RATE_LIMITS).
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "activate": "3/m/ip"}
    _code, letter_code, email_code = granted
    client = Client()
    unknown = ("2222" if not letter_code.startswith("2222") else "3333") + letter_code[4:]
    for _ in range(3):
        assert post_activation(client, unknown, email_code).status_code == 200
    response = post_activation(client, letter_code, email_code)
    assert response.status_code == 429
    body = response.content.decode()
    assert "Too many attempts" in body and f'value="{letter_code}"' in body
    assert logged_in_user_id(client) is None


# --- Storage of secrets ---------------------------------------------------------


def test_it_does_not_store_the_codes_in_clear(granted: Grant) -> None:
    code, letter_code, email_code = granted
    row = " ".join(str(value) for value in ActivationCode.objects.filter(pk=code.pk).values()
                   .get().values())
    letter_secret = letter_code.replace("-", "")[4:]
    for secret in (letter_code, letter_code.replace("-", ""), letter_secret,
                   email_code, email_code.replace("-", "")):
        assert secret not in row
    assert code.lookup == letter_code[:4]


# --- Granting from the office ---------------------------------------------------


def test_it_reuses_the_account_of_a_known_address(
    customer: Customer, charlie: User, agent: User
) -> None:
    rep = Representative.objects.create(customer=customer, first_name="Charlie",
                                        last_name="Kowalski", email="CHARLIE@example.com")
    code, letter_code, email_code = activation.grant_portal_access(
        representative=rep, role=MembershipRole.VIEWER, granted_by=agent
    )
    assert code.user == charlie
    charlie.refresh_from_db()
    assert charlie.is_active  # an existing account keeps working meanwhile
    client = Client()
    assert post_activation(client, letter_code, email_code).status_code == 302
    assert set(Membership.objects.filter(user=charlie).values_list("customer__number", "role")) == {
        ("C0200002", "owner"), ("C0100001", "viewer")}


def test_it_refuses_a_representative_who_already_has_access(
    customer: Customer, alice: User, agent: User
) -> None:
    rep = Representative.objects.get(user=alice)
    with pytest.raises(ServiceError):
        activation.grant_portal_access(representative=rep, role="owner", granted_by=agent)
    assert not ActivationCode.objects.exists()


def test_it_explains_a_representative_without_email_on_the_form(
    customer: Customer, agent: User, client_for: Callable[[User], Client]
) -> None:
    rep = Representative.objects.create(customer=customer, first_name="Ion", last_name="Pop")
    response = client_for(agent).post(
        reverse("office:grant-access", args=[customer.public_id]),
        {"representative": rep.public_id, "role": "owner"},
    )
    assert response.status_code == 200
    assert "Ion Pop has no e-mail address" in response.content.decode()
    assert not ActivationCode.objects.exists()
    assert not OutboxMessage.objects.exists()


def test_it_answers_a_grant_from_htmx_with_the_panel(
    dana: Representative, agent: User, customer: Customer, client_for: Callable[[User], Client]
) -> None:
    response = client_for(agent).post(
        reverse("office:grant-access", args=[customer.public_id]),
        {"representative": dana.public_id, "role": "owner"}, HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="grant-panel"' in body and "<html" not in body
    assert "Access granted to Dana Ionescu" in body
    assert ActivationCode.objects.get().role == MembershipRole.OWNER


def test_it_lists_the_customers_activation_codes(
    granted: Grant, agent: User, client_for: Callable[[User], Client], customer: Customer,
    django_assert_num_queries: Any,
) -> None:
    code, letter_code, _email_code = granted
    other = Representative.objects.create(customer=customer, first_name="Radu", last_name="Pop",
                                          email="radu@example.com")
    activation.grant_portal_access(representative=other, role="viewer", granted_by=agent)
    office = client_for(agent)
    url = reverse("office:grant-access", args=[customer.public_id])
    office.get(url)  # warm the session and content-type caches
    # 1 session, 2 user, 3 role groups (the MFA check is remembered in the session),
    # 4-5 user and group permissions, 6 customer, 7 representatives for the select,
    # 8 codes with representative and granting staff, 9-11 session save in a
    # savepoint (SESSION_SAVE_EVERY_REQUEST).
    with django_assert_num_queries(11):
        response = office.get(url)
    body = response.content.decode()
    assert "Dana Ionescu" in body and "Radu Pop" in body
    assert reverse("office:activation-letter", args=[code.public_id]) in body
    assert letter_code not in body


# --- Who may use the office URLs ------------------------------------------------


@pytest.mark.parametrize("name", ["grant-access", "activation-letter", "activation-revoke"])
def test_it_hides_the_office_urls_from_customers(
    name: str, granted: Grant, alice: User, customer: Customer,
    client_for: Callable[[User], Client],
) -> None:
    code = granted[0]
    arg = customer.public_id if name == "grant-access" else code.public_id
    client = client_for(alice)
    assert client.get(reverse(f"office:{name}", args=[arg])).status_code == 404
    assert client.post(reverse(f"office:{name}", args=[arg])).status_code == 404
    code.refresh_from_db()
    assert code.revoked_at is None


@pytest.mark.parametrize("name", ["grant-access", "activation-letter", "activation-revoke"])
def test_it_forbids_the_office_urls_to_staff_without_the_permission(
    name: str, granted: Grant, customer: Customer, make_staff: Callable[[Role], User],
    client_for: Callable[[User], Client],
) -> None:
    code = granted[0]
    arg = customer.public_id if name == "grant-access" else code.public_id
    client = client_for(make_staff(Role.BILLING))
    assert client.get(reverse(f"office:{name}", args=[arg])).status_code == 403
    assert client.post(reverse(f"office:{name}", args=[arg])).status_code == 403
    code.refresh_from_db()
    assert code.revoked_at is None


def test_it_sends_anonymous_visitors_of_office_urls_to_login(granted: Grant) -> None:
    response = Client().get(reverse("office:activation-letter", args=[granted[0].public_id]))
    assert response.status_code == 302
    assert reverse("account_login") in response["Location"]


# --- Documents: only our own static files ---------------------------------------


@pytest.mark.parametrize("url", [
    "https://evil.example/steal.css",
    "http://169.254.169.254/latest/meta-data/",
    "file:///etc/passwd",
    "ftp://example.com/x.css",
    "/static/../../etc/passwd",
    "/media/activation-letters/x.pdf",
    "/static/css/no-such-file.css",
])
def test_it_refuses_urls_that_are_not_our_static_files(url: str) -> None:
    with pytest.raises(RefusedURL):
        StaticOnlyFetcher().fetch(url)


def test_it_serves_our_static_files_to_documents(settings: Any) -> None:
    assert static_path("/static/css/letter.css").name == "letter.css"
    response = StaticOnlyFetcher().fetch(f"{settings.SITE_URL}/static/css/letter.css")
    assert response.content_type == "text/css"
    assert b"@page" in response.read()


def test_it_renders_a_document_without_fetching_outside_resources(
    tmp_path: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched: list[str] = []
    real_fetch = StaticOnlyFetcher.fetch

    def spy(self: StaticOnlyFetcher, url: str, headers: Any = None) -> Any:
        fetched.append(url)
        return real_fetch(self, url, headers)

    monkeypatch.setattr(StaticOnlyFetcher, "fetch", spy)
    (tmp_path / "doc.html").write_text(
        '<link rel="stylesheet" href="/static/css/letter.css">'
        '<img src="file:///etc/hostname"><img src="https://example.com/x.png"><p>Hello</p>'
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    pdf = render_pdf("doc.html", {})
    assert pdf.startswith(b"%PDF")
    assert fetched == [f"{settings.SITE_URL}/static/css/letter.css", "file:///etc/hostname",
                       "https://example.com/x.png"]


def test_it_records_wrong_tries_of_a_signed_in_visitor(granted: Grant, alice: User) -> None:
    code, letter_code, email_code = granted
    request = RequestFactory().post("/accounts/activate/")
    request.user = alice
    with pytest.raises(activation.ActivationError):
        activation.activate_account(letter_code=wrong(letter_code), email_code=email_code,
                                    password=PASSWORD, request=request)
    event = AuditEvent.objects.get(action="activation.wrong_try")
    assert event.actor == alice and event.ip_address == "127.0.0.1"
    request.user = AnonymousUser()
    with pytest.raises(activation.ActivationError):
        activation.activate_account(letter_code=wrong(letter_code), email_code=email_code,
                                    password=PASSWORD, request=request)
    assert AuditEvent.objects.filter(action="activation.wrong_try", actor=None).count() == 1
