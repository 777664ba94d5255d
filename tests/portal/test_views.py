"""Customer portal pages at /: dashboard, account, contact, billing change,
representatives, switching customers and the user's own settings."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse

from notifications.models import OutboxMessage
from portal import services
from portal.models import (
    AuditEvent,
    ChangeRequest,
    ChangeRequestStatus,
    Customer,
    Membership,
    MembershipRole,
    Representative,
    Task,
    TaskKind,
    User,
)
from portal.roles import Role
from tests.conftest import make_customer, make_user

pytestmark = pytest.mark.django_db

ClientFor = Callable[[User], Client]

BILLING_POST = {
    "kind": "person",
    "first_name": "Ana",
    "last_name": "Popescu",
    "company_name": "",
    "tax_id": "",
    "vat_id": "",
    "street": "Str. Lalelelor 5",
    "postal_code": "010101",
    "city": "București",
    "country": "RO",
    "comment": "",
}
CONTACT_POST = {
    "email": "ana@example.com",
    "mobile": "+40721000111",
    "language": "en",
}


def email_token(customer: Customer, email: str, actor: User) -> str:
    return signing.dumps(
        {"c": customer.pk, "e": email, "u": actor.pk},
        salt=services.EMAIL_CHANGE_SALT,
        compress=True,
    )


def customer_rep(customer: Customer, **extra: str) -> Representative:
    fields = {"first_name": "Radu", "last_name": "Ionescu", "function": "Accountant"}
    fields.update(extra)
    return Representative.objects.create(customer=customer, **fields)


@pytest.fixture(params=["alice", "bob"])
def editor(request: pytest.FixtureRequest) -> User:
    """An owner (alice) or a manager (bob): both may change the account."""
    return request.getfixturevalue(request.param)


# --- Who may open what ----------------------------------------------------------

ALL_URLS = [
    ("portal:home", []),
    ("portal:switch", []),
    ("portal:no-customer", []),
    ("portal:account", []),
    ("portal:contact-update", []),
    ("portal:contact-email-confirm", ["some-token"]),
    ("portal:billing-change", []),
    ("portal:representatives", []),
    ("portal:representative-create", []),
    ("portal:representative-edit", [uuid.uuid4()]),
    ("portal:profile", []),
]


@pytest.mark.parametrize(("name", "args"), ALL_URLS)
def test_it_sends_anonymous_visitors_to_login(client: Client, name: str, args: list) -> None:
    for method in (client.get, client.post):
        response = method(reverse(name, args=args))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))


CHANGE_VIEWS = [
    ("portal:contact-update", False),
    ("portal:contact-email-confirm", True),
    ("portal:billing-change", False),
    ("portal:representative-create", False),
    ("portal:representative-edit", True),
]


@pytest.mark.parametrize(("name", "needs_arg"), CHANGE_VIEWS)
def test_it_forbids_viewers_the_change_views(
    viola: User,
    alice: User,
    customer: Customer,
    client_for: ClientFor,
    name: str,
    needs_arg: bool,
) -> None:
    args: list = []
    if name == "portal:contact-email-confirm":
        args = [email_token(customer, "new@example.com", alice)]
    elif needs_arg:
        args = [customer_rep(customer).public_id]
    client = client_for(viola)
    assert client.get(reverse(name, args=args)).status_code == 403
    assert (
        client.post(
            reverse(name, args=args), {**BILLING_POST, **CONTACT_POST, "mobile": "+40799999999"}
        ).status_code
        == 403
    )
    customer.refresh_from_db()
    assert customer.mobile == "+40721000111"
    assert customer.email == "ana@example.com"
    assert not ChangeRequest.objects.exists()


def test_it_shows_viewers_the_account_without_forms(viola: User, client_for: ClientFor) -> None:
    response = client_for(viola).get(reverse("portal:account"))
    assert response.status_code == 200
    assert response.context["contact_form"] is None
    assert reverse("portal:contact-update").encode() not in response.content
    assert reverse("portal:billing-change").encode() not in response.content


def test_it_shows_viewers_representatives_without_edit_links(
    viola: User, customer: Customer, client_for: ClientFor
) -> None:
    rep = customer_rep(customer)
    response = client_for(viola).get(reverse("portal:representatives"))
    assert response.status_code == 200
    assert b"Radu Ionescu" in response.content
    assert reverse("portal:representative-edit", args=[rep.public_id]).encode() not in (
        response.content
    )
    assert reverse("portal:representative-create").encode() not in response.content


def test_it_answers_404_for_another_customers_representative(
    charlie: User, customer: Customer, client_for: ClientFor
) -> None:
    rep = customer_rep(customer)
    url = reverse("portal:representative-edit", args=[rep.public_id])
    client = client_for(charlie)
    assert client.get(url).status_code == 404
    response = client.post(url, {"first_name": "Hacked", "last_name": "X"})
    assert response.status_code == 404
    rep.refresh_from_db()
    assert rep.first_name == "Radu"


def test_it_answers_404_for_an_email_token_of_another_customer(
    charlie: User, alice: User, customer: Customer, client_for: ClientFor
) -> None:
    url = reverse(
        "portal:contact-email-confirm", args=[email_token(customer, "evil@example.com", alice)]
    )
    client = client_for(charlie)
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    customer.refresh_from_db()
    assert customer.email == "ana@example.com"


def test_it_answers_404_when_switching_to_a_customer_not_represented(
    charlie: User, customer: Customer, other_customer: Customer, client_for: ClientFor
) -> None:
    client = client_for(charlie)
    response = client.post(reverse("portal:switch"), {"customer": str(customer.public_id)})
    assert response.status_code == 404
    assert client.post(reverse("portal:switch"), {"customer": "nonsense"}).status_code == 404
    # Still acting for his own customer.
    assert client.get(reverse("portal:home")).context["customer"] == other_customer


@pytest.mark.parametrize(
    "name",
    ["portal:home", "portal:account", "portal:representatives", "portal:switch", "portal:profile"],
)
def test_it_shows_the_outsider_only_his_own_data(
    charlie: User, alice: User, customer: Customer, client_for: ClientFor, name: str
) -> None:
    customer_rep(customer, first_name="Secretname")
    ChangeRequest.objects.create(
        customer=customer,
        requested_by=alice,
        before={"city": "București"},
        after={"city": "Secretcity"},
    )
    response = client_for(charlie).get(reverse(name))
    assert response.status_code == 200
    content = response.content.decode()
    assert "C0200002" in content or "Charlie" in content or "charlie@" in content
    for leaked in ("C0100001", "Popescu", "Secretname", "Secretcity", "alice@"):
        assert leaked not in content, leaked


# --- Dashboard, no customer, switching ------------------------------------------


def test_it_greets_and_summarises_the_customer(
    alice: User, customer: Customer, client_for: ClientFor
) -> None:
    response = client_for(alice).get(reverse("portal:home"))
    content = response.content.decode()
    assert "Hello, Alice" in content
    assert customer.number in content
    assert "Ana Popescu" in content
    assert "Str. Lalelelor 5" in content
    assert "ana@example.com" in content
    assert "No change was requested." in content


def test_it_shows_a_pending_change_request_on_the_dashboard(
    alice: User, customer: Customer, client_for: ClientFor
) -> None:
    services.submit_change_request(
        customer=customer, requested_by=alice, changes={"city": "Cluj-Napoca"}
    )
    response = client_for(alice).get(reverse("portal:home"))
    assert "Waiting for approval" in response.content.decode()
    assert response.context["pending_change"] is not None


def test_it_explains_a_login_without_customer(client_for: ClientFor, db: None) -> None:
    lonely = make_user("lonely@example.com")
    client = client_for(lonely)
    response = client.get(reverse("portal:home"))
    assert response["Location"] == reverse("portal:no-customer")
    response = client.get(reverse("portal:no-customer"))
    assert response.status_code == 200
    assert "customer service" in response.content.decode()
    # Security settings do not depend on representing a customer.
    assert client.get(reverse("portal:profile")).status_code == 200


def test_it_sends_a_user_with_a_customer_away_from_the_no_customer_page(
    alice: User, client_for: ClientFor
) -> None:
    response = client_for(alice).get(reverse("portal:no-customer"))
    assert response["Location"] == reverse("portal:home")


def test_it_switches_between_represented_customers(
    alice: User, customer: Customer, client_for: ClientFor
) -> None:
    second = make_customer("C0300003", first_name="Ion", last_name="Vasile")
    Membership.objects.create(user=alice, customer=second, role=MembershipRole.VIEWER)
    client = client_for(alice)

    response = client.get(reverse("portal:switch"))
    content = response.content.decode()
    assert "C0100001" in content and "C0300003" in content
    assert "Owner" in content and "Viewer" in content

    response = client.post(reverse("portal:switch"), {"customer": str(second.public_id)})
    assert response["Location"] == reverse("portal:home")
    response = client.get(reverse("portal:home"))
    assert response.context["customer"] == second
    # As a viewer of the second customer, the change views are closed.
    assert client.get(reverse("portal:billing-change")).status_code == 403


# --- Account, contact details ---------------------------------------------------


def test_it_shows_the_account_with_representatives_and_history(
    alice: User, customer: Customer, client_for: ClientFor
) -> None:
    customer_rep(customer)
    ChangeRequest.objects.create(
        customer=customer,
        requested_by=alice,
        before={"city": "București"},
        after={"city": "Iași"},
        status=ChangeRequestStatus.REJECTED,
        reason="Proof of address missing",
    )
    response = client_for(alice).get(reverse("portal:account"))
    content = response.content.decode()
    assert "Radu Ionescu" in content
    assert "Iași" in content
    assert "Rejected" in content
    assert "Proof of address missing" in content
    assert 'class="stack"' in content


def test_it_applies_a_phone_change_at_once_with_audit(
    editor: User, customer: Customer, client_for: ClientFor
) -> None:
    response = client_for(editor).post(
        reverse("portal:contact-update"), {**CONTACT_POST, "mobile": "0722 333 444"}
    )
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.mobile == "0722333444"
    event = AuditEvent.objects.get(action="customer.contact_updated")
    assert event.actor == editor
    assert event.customer == customer
    assert event.before == {"mobile": "+40721000111"}
    assert event.after == {"mobile": "0722333444"}


def test_it_applies_consents_and_language_at_once(
    alice: User, customer: Customer, client_for: ClientFor
) -> None:
    client_for(alice).post(
        reverse("portal:contact-update"),
        {
            **CONTACT_POST,
            "consent_ebilling": "on",
            "consent_electronic_delivery": "on",
            "language": "ro",
        },
    )
    customer.refresh_from_db()
    assert customer.consent_ebilling
    assert customer.consent_electronic_delivery
    assert customer.language == "ro"


def test_it_keeps_a_bad_phone_number_with_an_error(
    alice: User, customer: Customer, client_for: ClientFor
) -> None:
    response = client_for(alice).post(
        reverse("portal:contact-update"), {**CONTACT_POST, "mobile": "12ab"}
    )
    assert response.status_code == 200
    assert "mobile" in response.context["contact_form"].errors
    assert 'value="12ab"' in response.content.decode()
    customer.refresh_from_db()
    assert customer.mobile == "+40721000111"
    assert not AuditEvent.objects.exists()


def test_it_refuses_ebilling_without_an_email(
    alice: User, customer: Customer, client_for: ClientFor
) -> None:
    response = client_for(alice).post(
        reverse("portal:contact-update"), {**CONTACT_POST, "email": "", "consent_ebilling": "on"}
    )
    assert "consent_ebilling" in response.context["contact_form"].errors
    customer.refresh_from_db()
    assert customer.email == "ana@example.com"
    assert not customer.consent_ebilling


def test_it_answers_htmx_with_the_contact_fragment(
    alice: User, customer: Customer, client_for: ClientFor
) -> None:
    response = client_for(alice).post(
        reverse("portal:contact-update"),
        {**CONTACT_POST, "mobile": "+40722333444"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    content = response.content.decode()
    assert "<html" not in content
    assert 'id="contact"' in content
    assert "Your contact details were saved." in content
    assert "+40722333444" in content


def test_it_answers_htmx_with_errors_in_the_fragment(alice: User, client_for: ClientFor) -> None:
    response = client_for(alice).post(
        reverse("portal:contact-update"),
        {**CONTACT_POST, "mobile": "1"},
        headers={"HX-Request": "true"},
    )
    content = response.content.decode()
    assert "<html" not in content
    assert "Enter a mobile number" in content


def test_it_refuses_get_on_the_contact_update(alice: User, client_for: ClientFor) -> None:
    assert client_for(alice).get(reverse("portal:contact-update")).status_code == 405


def test_it_changes_the_email_only_after_the_link_is_followed(
    editor: User, customer: Customer, client_for: ClientFor
) -> None:
    client = client_for(editor)
    response = client.post(
        reverse("portal:contact-update"), {**CONTACT_POST, "email": "new@example.com"}
    )
    assert response.status_code == 302

    message = OutboxMessage.objects.get(kind="contact_email_verification")
    assert message.to == "new@example.com"
    assert customer.number in message.subject
    customer.refresh_from_db()
    assert customer.email == "ana@example.com"

    path = message.body_text.split("http://localhost:8000", 1)[1].split()[0]
    assert path.startswith("/account/email/")
    response = client.get(path)
    assert response.status_code == 200
    assert "new@example.com" in response.content.decode()
    customer.refresh_from_db()
    assert customer.email == "ana@example.com"  # GET only asks

    response = client.post(path)
    assert response["Location"] == reverse("portal:account")
    customer.refresh_from_db()
    assert customer.email == "new@example.com"
    event = AuditEvent.objects.get(action="customer.email_changed")
    assert event.before == {"email": "ana@example.com"}
    assert event.after == {"email": "new@example.com"}


def test_it_rejects_a_tampered_email_token(
    alice: User, customer: Customer, client_for: ClientFor
) -> None:
    token = email_token(customer, "new@example.com", alice)
    url = reverse("portal:contact-email-confirm", args=[token[:-2] + "xx"])
    response = client_for(alice).post(url)
    assert response.status_code == 400
    customer.refresh_from_db()
    assert customer.email == "ana@example.com"


# --- Billing data change --------------------------------------------------------


def test_it_prefills_the_billing_change_form(alice: User, client_for: ClientFor) -> None:
    response = client_for(alice).get(reverse("portal:billing-change"))
    assert response.status_code == 200
    assert 'value="Str. Lalelelor 5"' in response.content.decode()


def test_it_submits_a_billing_change_for_verification(
    editor: User, customer: Customer, client_for: ClientFor
) -> None:
    response = client_for(editor).post(
        reverse("portal:billing-change"),
        {
            **BILLING_POST,
            "street": "Bd. Unirii 1",
            "tax_id": "1800101221144",
            "comment": "We moved",
        },
    )
    assert response.status_code == 302
    change = ChangeRequest.objects.get()
    assert change.status == ChangeRequestStatus.PENDING
    assert change.requested_by == editor
    assert change.after == {"street": "Bd. Unirii 1", "tax_id": "1800101221144"}
    assert change.comment == "We moved"
    task = Task.objects.get(kind=TaskKind.CHANGE_REQUEST)
    assert task.team is not None and task.team.name == Role.CUSTOMER_SERVICE.value
    assert task.source == change
    assert (
        AuditEvent.objects.filter(
            action="change_request.submitted", customer=customer, actor=editor
        ).count()
        == 1
    )
    customer.refresh_from_db()
    assert customer.street == "Str. Lalelelor 5"  # applies only when approved


def test_it_refuses_a_second_request_while_one_is_pending(
    alice: User, bob: User, customer: Customer, client_for: ClientFor
) -> None:
    services.submit_change_request(
        customer=customer, requested_by=alice, changes={"city": "Cluj-Napoca"}
    )
    response = client_for(bob).post(
        reverse("portal:billing-change"), {**BILLING_POST, "street": "Bd. Unirii 1"}
    )
    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "A change request is already waiting for approval."
    ]
    assert 'value="Bd. Unirii 1"' in response.content.decode()
    assert ChangeRequest.objects.count() == 1


def test_it_says_so_when_nothing_changed(alice: User, client_for: ClientFor) -> None:
    response = client_for(alice).post(reverse("portal:billing-change"), BILLING_POST)
    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == ["Nothing was changed."]
    assert not ChangeRequest.objects.exists()


def test_it_shows_a_bad_tax_id_next_to_the_field_and_keeps_the_input(
    alice: User, customer: Customer, client_for: ClientFor
) -> None:
    response = client_for(alice).post(
        reverse("portal:billing-change"),
        {
            **BILLING_POST,
            "street": "Bd. Unirii 1",
            "tax_id": "1800101221145",
        },
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors["tax_id"] == ["The check digit of this tax id is wrong."]
    content = response.content.decode()
    assert 'value="1800101221145"' in content
    assert 'value="Bd. Unirii 1"' in content
    assert not ChangeRequest.objects.exists()
    customer.refresh_from_db()
    assert customer.tax_id == ""


def test_it_requires_a_company_name_for_a_company(alice: User, client_for: ClientFor) -> None:
    response = client_for(alice).post(
        reverse("portal:billing-change"), {**BILLING_POST, "kind": "company"}
    )
    assert "company_name" in response.context["form"].errors


# --- Representatives ------------------------------------------------------------


def test_it_adds_a_representative_with_audit(
    editor: User, customer: Customer, client_for: ClientFor
) -> None:
    response = client_for(editor).post(
        reverse("portal:representative-create"),
        {
            "first_name": "Maria",
            "last_name": "Dobre",
            "function": "Director",
            "email": "maria@example.com",
            "phone": "+40 21 300 4000",
        },
    )
    assert response["Location"] == reverse("portal:representatives")
    rep = Representative.objects.get(last_name="Dobre")
    assert rep.customer == customer
    assert rep.phone == "+40213004000"
    event = AuditEvent.objects.get(action="representative.created")
    assert event.actor == editor
    assert event.after["function"] == "Director"


def test_it_edits_a_representative_with_audit_before_and_after(
    editor: User, customer: Customer, client_for: ClientFor
) -> None:
    rep = customer_rep(customer)
    url = reverse("portal:representative-edit", args=[rep.public_id])
    client = client_for(editor)
    assert 'value="Radu"' in client.get(url).content.decode()
    response = client.post(
        url,
        {
            "first_name": "Radu",
            "last_name": "Ionescu",
            "function": "Chief accountant",
            "email": "",
            "phone": "",
        },
    )
    assert response.status_code == 302
    rep.refresh_from_db()
    assert rep.function == "Chief accountant"
    event = AuditEvent.objects.get(action="representative.updated")
    assert event.before["function"] == "Accountant"
    assert event.after["function"] == "Chief accountant"


def test_it_keeps_a_bad_representative_phone_with_an_error(
    alice: User, client_for: ClientFor
) -> None:
    response = client_for(alice).post(
        reverse("portal:representative-create"),
        {
            "first_name": "Maria",
            "last_name": "Dobre",
            "phone": "12",
        },
    )
    assert response.status_code == 200
    assert "phone" in response.context["form"].errors
    assert 'value="Maria"' in response.content.decode()
    assert not Representative.objects.filter(last_name="Dobre").exists()


def test_it_answers_404_for_a_malformed_representative_id(
    alice: User, client_for: ClientFor
) -> None:
    response = client_for(alice).get(f"/representatives/{uuid.uuid4()}/")
    assert response.status_code == 404


# --- Query counts ---------------------------------------------------------------

# Every portal page for a signed-in representative starts with:
#   1. the session (database session engine)
#   2. the user (auth middleware)
#   3. the user's staff role groups (StaffMFAMiddleware, cached on the user)
#   4. the current membership with its customer (access.customer_view)
# and ends with the session save (SESSION_SAVE_EVERY_REQUEST):
#   5. SAVEPOINT, 6. UPDATE django_session, 7. RELEASE SAVEPOINT
BASE_QUERIES = 7


@pytest.mark.parametrize("count", [2, 20])
def test_it_lists_representatives_in_constant_queries(
    alice: User,
    customer: Customer,
    client_for: ClientFor,
    django_assert_num_queries: Callable,
    count: int,
) -> None:
    for i in range(count - 1):  # alice's own representative is the first
        customer_rep(customer, first_name=f"Rep{i}")
    client = client_for(alice)
    client.get(reverse("portal:home"))  # the session has chosen its customer
    # 8. the representatives, 9. their memberships (prefetch)
    with django_assert_num_queries(BASE_QUERIES + 2):
        response = client.get(reverse("portal:representatives"))
    assert len(response.context["representatives"]) == count


@pytest.mark.parametrize("count", [2, 20])
def test_it_shows_the_account_in_constant_queries(
    alice: User,
    bob: User,
    customer: Customer,
    client_for: ClientFor,
    django_assert_num_queries: Callable,
    count: int,
) -> None:
    for i in range(count - 2):  # alice's and bob's representatives are the first two
        customer_rep(customer, first_name=f"Rep{i}")
    for i in range(count):
        ChangeRequest.objects.create(
            customer=customer,
            requested_by=bob,
            status=ChangeRequestStatus.REJECTED,
            before={"city": "București"},
            after={"city": f"City{i}"},
        )
    client = client_for(alice)
    client.get(reverse("portal:home"))
    # 8. the representatives, 9. their memberships (prefetch),
    # 10. the change requests with who asked for them
    with django_assert_num_queries(BASE_QUERIES + 3):
        response = client.get(reverse("portal:account"))
    assert len(response.context["representatives"]) == count
    assert len(response.context["change_requests"]) == count


# --- Profile ----------------------------------------------------------------------


def test_it_links_to_password_mfa_and_email_settings(charlie: User, client_for: ClientFor) -> None:
    content = client_for(charlie).get(reverse("portal:profile")).content.decode()
    for name in ("account_change_password", "mfa_index", "account_email"):
        assert reverse(name) in content
    assert "charlie@example.com" in content


def test_it_changes_the_users_language_at_once(alice: User, client_for: ClientFor) -> None:
    client = client_for(alice)
    response = client.post(reverse("portal:profile"), {"language": "ro"})
    assert response["Location"] == reverse("portal:profile")
    alice.refresh_from_db()
    assert alice.language == "ro"
    assert AuditEvent.objects.filter(action="user.language_changed", actor=alice).exists()
    response = client.get(reverse("portal:profile"))
    assert response.content.decode().startswith("<!doctype html>")
    assert 'lang="ro"' in response.content.decode()


def test_it_refuses_an_unknown_language(alice: User, client_for: ClientFor) -> None:
    response = client_for(alice).post(reverse("portal:profile"), {"language": "xx"})
    assert response.status_code == 200
    assert "language" in response.context["form"].errors
    alice.refresh_from_db()
    assert alice.language == "en"


# --- E-mails ----------------------------------------------------------------------


def test_it_tells_the_requester_the_decision_by_email(
    alice: User, customer: Customer, make_staff: Callable[[Role], User]
) -> None:
    change = services.submit_change_request(
        customer=customer, requested_by=alice, changes={"city": "Cluj-Napoca"}
    )
    services.decide_change_request(
        change=change,
        approve=False,
        decided_by=make_staff(Role.CUSTOMER_SERVICE),
        reason="Send a proof of address",
    )
    message = OutboxMessage.objects.get(kind="change_request_decided")
    assert message.to == "alice@example.com"
    assert "rejected" in message.subject
    assert "C0100001" in message.subject
    for body in (message.body_text, message.body_html):
        assert "Send a proof of address" in body
        assert "Cluj-Napoca" in body
        assert "http://localhost:8000/account/" in body
