"""The back office: who gets in, the work queue, customer search and pages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from notifications.models import Channel, OutboxMessage, Status
from portal import office, services
from portal.models import (
    ActivationCode,
    AuditEvent,
    ChangeRequest,
    Customer,
    CustomerKind,
    Representative,
    Task,
    TaskPriority,
    TaskStatus,
    User,
)
from portal.roles import Role
from tests.conftest import make_customer, make_user

pytestmark = pytest.mark.django_db

MakeStaff = Callable[[Role], User]
ClientFor = Callable[[User], Client]


@pytest.fixture
def clerk(make_staff: MakeStaff) -> User:
    """Customer service: may do everything on this page."""
    return make_staff(Role.CUSTOMER_SERVICE)


@pytest.fixture
def change(customer: Customer, alice: User) -> ChangeRequest:
    return services.submit_change_request(
        customer=customer, requested_by=alice, changes={"street": "Str. Nouă 7"},
        comment="We moved.",
    )


@pytest.fixture
def failed_message(customer: Customer) -> OutboxMessage:
    return OutboxMessage.objects.create(
        channel=Channel.EMAIL, kind="activation", to="ana@example.com", subject="Your access",
        body_text="…", status=Status.FAILED, error="550 mailbox unavailable",
        about_type=ContentType.objects.get_for_model(Customer), about_id=customer.pk,
    )


def office_urls(customer: Customer, change: ChangeRequest, message: OutboxMessage) -> list[str]:
    task = Task.objects.get()
    return [
        reverse("office:home"),
        reverse("office:team-tasks"),
        reverse("office:task", args=[task.public_id]),
        reverse("office:customers") + "?q=ana",
        reverse("office:customer-create"),
        reverse("office:customer", args=[customer.public_id]),
        reverse("office:customer-edit", args=[customer.public_id]),
        reverse("office:representative-create", args=[customer.public_id]),
        reverse("office:change-request", args=[change.public_id]),
        reverse("office:change-request-decide", args=[change.public_id]),
        reverse("office:message-retry", args=[message.public_id]),
    ]


# --- Who gets in -----------------------------------------------------------------


@pytest.mark.parametrize("persona", ["alice", "charlie"])
def test_it_hides_the_office_from_customer_users(
    persona: str, request: pytest.FixtureRequest, customer: Customer, change: ChangeRequest,
    failed_message: OutboxMessage, client_for: ClientFor,
) -> None:
    client = client_for(request.getfixturevalue(persona))
    for url in office_urls(customer, change, failed_message):
        assert client.get(url).status_code == 404, url
        assert client.post(url, {"decision": "approve"}).status_code == 404, url
    change.refresh_from_db()
    assert change.status == "pending"


def test_it_sends_anonymous_visitors_to_the_login(customer: Customer, change: ChangeRequest,
                                                  failed_message: OutboxMessage) -> None:
    for url in office_urls(customer, change, failed_message):
        response = Client().get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("account_login")), url


def test_it_forbids_the_office_to_couriers(make_staff: MakeStaff, customer: Customer,
                                          change: ChangeRequest, failed_message: OutboxMessage,
                                          client_for: ClientFor) -> None:
    # Couriers are staff of the wrong role: they work in /courier/ only.
    client = client_for(make_staff(Role.COURIER))
    for url in office_urls(customer, change, failed_message):
        assert client.get(url).status_code == 403, url


@pytest.mark.parametrize("role", [Role.BILLING, Role.COLLECTIONS, Role.METER_READING,
                                  Role.ESTIMATOR])
def test_it_forbids_changes_to_staff_of_other_roles(
    role: Role, make_staff: MakeStaff, customer: Customer, change: ChangeRequest,
    failed_message: OutboxMessage, client_for: ClientFor,
) -> None:
    client = client_for(make_staff(role))
    forbidden = [
        reverse("office:customer-create"),
        reverse("office:customer-edit", args=[customer.public_id]),
        reverse("office:representative-create", args=[customer.public_id]),
        reverse("office:change-request-decide", args=[change.public_id]),
        reverse("office:message-retry", args=[failed_message.public_id]),
    ]
    for url in forbidden:
        assert client.post(url, {"decision": "approve", "last_name": "X"}).status_code == 403, url
    assert client.get(reverse("office:customer-create")).status_code == 403
    # …but they may look.
    assert client.get(reverse("office:customer", args=[customer.public_id])).status_code == 200
    assert client.get(reverse("office:customers") + "?q=ana").status_code == 200
    change.refresh_from_db()
    failed_message.refresh_from_db()
    assert change.status == "pending"
    assert failed_message.status == Status.FAILED
    assert Customer.objects.count() == 1


def test_it_shows_billing_the_change_request_without_the_decision(
    make_staff: MakeStaff, change: ChangeRequest, client_for: ClientFor,
) -> None:
    response = client_for(make_staff(Role.BILLING)).get(
        reverse("office:change-request", args=[change.public_id])
    )
    assert response.status_code == 200
    assert b"Str. Nou\xc4\x83 7" in response.content
    assert b'value="approve"' not in response.content


def test_it_hides_change_requests_from_roles_without_the_permission(
    make_staff: MakeStaff, change: ChangeRequest, client_for: ClientFor,
) -> None:
    response = client_for(make_staff(Role.COLLECTIONS)).get(
        reverse("office:change-request", args=[change.public_id])
    )
    assert response.status_code == 403


# --- Work queue ------------------------------------------------------------------


def test_it_lists_my_open_tasks_most_urgent_first(clerk: User, customer: Customer,
                                                 client_for: ClientFor) -> None:
    now = timezone.now()
    services.create_task(subject="Routine", assignee=clerk, customer=customer)
    services.create_task(subject="Fire", assignee=clerk, priority=TaskPriority.URGENT,
                         due_at=now - timedelta(hours=1))
    services.create_task(subject="Soon", assignee=clerk, priority=TaskPriority.URGENT,
                         due_at=now + timedelta(days=1))
    services.create_task(subject="Finished", assignee=clerk).close()
    services.create_task(subject="Someone else's", team=Role.CUSTOMER_SERVICE)

    response = client_for(clerk).get(reverse("office:home"))

    subjects = [t.subject for t in response.context["page"].object_list]
    assert subjects == ["Fire", "Soon", "Routine"]
    html = response.content.decode()
    assert html.count('class="badge badge-overdue"') == 1
    assert customer.number in html
    assert reverse("office:team-tasks") in html


def test_it_lists_my_teams_tasks_unassigned_first(clerk: User, make_staff: MakeStaff,
                                                 client_for: ClientFor) -> None:
    colleague = make_user("colleague@staff.example.com")
    services.create_task(subject="Taken", team=Role.CUSTOMER_SERVICE, assignee=colleague,
                         priority=TaskPriority.URGENT)
    services.create_task(subject="Free low", team=Role.CUSTOMER_SERVICE,
                         priority=TaskPriority.LOW)
    services.create_task(subject="Free high", team=Role.CUSTOMER_SERVICE,
                         priority=TaskPriority.HIGH)
    services.create_task(subject="Billing's", team=Role.BILLING)

    response = client_for(clerk).get(reverse("office:team-tasks"))

    subjects = [t.subject for t in response.context["page"].object_list]
    assert subjects == ["Free high", "Free low", "Taken"]


def test_it_pages_the_queue_by_fifty(clerk: User, client_for: ClientFor) -> None:
    Task.objects.bulk_create(Task(subject=f"T{i:02}", assignee=clerk) for i in range(55))
    client = client_for(clerk)
    first = client.get(reverse("office:home"))
    second = client.get(reverse("office:home") + "?page=2")
    assert len(first.context["page"].object_list) == 50
    assert len(second.context["page"].object_list) == 5
    assert b'rel="next"' in first.content


def queries_of(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


# Every office page pays for: the session (1), the user (1), their role groups (1),
# their own and their groups' permissions (2) and saving the session (3: savepoint,
# UPDATE, release). The MFA check is remembered in the session after the first page.
OFFICE_OVERHEAD = 8


@pytest.fixture
def counting_client(clerk: User) -> Client:
    client = Client()
    client.force_login(clerk)
    client.get(reverse("office:home"))  # the MFA check, then remembered in the session
    return client


def add_tasks(n: int, *, user: User, customer: Customer) -> None:
    for i in range(n):
        services.create_task(
            subject=f"Task {i}", customer=customer, team=Role.CUSTOMER_SERVICE,
            assignee=user if i % 2 else None, due_at=timezone.now() - timedelta(days=i % 3),
        )


@pytest.mark.parametrize("name", ["office:home", "office:team-tasks"])
def test_it_lists_tasks_in_a_fixed_number_of_queries(
    name: str, clerk: User, customer: Customer, counting_client: Client,
    django_assert_num_queries: Callable[..., object],
) -> None:
    client = counting_client
    url = reverse(name)
    add_tasks(3, user=clerk, customer=customer)
    few = queries_of(client, url)
    add_tasks(27, user=clerk, customer=customer)
    with django_assert_num_queries(OFFICE_OVERHEAD + 2):  # type: ignore[attr-defined]
        # + COUNT of the tasks for the paginator
        # + the page of tasks with their customer, team and assignee (one JOIN)
        client.get(url)
    assert queries_of(client, url) == few


def test_it_takes_a_task_and_changes_its_status(clerk: User, customer: Customer,
                                               client_for: ClientFor) -> None:
    task = services.create_task(subject="Call back", team=Role.CUSTOMER_SERVICE,
                                customer=customer)
    client = client_for(clerk)
    url = reverse("office:task", args=[task.public_id])

    assert b"Take it" in client.get(url).content
    assert client.post(url, {"action": "take"}).status_code == 302
    task.refresh_from_db()
    assert (task.assignee, task.status) == (clerk, TaskStatus.IN_PROGRESS)
    assert [t.subject for t in client.get(reverse("office:home")).context["page"]] == [
        "Call back"
    ]

    client.post(url, {"action": "status", "status": TaskStatus.DONE})
    task.refresh_from_db()
    assert task.status == TaskStatus.DONE
    assert task.closed_at is not None
    assert AuditEvent.objects.filter(action="task.status_changed", customer=customer).exists()

    # A closed task cannot be taken; the page says so instead of failing.
    response = client.post(url, {"action": "take"}, follow=True)
    assert b"This task is closed" in response.content


def test_it_refuses_an_unknown_status(clerk: User, client_for: ClientFor) -> None:
    task = services.create_task(subject="X", assignee=clerk)
    response = client_for(clerk).post(
        reverse("office:task", args=[task.public_id]), {"action": "status", "status": "lost"},
        follow=True,
    )
    assert response.status_code == 200
    task.refresh_from_db()
    assert task.status == TaskStatus.OPEN


def test_it_links_a_task_to_its_change_request(clerk: User, change: ChangeRequest,
                                               client_for: ClientFor) -> None:
    task = Task.objects.get()
    response = client_for(clerk).get(reverse("office:task", args=[task.public_id]))
    assert reverse("office:change-request", args=[change.public_id]) in response.content.decode()


def test_it_answers_404_for_an_unknown_task(clerk: User, client_for: ClientFor) -> None:
    url = reverse("office:task", args=["00000000-0000-0000-0000-000000000000"])
    assert client_for(clerk).get(url).status_code == 404


# --- Customer search -------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("C0100001", "C0100001"), ("100001", "C0100001"), ("Popescu", "C0100001"),
    ("ana popes", "C0100001"), ("ana@example", "C0100001"), ("0721 000 111", "C0100001"),
    ("+40721000111", "C0100001"), ("biuro@kowalski.pl", "C0200002"), ("Kraków", "C0200002"),
    ("lalelelor krak", "C0200002"), ("Str. Lalelelor 5", "C0100001 C0200002"),
])
def test_it_finds_customers_by_number_name_email_phone_and_address(
    text: str, expected: str, clerk: User, customer: Customer, other_customer: Customer,
    client_for: ClientFor,
) -> None:
    response = client_for(clerk).get(reverse("office:customers"), {"q": text})
    found = response.context["results"]
    assert [c.number for c in found] == expected.split()
    html = response.content.decode()
    for c in found:
        assert c.email in html and c.address in html


def test_it_shows_a_hint_not_every_customer_for_an_empty_search(
    clerk: User, customer: Customer, client_for: ClientFor,
) -> None:
    response = client_for(clerk).get(reverse("office:customers"))
    assert response.context["results"] == []
    assert customer.number not in response.content.decode()
    assert b"Type a customer number" in response.content


def test_it_answers_htmx_searches_with_the_results_only(clerk: User, customer: Customer,
                                                       client_for: ClientFor) -> None:
    response = client_for(clerk).get(reverse("office:customers"), {"q": "popescu"},
                                      HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="results"')
    assert "<html" not in html
    assert customer.number in html


def test_it_gives_the_whole_page_when_htmx_restores_history(
    clerk: User, customer: Customer, client_for: ClientFor,
) -> None:
    response = client_for(clerk).get(reverse("office:customers"), {"q": "popescu"},
                                      HTTP_HX_REQUEST="true",
                                      HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert b"<html" in response.content
    assert "HX-Request" in response["Vary"]


def test_it_says_when_nothing_matches(clerk: User, customer: Customer,
                                      client_for: ClientFor) -> None:
    response = client_for(clerk).get(reverse("office:customers"), {"q": "zzz"})
    assert "No customer matches “zzz”" in response.content.decode()


def add_customers(start: int, n: int) -> None:
    for i in range(start, start + n):
        make_customer(f"C09{i:05}", email=f"ana{i}@example.com", mobile="")


def test_it_searches_in_a_fixed_number_of_queries(
    counting_client: Client, django_assert_num_queries: Callable[..., object],
) -> None:
    client = counting_client
    url = reverse("office:customers") + "?q=ana"
    add_customers(0, 3)
    few = queries_of(client, url)
    add_customers(3, 27)
    with django_assert_num_queries(OFFICE_OVERHEAD + 1):  # type: ignore[attr-defined]
        # + the first 51 matching customers
        client.get(url)
    assert queries_of(client, url) == few


def test_it_shows_the_first_fifty_customers_and_says_there_are_more(
    clerk: User, client_for: ClientFor,
) -> None:
    add_customers(0, 52)
    response = client_for(clerk).get(reverse("office:customers"), {"q": "popescu"})
    numbers = [c.number for c in response.context["results"]]
    assert numbers == sorted(numbers)
    assert len(numbers) == 50
    assert b"Only the first 50 customers" in response.content


# --- Creating and editing customers ----------------------------------------------

VALID_COMPANY = {
    "kind": "company", "first_name": "", "last_name": "", "company_name": "Lumina SRL",
    "tax_id": "18547290", "vat_id": "", "street": "Bd. Unirii 1", "postal_code": "030167",
    "city": "București", "country": "RO", "language": "ro", "email": "office@lumina.ro",
    "mobile": "0721 555 666", "consent_ebilling": "on",
}


def test_it_creates_a_customer(clerk: User, client_for: ClientFor) -> None:
    response = client_for(clerk).post(reverse("office:customer-create"), VALID_COMPANY)

    created = Customer.objects.get(company_name="Lumina SRL")
    assert response.status_code == 302
    assert response["Location"] == reverse("office:customer", args=[created.public_id])
    assert created.number.startswith("C")
    assert created.mobile == "0721555666"
    assert created.consent_ebilling and not created.consent_electronic_delivery
    event = AuditEvent.objects.get(action="customer.created", customer=created)
    assert event.actor == clerk
    assert event.after["company_name"] == "Lumina SRL"


def test_it_keeps_what_was_typed_when_the_tax_id_is_wrong(clerk: User,
                                                          client_for: ClientFor) -> None:
    data = {**VALID_COMPANY, "tax_id": "18547291"}  # wrong check digit
    response = client_for(clerk).post(reverse("office:customer-create"), data)

    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors["tax_id"] == ["The check digit of this tax id is wrong."]
    assert list(form.errors) == ["tax_id"]
    html = response.content.decode()
    # The message sits with the field, and nothing typed is lost.
    assert 'id="id_tax_id_error"' in html
    assert 'value="18547291"' in html
    assert 'value="Lumina SRL"' in html
    assert 'value="office@lumina.ro"' in html
    assert not Customer.objects.exists()


def test_it_asks_a_person_for_a_last_name_and_a_valid_mobile(clerk: User,
                                                            client_for: ClientFor) -> None:
    data = {**VALID_COMPANY, "kind": "person", "first_name": "Ion", "tax_id": "",
            "mobile": "12"}
    response = client_for(clerk).post(reverse("office:customer-create"), data)
    errors = response.context["form"].errors
    assert errors["last_name"] == ["A person needs a last name."]
    assert "mobile" in errors
    assert not Customer.objects.exists()


def test_it_edits_a_customer_and_records_before_and_after(
    clerk: User, customer: Customer, client_for: ClientFor,
) -> None:
    url = reverse("office:customer-edit", args=[customer.public_id])
    client = client_for(clerk)
    form = client.get(url).context["form"]
    data = {name: value for name, value in form.initial.items()
            if name in form.fields and value not in (None, False)}
    data.update({"street": "Str. Florilor 9", "email": "ana.new@example.com"})

    response = client.post(url, data)

    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.street == "Str. Florilor 9"
    assert customer.email == "ana.new@example.com"
    event = AuditEvent.objects.get(action="customer.updated")
    assert event.before == {"street": "Str. Lalelelor 5", "email": "ana@example.com"}
    assert event.after == {"street": "Str. Florilor 9", "email": "ana.new@example.com"}
    assert event.actor == clerk


def test_it_refuses_an_edit_with_a_bad_vat_id(clerk: User, customer: Customer,
                                              client_for: ClientFor) -> None:
    url = reverse("office:customer-edit", args=[customer.public_id])
    data = {"kind": "person", "first_name": "Ana", "last_name": "Popescu", "street": "S 1",
            "postal_code": "1", "city": "X", "country": "RO", "language": "en",
            "vat_id": "RO123"}
    response = client_for(clerk).post(url, data)
    assert "vat_id" in response.context["form"].errors
    customer.refresh_from_db()
    assert customer.street == "Str. Lalelelor 5"
    assert not AuditEvent.objects.filter(action="customer.updated").exists()


def test_it_adds_a_representative(clerk: User, customer: Customer,
                                  client_for: ClientFor) -> None:
    url = reverse("office:representative-create", args=[customer.public_id])
    response = client_for(clerk).post(url, {
        "first_name": "Mihai", "last_name": "Ionescu", "function": "Tenant",
        "email": "mihai@example.com", "phone": "+40 722 111 222",
    })
    assert response.status_code == 302
    rep = Representative.objects.get(customer=customer, last_name="Ionescu")
    assert rep.phone == "+40722111222"
    assert AuditEvent.objects.filter(action="representative.created", customer=customer).exists()


def test_it_keeps_a_representative_form_with_a_missing_name(clerk: User, customer: Customer,
                                                           client_for: ClientFor) -> None:
    url = reverse("office:representative-create", args=[customer.public_id])
    response = client_for(clerk).post(url, {"first_name": "Mihai", "email": "mihai@ex.com"})
    assert response.status_code == 200
    assert "last_name" in response.context["form"].errors
    assert 'value="mihai@ex.com"' in response.content.decode()
    assert not Representative.objects.filter(first_name="Mihai").exists()


# --- The customer page -----------------------------------------------------------


def test_it_shows_everything_about_a_customer(
    clerk: User, customer: Customer, alice: User, change: ChangeRequest,
    failed_message: OutboxMessage, client_for: ClientFor,
) -> None:
    Representative.objects.create(customer=customer, first_name="Mihai", last_name="Ionescu")
    response = client_for(clerk).get(reverse("office:customer", args=[customer.public_id]))
    html = response.content.decode()

    assert response.status_code == 200
    assert "Str. Lalelelor 5" in html and "+40721000111" in html
    # Representatives, with and without portal access.
    assert "Mihai Ionescu" in html and "no portal access" in html
    assert "alice@example.com" in html and "Owner" in html
    # The pending change request, its task, the failed message and the history.
    assert reverse("office:change-request", args=[change.public_id]) in html
    assert "Verify billing data change" in html
    assert "550 mailbox unavailable" in html
    assert reverse("office:message-retry", args=[failed_message.public_id]) in html
    assert "change_request.submitted" in html
    assert "Str. Lalelelor 5 → Str. Nouă 7" in html
    # Links for the activation helper and other apps' sections.
    assert reverse("office:grant-access", args=[customer.public_id]) in html


def test_it_hides_the_retry_button_from_roles_that_cannot_retry(
    make_staff: MakeStaff, customer: Customer, failed_message: OutboxMessage,
    client_for: ClientFor,
) -> None:
    response = client_for(make_staff(Role.BILLING)).get(
        reverse("office:customer", args=[customer.public_id])
    )
    html = response.content.decode()
    assert "550 mailbox unavailable" in html
    assert reverse("office:message-retry", args=[failed_message.public_id]) not in html


def test_it_shows_sections_other_apps_add(clerk: User, customer: Customer,
                                          client_for: ClientFor,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(office, "CUSTOMER_SECTIONS", [])
    office.add_customer_section(office.CustomerSection(
        title="Supply points", template="office/_field.html",
        load=lambda request, c: {"number": c.number},
    ))
    office.add_customer_section(office.CustomerSection(
        title="Secret ledger", template="office/_field.html", load=lambda request, c: {},
        permission="portal.view_auditevent",
    ))
    response = client_for(clerk).get(reverse("office:customer", args=[customer.public_id]))
    assert [s["title"] for s in response.context["extra_sections"]] == ["Supply points"]
    assert response.context["extra_sections"][0]["data"] == {"number": customer.number}
    assert b"<h2>Supply points</h2>" in response.content


def fill_customer(customer: Customer, n: int, *, start: int, actor: User) -> None:
    for i in range(start, start + n):
        user = make_user(f"rep{i}@example.com")
        rep = Representative.objects.create(customer=customer, first_name="R", last_name=str(i),
                                            user=user)
        customer.memberships.create(user=user, role="viewer", representative=rep)
        ChangeRequest.objects.create(customer=customer, requested_by=user, status="rejected",
                                     decided_by=actor, after={"city": "X"}, reason="no")
        services.create_task(subject=f"T{i}", customer=customer, team=Role.BILLING,
                             assignee=actor)
        OutboxMessage.objects.create(
            channel=Channel.SMS, kind="notice", to="+40700000000", body_text="…",
            status=Status.FAILED if i % 2 else Status.SENT,
            about_type=ContentType.objects.get_for_model(Customer), about_id=customer.pk,
        )
        services.record(action="customer.touched", actor=actor, customer=customer,
                        before={"city": "A"}, after={"city": "B"})
        ActivationCode.objects.create(
            lookup=f"L{i:05}", part1_hash="x", part2_hash="y", user=user, customer=customer,
            representative=rep, role="viewer", created_by=actor,
            expires_at=timezone.now() + timedelta(days=30),
        )


def test_it_shows_the_customer_page_in_a_fixed_number_of_queries(
    clerk: User, customer: Customer, counting_client: Client,
    django_assert_num_queries: Callable[..., object], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Sections of other apps count their own queries in their own tests.
    monkeypatch.setattr(office, "CUSTOMER_SECTIONS", [])
    ContentType.objects.get_for_model(Customer)  # cached for the process, as in production
    client = counting_client
    url = reverse("office:customer", args=[customer.public_id])
    fill_customer(customer, 3, start=0, actor=clerk)
    few = queries_of(client, url)
    fill_customer(customer, 27, start=3, actor=clerk)
    with django_assert_num_queries(OFFICE_OVERHEAD + 8):  # type: ignore[attr-defined]
        # + the customer
        # + representatives with their users
        # + memberships with users and representatives
        # + change requests with requester and decider
        # + open tasks with team and assignee
        # + outbox messages about the customer
        # + audit events with their actors
        # + activation codes with representative and granting clerk
        client.get(url)
    assert queries_of(client, url) == few


def test_it_answers_404_for_an_unknown_customer(clerk: User, client_for: ClientFor) -> None:
    client = client_for(clerk)
    for name in ["office:customer", "office:customer-edit", "office:representative-create"]:
        url = reverse(name, args=["00000000-0000-0000-0000-000000000000"])
        assert client.get(url).status_code == 404, name


def test_it_shows_a_company_customer(clerk: User, client_for: ClientFor) -> None:
    company = make_customer("C0300003", kind=CustomerKind.COMPANY, company_name="Lumina SRL",
                            first_name="", last_name="")
    response = client_for(clerk).get(reverse("office:customer", args=[company.public_id]))
    assert b"Lumina SRL" in response.content


def test_it_says_when_an_edit_changes_nothing(clerk: User, customer: Customer,
                                              client_for: ClientFor) -> None:
    url = reverse("office:customer-edit", args=[customer.public_id])
    client = client_for(clerk)
    form = client.get(url).context["form"]
    data = {name: value for name, value in form.initial.items()
            if name in form.fields and value not in (None, False)}
    response = client.post(url, data, follow=True)
    assert b"Nothing was changed." in response.content
    assert not AuditEvent.objects.filter(action="customer.updated").exists()
