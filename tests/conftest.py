"""Shared fixtures: the personas every test speaks of.

alice   owner of customer "Popescu household"
bob     manager of the same customer (a colleague)
viola   viewer of the same customer (may look, not change)
charlie owner of another customer: the outsider
staff   one user per staff role, each with TOTP turned on
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import TOTP
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client

from portal.models import Customer, CustomerKind, Membership, MembershipRole, Representative, User
from portal.roles import Role

TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    # allauth's rate limits and TOTP replay guard live in the cache (Redis).
    cache.clear()
    yield


def make_user(email: str, *, password: str = "correct-horse-battery", **extra: object) -> User:
    user = User.objects.create_user(email=email, password=password, **extra)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def make_customer(number: str, **extra: object) -> Customer:
    fields: dict[str, object] = {
        "number": number,
        "kind": CustomerKind.PERSON,
        "first_name": "Ana",
        "last_name": "Popescu",
        "street": "Str. Lalelelor 5",
        "postal_code": "010101",
        "city": "București",
        "country": "RO",
        "email": "ana@example.com",
        "mobile": "+40721000111",
    }
    fields.update(extra)
    return Customer.objects.create(**fields)


@pytest.fixture
def customer(db: None) -> Customer:
    return make_customer("C0100001")


@pytest.fixture
def other_customer(db: None) -> Customer:
    return make_customer(
        "C0200002",
        kind=CustomerKind.COMPANY,
        company_name="Kowalski Sp. z o.o.",
        first_name="",
        last_name="",
        country="PL",
        city="Kraków",
        email="biuro@kowalski.pl",
        mobile="+48600100200",
    )


def member(user: User, customer: Customer, role: str) -> Membership:
    rep = Representative.objects.create(
        customer=customer,
        first_name=user.first_name or "Rep",
        last_name=user.last_name or "User",
        email=user.email,
        user=user,
    )
    return Membership.objects.create(user=user, customer=customer, role=role, representative=rep)


@pytest.fixture
def alice(customer: Customer) -> User:
    user = make_user("alice@example.com", first_name="Alice", last_name="Popescu")
    member(user, customer, MembershipRole.OWNER)
    return user


@pytest.fixture
def bob(customer: Customer) -> User:
    user = make_user("bob@example.com", first_name="Bob", last_name="Popescu")
    member(user, customer, MembershipRole.MANAGER)
    return user


@pytest.fixture
def viola(customer: Customer) -> User:
    user = make_user("viola@example.com", first_name="Viola", last_name="Popescu")
    member(user, customer, MembershipRole.VIEWER)
    return user


@pytest.fixture
def charlie(other_customer: Customer) -> User:
    user = make_user("charlie@example.com", first_name="Charlie", last_name="Kowalski")
    member(user, other_customer, MembershipRole.OWNER)
    return user


@pytest.fixture
def make_staff(db: None) -> Callable[[Role], User]:
    def factory(role: Role) -> User:
        user = make_user(
            f"{role.value}@staff.example.com", first_name=role.label, last_name="Staff"
        )
        user.groups.add(Group.objects.get(name=role.value))
        TOTP.activate(user, TOTP_SECRET)
        return user

    return factory


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def client_for() -> Callable[[User], Client]:
    return login
