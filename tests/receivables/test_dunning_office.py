"""Office pages of dunning: overview, approval queue, reconciliation list, letter batches."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import Invoice
from notifications.models import OutboxMessage, S10Range, Status
from portal.models import AuditEvent, Customer, Task, TaskStatus, User
from portal.roles import Role
from receivables import dunning, dunning_letters
from receivables.dunning_models import DunningNotice, LetterBatch, NoticeStatus
from tests.receivables.dunning_helpers import DUE, make_company, make_policy

Issue = Callable[..., Invoice]
Capture = Callable[..., Any]
# Every office page pays for: the session (1), the user (1), their role groups (1),
# their own and their groups' permissions (2) and saving the session (3: savepoint,
# UPDATE, release).
OFFICE_OVERHEAD = 8


@pytest.fixture(autouse=True)
def _media_root(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def clerk(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.COLLECTIONS)


@pytest.fixture
def meter_reader(make_staff: Callable[[Role], User]) -> User:
    """Staff of a role that has nothing to do with dunning."""
    return make_staff(Role.METER_READING)


@pytest.fixture
def waiting(customer: Customer, issue: Issue) -> list[DunningNotice]:
    """Three notices of the second reminder waiting for approval, one run."""
    make_policy()
    issue(customer, "121.00")
    issue(make_company(), "242.00")
    issue(make_company("C0300004"), "363.00")
    dunning.run_dunning(day=DUE + timedelta(days=22))
    return list(DunningNotice.objects.order_by("customer__number"))


def _urls(notice: DunningNotice, batch: LetterBatch) -> list[tuple[str, str]]:
    return [
        ("get", reverse("dunning-office:overview")),
        ("get", reverse("dunning-office:approvals")),
        ("post", reverse("dunning-office:approvals-decide")),
        ("get", reverse("dunning-office:reconciliation")),
        ("post", reverse("dunning-office:reconciliation-decide")),
        ("get", reverse("dunning-office:letter-batches")),
        ("post", reverse("dunning-office:letter-batch-make")),
        ("get", reverse("dunning-office:letter-batch-pdf", args=[batch.public_id])),
        ("get", reverse("dunning-office:letter-batch-list", args=[batch.public_id])),
        ("get", reverse("dunning-office:notice-letter", args=[notice.public_id])),
    ]


@pytest.fixture
def letter(customer: Customer, issue: Issue, django_capture_on_commit_callbacks: Capture
           ) -> tuple[DunningNotice, LetterBatch]:
    """An ordinary dunning letter (the customer has neither e-mail nor mobile), batched."""
    make_policy()
    Customer.objects.filter(pk=customer.pk).update(email="", mobile="")
    issue(customer, "121.00")
    with django_capture_on_commit_callbacks(execute=True):
        dunning.run_dunning(day=DUE + timedelta(days=10))
    batch = dunning_letters.make_letter_batch()
    assert batch is not None
    return DunningNotice.objects.get(), batch


def test_a_customer_finds_no_dunning_office_page(
    letter: tuple[DunningNotice, LetterBatch], alice: User,
    client_for: Callable[[User], Client],
) -> None:
    client = client_for(alice)
    for method, url in _urls(*letter):
        assert getattr(client, method)(url).status_code == 404, url


def test_staff_of_another_role_are_refused(
    letter: tuple[DunningNotice, LetterBatch], meter_reader: User,
    client_for: Callable[[User], Client],
) -> None:
    client = client_for(meter_reader)
    for method, url in _urls(*letter):
        assert getattr(client, method)(url).status_code == 403, url


def test_collections_staff_download_the_batch_and_the_letter(
    letter: tuple[DunningNotice, LetterBatch], clerk: User, client_for: Callable[[User], Client],
) -> None:
    notice, batch = letter
    client = client_for(clerk)
    pdf = client.get(reverse("dunning-office:letter-batch-pdf", args=[batch.public_id]))
    assert pdf["Content-Type"] == "application/pdf"
    assert b"".join(pdf.streaming_content).startswith(b"%PDF")  # type: ignore[attr-defined]
    listing = client.get(reverse("dunning-office:letter-batch-list", args=[batch.public_id]))
    content = b"".join(listing.streaming_content).decode()  # type: ignore[attr-defined]
    assert "Str. Lalelelor 5" in content and "C0100001" in content
    single = client.get(reverse("dunning-office:notice-letter", args=[notice.public_id]))
    assert b"".join(single.streaming_content).startswith(b"%PDF")  # type: ignore[attr-defined]


def test_the_overview_shows_policies_levels_and_runs(
    waiting: list[DunningNotice], clerk: User, client_for: Callable[[User], Client],
    django_assert_num_queries: Any,
) -> None:
    client = client_for(clerk)
    client.get(reverse("dunning-office:overview"))
    # The policies, their levels, the counts per status, the recent runs.
    with django_assert_num_queries(OFFICE_OVERHEAD + 4):
        response = client.get(reverse("dunning-office:overview"))
    page = response.content.decode()
    assert "Standard" in page and "Final notice" in page and "Registered letter" in page
    assert f"?run={waiting[0].run.public_id}" in page


def test_the_approval_queue_lists_the_waiting_notices(
    waiting: list[DunningNotice], clerk: User, client_for: Callable[[User], Client],
    django_assert_num_queries: Any,
) -> None:
    client = client_for(clerk)
    url = reverse("dunning-office:approvals") + f"?run={waiting[0].run.public_id}"
    client.get(url)
    # The run of the filter, the paginator's COUNT, one page of notices (with customer,
    # level, run and message).
    with django_assert_num_queries(OFFICE_OVERHEAD + 3):
        response = client.get(url)
    page = response.content.decode()
    for notice in waiting:
        assert str(notice.public_id) in page
    assert "C0300004" in page and "363.00 EUR" in page


def test_the_runs_approval_task_leads_to_its_queue(
    waiting: list[DunningNotice], clerk: User, client_for: Callable[[User], Client],
) -> None:
    run = waiting[0].run
    task = Task.objects.get(source_id=run.pk)
    assert task.subject == "3 dunning notices of 2026-11-06 wait for approval"
    page = client_for(clerk).get(reverse("office:task", args=[task.public_id])).content.decode()
    assert f'{reverse("dunning-office:approvals")}?run={run.public_id}' in page


def test_staff_approve_notices_in_bulk(
    waiting: list[DunningNotice], clerk: User, client_for: Callable[[User], Client],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    task = Task.objects.get(source_id=waiting[0].run_id)
    first, second, third = waiting
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(clerk).post(reverse("dunning-office:approvals-decide"), {
            "notice": [str(first.public_id), str(second.public_id)], "decision": "approve",
        })
    assert response.status_code == 302
    statuses = {n.pk: n.status for n in DunningNotice.objects.all()}
    assert statuses == {first.pk: NoticeStatus.SENT, second.pk: NoticeStatus.SENT,
                        third.pk: NoticeStatus.PENDING_APPROVAL}
    assert AuditEvent.objects.filter(action="dunning.notice.approved").count() == 2
    task.refresh_from_db()
    assert task.status == TaskStatus.OPEN  # one notice still waits


def test_rejecting_needs_a_reason_and_keeps_what_was_ticked(
    waiting: list[DunningNotice], clerk: User, client_for: Callable[[User], Client],
) -> None:
    client = client_for(clerk)
    ids = [str(notice.public_id) for notice in waiting]
    response = client.post(reverse("dunning-office:approvals-decide"),
                           {"notice": ids[:2], "decision": "reject", "reason": "  "})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Say why the notices are rejected." in page
    assert page.count(" checked ") + page.count(" checked>") == 2
    assert not DunningNotice.objects.exclude(status=NoticeStatus.PENDING_APPROVAL).exists()

    response = client.post(reverse("dunning-office:approvals-decide"),
                           {"notice": ids, "decision": "reject", "reason": "Complaint filed"})
    assert response.status_code == 302
    assert set(DunningNotice.objects.values_list("status", flat=True)) == {NoticeStatus.REJECTED}
    assert OutboxMessage.objects.count() == 0
    event = AuditEvent.objects.filter(action="dunning.notice.rejected").first()
    assert event is not None and event.note == "Complaint filed"
    # Nothing waits any more: the run's approval task is done.
    assert Task.objects.get(source_id=waiting[0].run_id).status == TaskStatus.DONE


def test_nothing_ticked_is_refused_next_to_the_list(
    waiting: list[DunningNotice], clerk: User, client_for: Callable[[User], Client],
) -> None:
    response = client_for(clerk).post(reverse("dunning-office:approvals-decide"),
                                      {"decision": "approve"})
    assert response.status_code == 400
    assert "Tick at least one notice." in response.content.decode()


def test_an_htmx_decision_answers_with_the_queue_fragment(
    waiting: list[DunningNotice], clerk: User, client_for: Callable[[User], Client],
) -> None:
    response = client_for(clerk).post(
        reverse("dunning-office:approvals-decide"),
        {"notice": [str(waiting[0].public_id)], "decision": "approve"},
        headers={"HX-Request": "true"},
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert page.lstrip().startswith('<div id="queue">')
    assert "1 notices approved." in page
    assert str(waiting[0].public_id) not in page and str(waiting[1].public_id) in page


def test_the_reconciliation_list_and_marking_sent(
    customer: Customer, issue: Issue, clerk: User, client_for: Callable[[User], Client],
    django_assert_num_queries: Any,
) -> None:
    make_policy()
    issue(customer, "121.00")
    dunning.run_dunning(day=DUE + timedelta(days=10))
    notice = DunningNotice.objects.get()
    OutboxMessage.objects.update(
        status=Status.SENDING, claimed_at=timezone.now() - timedelta(hours=3)
    )
    dunning.sync_outcomes()
    client = client_for(clerk)
    client.get(reverse("dunning-office:reconciliation"))

    # The paginator's COUNT, one page of notices with customer, level, run and message.
    with django_assert_num_queries(OFFICE_OVERHEAD + 2):
        response = client.get(reverse("dunning-office:reconciliation"))
    page = response.content.decode()
    assert str(notice.public_id) in page and "Outcome unknown" in page

    response = client.post(reverse("dunning-office:reconciliation-decide"), {
        "notice": [str(notice.public_id)], "decision": "mark_sent", "note": "Customer confirmed",
    })
    assert response.status_code == 302
    notice.refresh_from_db()
    assert (notice.status, notice.reason) == (NoticeStatus.SENT, "Customer confirmed")
    assert "Nothing to reconcile." in client.get(
        reverse("dunning-office:reconciliation")).content.decode()


def test_staff_make_a_letter_batch(
    company: Customer, issue: Issue, clerk: User, client_for: Callable[[User], Client],
    django_capture_on_commit_callbacks: Capture, django_assert_num_queries: Any,
) -> None:
    make_policy()
    S10Range.objects.create(prefix="RR", country="RO", product="Registered letter",
                            first_serial=1, last_serial=1000)
    issue(company, "1000.00")
    dunning.run_dunning(day=DUE + timedelta(days=35))
    notice = DunningNotice.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        dunning.decide_notices(notice_ids=[notice.public_id], approve=True, by=clerk)
    client = client_for(clerk)
    client.get(reverse("dunning-office:letter-batches"))

    # The letters waiting (COUNT), the paginator's COUNT (no batch: no page query).
    with django_assert_num_queries(OFFICE_OVERHEAD + 2):
        page = client.get(reverse("dunning-office:letter-batches")).content.decode()
    assert "1 approved letter waits for a batch." in page

    response = client.post(reverse("dunning-office:letter-batch-make"))
    assert response.status_code == 302
    batch = LetterBatch.objects.get()
    assert (batch.letter_count, batch.registered_count, batch.created_by) == (1, 1, clerk)
    page = client.get(reverse("dunning-office:letter-batches")).content.decode()
    assert reverse("dunning-office:letter-batch-list", args=[batch.public_id]) in page
    listing = client.get(reverse("dunning-office:letter-batch-list", args=[batch.public_id]))
    content = b"".join(listing.streaming_content).decode()  # type: ignore[attr-defined]
    assert "RR000000014RO" in content


@pytest.fixture
def company(db: None) -> Customer:
    return make_company("C0300009")
