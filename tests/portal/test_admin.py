"""The Django admin: superusers with MFA only; history stays read-only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from notifications.models import Channel, OutboxMessage, Status
from portal.models import (
    ActivationCode,
    AuditEvent,
    ChangeRequest,
    ChangeRequestStatus,
    Customer,
    Membership,
    MembershipRole,
    Representative,
    Task,
    User,
)
from portal.roles import Role

pytestmark = pytest.mark.django_db

PART1_HASH = "pbkdf2_sha256$part1-secret-hash-value"
PART2_HASH = "pbkdf2_sha256$part2-secret-hash-value"


@pytest.fixture
def admin_user(make_staff: Callable[[Role], User]) -> User:
    user = make_staff(Role.ADMINISTRATOR)
    user.is_staff = True
    user.is_superuser = True
    user.save(update_fields=["is_staff", "is_superuser"])
    return user


@pytest.fixture
def admin_client(admin_user: User, client_for: Callable[[User], Client]) -> Client:
    return client_for(admin_user)


@dataclass
class Records:
    user: User
    customer: Customer
    representative: Representative
    membership: Membership
    task: Task
    changerequest: ChangeRequest
    auditevent: AuditEvent
    activationcode: ActivationCode
    outboxmessage: OutboxMessage


@pytest.fixture
def records(alice: User, admin_user: User, customer: Customer) -> Records:
    """One row of every model the admin shows."""
    membership = Membership.objects.select_related("representative").get(user=alice)
    assert membership.representative is not None
    task = Task.objects.create(subject="Check the new address", customer=customer,
                               team=Group.objects.get(name=Role.CUSTOMER_SERVICE.value))
    change = ChangeRequest.objects.create(
        customer=customer, requested_by=alice, before={"city": "București"},
        after={"city": "Cluj-Napoca"},
    )
    event = AuditEvent.objects.create(actor=alice, customer=customer, action="customer.update",
                                      object_type="portal.Customer", object_id=str(customer.pk))
    code = ActivationCode.objects.create(
        lookup="AB12CD34", part1_hash=PART1_HASH, part2_hash=PART2_HASH, user=alice,
        customer=customer, representative=membership.representative,
        role=MembershipRole.OWNER, created_by=admin_user,
        expires_at=timezone.now() + timedelta(days=30),
    )
    message = OutboxMessage.objects.create(channel=Channel.EMAIL, kind="activation",
                                           to="alice@example.com", subject="Welcome",
                                           body_text="Hello", status=Status.FAILED)
    return Records(
        user=alice, customer=customer, representative=membership.representative,
        membership=membership, task=task, changerequest=change, auditevent=event,
        activationcode=code, outboxmessage=message,
    )


MODELS = [
    ("portal", "user"), ("portal", "customer"), ("portal", "representative"),
    ("portal", "membership"), ("portal", "task"), ("portal", "changerequest"),
    ("portal", "auditevent"), ("portal", "activationcode"), ("notifications", "outboxmessage"),
]


@pytest.mark.parametrize(("app", "model"), MODELS)
def test_it_shows_each_model_to_a_superuser(admin_client: Client, records: Records,
                                            app: str, model: str) -> None:
    obj = getattr(records, model)
    listing = admin_client.get(reverse(f"admin:{app}_{model}_changelist"))
    assert listing.status_code == 200
    assert listing.context["cl"].result_count >= 1

    page = admin_client.get(reverse(f"admin:{app}_{model}_change", args=[obj.pk]))
    assert page.status_code == 200


def test_it_sends_anonymous_visitors_to_the_allauth_login(client: Client) -> None:
    response = client.get("/admin/", follow=True)

    final_url, _status = response.redirect_chain[-1]
    assert final_url.startswith("/accounts/login/")
    assert response.status_code == 200


def test_it_refuses_a_customer(alice: User, client_for: Callable[[User], Client]) -> None:
    response = client_for(alice).get("/admin/", follow=True)

    assert response.status_code == 403


def test_it_refuses_office_staff_who_are_not_admin_users(
    make_staff: Callable[[Role], User], client_for: Callable[[User], Client]
) -> None:
    clerk = make_staff(Role.CUSTOMER_SERVICE)

    response = client_for(clerk).get("/admin/portal/customer/", follow=True)

    assert response.status_code == 403


def test_it_sends_a_superuser_without_mfa_to_set_it_up(
    client_for: Callable[[User], Client],
) -> None:
    root = User.objects.create_superuser(email="root@example.com", password="x" * 12)

    response = client_for(root).get("/admin/")

    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_activate_totp")


def test_it_never_shows_activation_secrets(admin_client: Client,
                                           records: Records) -> None:
    code = records.activationcode
    pages = [
        admin_client.get(reverse("admin:portal_activationcode_changelist")),
        admin_client.get(reverse("admin:portal_activationcode_change", args=[code.pk])),
    ]

    for page in pages:
        assert b"AB12CD34" in page.content
        assert b"secret-hash-value" not in page.content
        assert b"part1_hash" not in page.content


def test_it_keeps_audit_events_read_only(admin_client: Client,
                                         records: Records) -> None:
    event = records.auditevent
    url = reverse("admin:portal_auditevent_change", args=[event.pk])

    assert admin_client.get(reverse("admin:portal_auditevent_add")).status_code == 403
    assert admin_client.post(url, {"action": "forged"}).status_code == 403
    delete_url = reverse("admin:portal_auditevent_delete", args=[event.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert event.action == "customer.update"


def test_it_keeps_the_outbox_read_only(admin_client: Client,
                                       records: Records) -> None:
    message = records.outboxmessage
    url = reverse("admin:notifications_outboxmessage_change", args=[message.pk])

    assert admin_client.post(url, {"status": "sent"}).status_code == 403
    message.refresh_from_db()
    assert message.status == Status.FAILED


def test_it_filters_the_outbox_by_status(admin_client: Client,
                                         records: Records) -> None:
    OutboxMessage.objects.create(channel=Channel.SMS, kind="reminder", to="+40721000111",
                                 body_text="Hi", status=Status.SENT)
    url = reverse("admin:notifications_outboxmessage_changelist")

    failed = admin_client.get(url, {"status__exact": "failed"})

    assert [m.kind for m in failed.context["cl"].result_list] == ["activation"]


def test_it_does_not_let_the_admin_decide_a_change_request(
    admin_client: Client, records: Records
) -> None:
    change = records.changerequest
    url = reverse("admin:portal_changerequest_change", args=[change.pk])

    page = admin_client.get(url)
    response = admin_client.post(url, {"comment": "Seen by the admin", "status": "approved",
                                       "reason": "forged", "decided_by": "1"})

    assert "Cluj-Napoca" in page.content.decode()
    assert response.status_code == 302
    change.refresh_from_db()
    assert change.comment == "Seen by the admin"
    assert change.status == ChangeRequestStatus.PENDING
    assert change.decided_by is None
    assert admin_client.get(reverse("admin:portal_changerequest_add")).status_code == 403


def test_it_finds_customers_by_phone_and_name(admin_client: Client, customer: Customer,
                                              other_customer: Customer) -> None:
    url = reverse("admin:portal_customer_changelist")

    by_phone = admin_client.get(url, {"q": "0721 000 111"})
    by_name = admin_client.get(url, {"q": "kowal"})

    assert list(by_phone.context["cl"].result_list) == [customer]
    assert list(by_name.context["cl"].result_list) == [other_customer]


def test_it_creates_a_user_by_e_mail(admin_client: Client) -> None:
    response = admin_client.post(reverse("admin:portal_user_add"), {
        "email": "New.Clerk@Example.com", "usable_password": "true",
        "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase",
    })

    assert response.status_code == 302
    user = User.objects.get(email="new.clerk@example.com")
    assert user.check_password("a-long-pass-phrase")
    assert not user.is_staff


def test_it_refuses_a_second_user_with_the_same_e_mail(admin_client: Client,
                                                       alice: User) -> None:
    response = admin_client.post(reverse("admin:portal_user_add"), {
        "email": "ALICE@example.com", "usable_password": "true",
        "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase",
    })

    assert response.status_code == 200
    assert "already exists" in str(response.context["adminform"].form.errors["email"])
    assert User.objects.filter(email__iexact="alice@example.com").count() == 1


def test_it_lists_representatives_with_their_customer(admin_client: Client,
                                                      records: Records) -> None:
    response = admin_client.get(reverse("admin:portal_representative_changelist"))

    rows = list(response.context["cl"].result_list)
    assert [(r.full_name, r.customer.number) for r in rows] == [("Alice Popescu", "C0100001")]
