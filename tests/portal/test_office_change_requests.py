"""The office verifies billing data changes and retries failed messages."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse

from notifications.models import Channel, OutboxMessage, Status
from portal import services
from portal.models import AuditEvent, ChangeRequest, Customer, Task, TaskStatus, User
from portal.roles import Role

pytestmark = pytest.mark.django_db

ClientFor = Callable[[User], Client]


@pytest.fixture
def clerk(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.CUSTOMER_SERVICE)


@pytest.fixture
def change(customer: Customer, alice: User) -> ChangeRequest:
    return services.submit_change_request(
        customer=customer, requested_by=alice,
        changes={"street": "Str. Nouă 7", "city": "Cluj-Napoca", "kind": "company",
                 "company_name": "Popescu PFA"},
        comment="We moved and registered a business.",
    )


def decide(client: Client, change: ChangeRequest, **data: str) -> object:
    return client.post(reverse("office:change-request-decide", args=[change.public_id]), data)


def test_it_shows_each_changed_field_before_and_after(clerk: User, change: ChangeRequest,
                                                      client_for: ClientFor) -> None:
    response = client_for(clerk).get(reverse("office:change-request", args=[change.public_id]))
    html = response.content.decode()
    rows = {str(row["label"]): (row["before"], row["after"]) for row in response.context["rows"]}
    assert rows["street and number"] == ("Str. Lalelelor 5", "Str. Nouă 7")
    assert rows["city"] == ("București", "Cluj-Napoca")
    # Choices read as their labels, not their codes.
    assert rows["kind"] == ("Person", "Company")
    assert "Alice Popescu" in html
    assert "We moved and registered a business." in html
    assert 'value="approve"' in html and 'value="reject"' in html


def test_it_applies_an_approved_change_and_records_it(
    clerk: User, alice: User, change: ChangeRequest, customer: Customer, client_for: ClientFor,
) -> None:
    client = client_for(clerk)
    response = decide(client, change, decision="approve")

    assert response.status_code == 302  # type: ignore[attr-defined]
    customer.refresh_from_db()
    assert (customer.street, customer.city, customer.company_name) == (
        "Str. Nouă 7", "Cluj-Napoca", "Popescu PFA"
    )
    change.refresh_from_db()
    assert (change.status, change.decided_by) == ("approved", clerk)
    event = AuditEvent.objects.get(action="customer.billing_data_changed")
    assert event.actor == clerk
    assert event.before["street"] == "Str. Lalelelor 5"
    assert event.after["street"] == "Str. Nouă 7"
    assert event.before["kind"] == "person" and event.after["kind"] == "company"
    # The verification task is done and alice is told.
    assert Task.objects.get(customer=customer).status == TaskStatus.DONE
    assert OutboxMessage.objects.about(customer).get(kind="change_request_decided").to == (
        alice.email
    )
    page = client.get(reverse("office:change-request", args=[change.public_id])).content
    assert b"Approved: the customer" in page
    assert b'value="approve"' not in page


def test_it_requires_a_reason_to_reject(clerk: User, change: ChangeRequest,
                                        client_for: ClientFor) -> None:
    client = client_for(clerk)
    response = decide(client, change, decision="reject", reason="   ")

    assert response.status_code == 200  # type: ignore[attr-defined]
    form = response.context["form"]  # type: ignore[attr-defined]
    assert form.errors["reason"] == ["Give the customer a reason for the rejection."]
    assert 'id="id_reason_error"' in response.content.decode()  # type: ignore[attr-defined]
    change.refresh_from_db()
    assert change.status == "pending"

    decide(client, change, decision="reject", reason="The tax office has no such business.")
    change.refresh_from_db()
    assert change.status == "rejected"
    assert change.reason == "The tax office has no such business."
    assert AuditEvent.objects.filter(action="change_request.rejected").exists()
    change.customer.refresh_from_db()
    assert change.customer.street == "Str. Lalelelor 5"


def test_it_says_already_decided_to_a_second_decision(clerk: User, change: ChangeRequest,
                                                      client_for: ClientFor) -> None:
    client = client_for(clerk)
    decide(client, change, decision="reject", reason="No.")
    url = reverse("office:change-request-decide", args=[change.public_id])
    response = client.post(url, {"decision": "approve"}, follow=True)

    assert response.status_code == 200
    assert b"This request was already decided." in response.content
    change.refresh_from_db()
    assert change.status == "rejected"
    assert change.customer.street == "Str. Lalelelor 5"


def test_it_refuses_to_apply_a_change_over_newer_data(
    clerk: User, change: ChangeRequest, customer: Customer, client_for: ClientFor,
) -> None:
    services.update_customer(customer=customer, changes={"city": "Iași"}, actor=clerk)
    client = client_for(clerk)
    page = client.get(reverse("office:change-request", args=[change.public_id]))
    assert b"changed since" in page.content

    url = reverse("office:change-request-decide", args=[change.public_id])
    response = client.post(url, {"decision": "approve"}, follow=True)

    assert b"changed since the request was made (city)" in response.content
    customer.refresh_from_db()
    assert customer.city == "Iași"
    change.refresh_from_db()
    assert change.status == "pending"


def test_it_answers_a_nonsense_decision_with_a_message(clerk: User, change: ChangeRequest,
                                                       client_for: ClientFor) -> None:
    response = decide(client_for(clerk), change, decision="maybe")
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert "decision" in response.context["form"].errors  # type: ignore[attr-defined]
    change.refresh_from_db()
    assert change.status == "pending"


def test_it_answers_htmx_decisions_with_the_decision_fragment(
    clerk: User, change: ChangeRequest, client_for: ClientFor,
) -> None:
    client = client_for(clerk)
    url = reverse("office:change-request-decide", args=[change.public_id])

    refused = client.post(url, {"decision": "reject"}, HTTP_HX_REQUEST="true")
    assert refused.content.decode().lstrip().startswith('<section class="card" id="decision"')
    assert b"Give the customer a reason" in refused.content

    done = client.post(url, {"decision": "approve"}, HTTP_HX_REQUEST="true")
    html = done.content.decode()
    assert done.status_code == 200
    assert "<html" not in html
    assert "Approved" in html and 'value="approve"' not in html

    again = client.post(url, {"decision": "approve"}, HTTP_HX_REQUEST="true")
    assert b"This request was already decided." in again.content


def test_it_answers_404_for_an_unknown_change_request(clerk: User,
                                                      client_for: ClientFor) -> None:
    client = client_for(clerk)
    missing = "00000000-0000-0000-0000-000000000000"
    assert client.get(reverse("office:change-request", args=[missing])).status_code == 404
    url = reverse("office:change-request-decide", args=[missing])
    assert client.post(url, {"decision": "approve"}).status_code == 404


def test_it_refuses_a_get_on_the_decision(clerk: User, change: ChangeRequest,
                                          client_for: ClientFor) -> None:
    url = reverse("office:change-request-decide", args=[change.public_id])
    assert client_for(clerk).get(url + "?decision=approve").status_code == 405
    change.refresh_from_db()
    assert change.status == "pending"


# --- Retrying failed messages ----------------------------------------------------


def message_about(obj: object, *, status: str) -> OutboxMessage:
    return OutboxMessage.objects.create(
        channel=Channel.SMS, kind="notice", to="+40721000111", body_text="Your invoice",
        status=status, error="provider said no" if status == Status.FAILED else "",
        about_type=ContentType.objects.get_for_model(obj), about_id=obj.pk,  # type: ignore[arg-type,attr-defined]
    )


def test_it_queues_a_failed_message_again(
    clerk: User, customer: Customer, client_for: ClientFor,
    django_capture_on_commit_callbacks: Callable[..., object],
) -> None:
    message = message_about(customer, status=Status.FAILED)
    url = reverse("office:message-retry", args=[message.public_id])

    with django_capture_on_commit_callbacks() as callbacks:  # type: ignore[attr-defined]
        response = client_for(clerk).post(url)

    assert response.status_code == 302
    assert response["Location"].endswith("#messages")
    message.refresh_from_db()
    assert (message.status, message.error) == (Status.QUEUED, "")
    assert len(callbacks) == 1  # type: ignore[arg-type]  # the dispatcher is called after commit
    assert AuditEvent.objects.filter(action="message.requeued", customer=customer,
                                     actor=clerk).exists()


def test_it_retries_only_failed_messages(clerk: User, customer: Customer,
                                         client_for: ClientFor) -> None:
    message = message_about(customer, status=Status.SENT)
    url = reverse("office:message-retry", args=[message.public_id])
    response = client_for(clerk).post(url, follow=True)
    assert b"Only a failed message can be sent again." in response.content
    message.refresh_from_db()
    assert message.status == Status.SENT


def test_it_retries_only_messages_about_a_customer(clerk: User, client_for: ClientFor) -> None:
    message = message_about(Group.objects.get(name=Role.BILLING), status=Status.FAILED)
    url = reverse("office:message-retry", args=[message.public_id])
    assert client_for(clerk).post(url).status_code == 404
    message.refresh_from_db()
    assert message.status == Status.FAILED


def test_it_answers_an_htmx_retry_with_the_row(clerk: User, customer: Customer,
                                               client_for: ClientFor) -> None:
    message = message_about(customer, status=Status.FAILED)
    url = reverse("office:message-retry", args=[message.public_id])
    response = client_for(clerk).post(url, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.lstrip().startswith(f'<tr id="message-{message.public_id}"')
    assert "badge-queued" in html
    assert "The message is queued again." in html
    assert url not in html  # no retry button on a queued message


def test_it_refuses_retry_by_get(clerk: User, customer: Customer,
                                 client_for: ClientFor) -> None:
    message = message_about(customer, status=Status.FAILED)
    url = reverse("office:message-retry", args=[message.public_id])
    assert client_for(clerk).get(url).status_code == 405
    message.refresh_from_db()
    assert message.status == Status.FAILED
