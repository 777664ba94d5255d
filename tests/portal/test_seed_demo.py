"""The demo data commands: seed_demo and demo_totp."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP
from allauth.mfa.utils import decrypt
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from portal.management.commands.seed_demo import (
    ADMIN_EMAIL,
    DEMO_PASSWORD,
    DEMO_TOTP_SECRET,
    STAFF,
)
from portal.models import AuditEvent, Customer, Membership, MembershipRole, Representative, User
from portal.roles import Role

pytestmark = pytest.mark.django_db

STAFF_EMAILS = [ADMIN_EMAIL, *(f"{role.value}@guichet.example" for role in Role)]


def seed(*args: str, **options: Any) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out, **options)
    return out.getvalue()


def totp_code(email: str) -> str:
    out = StringIO()
    call_command("demo_totp", email, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (
            User,
            Customer,
            Representative,
            Membership,
            Authenticator,
            EmailAddress,
            AuditEvent,
        )
    }


def test_it_creates_nothing_new_when_run_twice() -> None:
    seed()
    first = counts()
    seed()

    assert counts() == first
    assert first["Customer"] >= 8
    assert first["User"] == len(STAFF_EMAILS) + Membership.objects.values("user").distinct().count()


def test_it_creates_staff_for_every_role_and_an_operator_superuser() -> None:
    seed()

    admin = User.objects.get(email=ADMIN_EMAIL)
    assert admin.is_staff and admin.is_superuser
    assert list(admin.groups.values_list("name", flat=True)) == [Role.ADMINISTRATOR.value]
    for role in Role:
        user = User.objects.get(email=f"{role.value}@guichet.example")
        assert list(user.groups.values_list("name", flat=True)) == [role.value]
        assert (user.first_name, user.last_name) == STAFF[role][:2]
        assert not user.is_superuser


def test_it_gives_staff_totp_with_the_demo_secret_and_recovery_codes() -> None:
    seed()

    for email in STAFF_EMAILS:
        kinds = dict(Authenticator.objects.filter(user__email=email).values_list("type", "data"))
        assert decrypt(kinds[Authenticator.Type.TOTP]["secret"]) == DEMO_TOTP_SECRET, email
        assert Authenticator.Type.RECOVERY_CODES in kinds, email
    customer_users = User.objects.filter(memberships__isnull=False)
    assert not Authenticator.objects.filter(user__in=customer_users).exists()


def test_it_creates_valid_customers_of_four_countries_with_mixed_settings() -> None:
    seed()

    customers = list(Customer.objects.all())
    for customer in customers:
        customer.full_clean()  # tax ids, VAT ids and required names hold
        assert customer.representatives.exists(), customer
    assert {c.country for c in customers} == {"RO", "PL", "IT", "SK"}
    assert {c.language for c in customers} >= {"ro", "pl", "it", "sk"}
    assert {c.kind for c in customers} == {"person", "company"}
    assert {c.consent_ebilling for c in customers} == {True, False}
    assert {c.consent_electronic_delivery for c in customers} == {True, False}
    assert all(c.vat_id for c in customers if c.kind == "company")


def test_it_gives_some_representatives_portal_logins_of_every_role() -> None:
    seed()

    assert set(Membership.objects.values_list("role", flat=True)) == set(MembershipRole.values)
    assert Representative.objects.filter(user=None).exists()
    for membership in Membership.objects.select_related("representative", "user"):
        assert membership.representative is not None
        assert membership.representative.user == membership.user
    # One person represents two customers, so switching between them can be tried.
    elena = User.objects.get(email="elena.ionescu@example.com")
    assert elena.memberships.count() == 2
    for user in User.objects.all():
        assert user.check_password(DEMO_PASSWORD), user.email
        address = EmailAddress.objects.get(user=user)
        assert (address.email, address.verified, address.primary) == (user.email, True, True)


def test_it_prints_every_login_with_password_role_and_totp_hint(settings: Any) -> None:
    settings.SITE_URL = "https://demo.guichet.example"

    output = seed()

    rows = {
        line.split()[1]: line.split()
        for line in output.splitlines()
        if "@" in line and len(line.split()) > 3
    }
    for email in STAFF_EMAILS:
        url, _email, password, *_role, secret = rows[email]
        assert (password, secret) == (DEMO_PASSWORD, DEMO_TOTP_SECRET)
    assert rows["billing@guichet.example"][0] == "https://demo.guichet.example/office/"
    assert rows["courier@guichet.example"][0] == "https://demo.guichet.example/courier/"
    assert "python manage.py demo_totp <email>" in output
    url, _email, password, *role = rows["elena.ionescu@example.com"]
    assert (url, password) == ("https://demo.guichet.example/", DEMO_PASSWORD)
    assert " ".join(role) == "owner of Elena Ionescu, owner of Brutăria Moldova SRL"
    assert " ".join(rows["zuzana.nagyova@example.com"][3:]) == "viewer of Tatra Stav s.r.o."
    # A second run prints the same logins.
    assert seed() == output


def test_it_lets_a_customer_sign_in_with_the_printed_password() -> None:
    seed()
    client = Client()

    response = client.post(
        "/accounts/login/", {"login": "tomasz.kowalczyk@example.com", "password": DEMO_PASSWORD}
    )

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(
        User.objects.get(email="tomasz.kowalczyk@example.com").pk
    )


def test_it_lets_staff_sign_in_with_the_code_demo_totp_prints() -> None:
    seed()
    client = Client()

    response = client.post(
        "/accounts/login/", {"login": "billing@guichet.example", "password": DEMO_PASSWORD}
    )
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session  # the second factor is still missing
    response = client.post(response["Location"], {"code": totp_code("billing@guichet.example")})

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(
        User.objects.get(email="billing@guichet.example").pk
    )


def test_it_prints_a_code_the_authenticator_accepts() -> None:
    seed()
    user = User.objects.get(email="collections@guichet.example")

    code = totp_code("Collections@guichet.example")

    assert len(code) == 6 and code.isdigit()
    authenticator = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP)
    assert TOTP(authenticator).validate_code(code)


def test_demo_totp_refuses_in_production(settings: Any) -> None:
    seed()
    settings.PRODUCTION = True

    with pytest.raises(CommandError, match="does not run in production"):
        totp_code("billing@guichet.example")


def test_demo_totp_refuses_a_user_with_their_own_secret() -> None:
    seed()
    user = User.objects.get(email="billing@guichet.example")
    Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).delete()
    TOTP.activate(user, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")

    with pytest.raises(CommandError, match="uses their own authenticator"):
        totp_code("billing@guichet.example")
    with pytest.raises(CommandError, match="has no authenticator"):
        totp_code("elena.ionescu@example.com")
    with pytest.raises(CommandError, match="No user"):
        totp_code("nobody@guichet.example")


def test_it_refuses_to_seed_production_unless_forced(settings: Any) -> None:
    settings.PRODUCTION = True

    with pytest.raises(CommandError, match="Refusing to load demo data into production"):
        seed()
    assert not User.objects.exists()

    seed("--force")
    assert User.objects.filter(email=ADMIN_EMAIL).exists()


def test_it_adds_generated_customers_that_search_finds() -> None:
    seed()
    before = set(Customer.objects.values_list("pk", flat=True))

    output = seed("--customers", "500")

    generated = list(Customer.objects.exclude(pk__in=before))
    assert len(generated) == 500
    assert "Created 500 generated customers in" in output
    assert {c.country for c in generated} == {"RO", "PL", "IT", "SK"}
    for customer in generated:
        assert customer.number.startswith("C") and len(customer.number) == 8
        assert customer.search_text == customer.build_search_text()
        customer.full_clean()  # the tax ids' check digits hold
        assert list(Customer.objects.search(customer.number)) == [customer]
    person = next(c for c in generated if c.kind == "person" and c.mobile)
    assert person in Customer.objects.search(f"{person.last_name[:4]} {person.city}")
    assert person in Customer.objects.search(person.mobile)
    # A second batch continues the numbering.
    seed("--customers", "3")
    assert Customer.objects.count() == len(before) + 503
