"""Office pages of billing runs: start, review, issue, progress, print batches, outsiders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import BillingRun, BillingRunStatus, PriceList, PrintBatch, RunExceptionKind
from meters.models import Meter, Reading, ReadingSource, Register, Service, SupplyPoint
from portal.models import Customer, User
from portal.roles import Role

D = Decimal
# Every office page pays for: the session (1), the user (1), their role groups (1),
# their own and their groups' permissions (2) and saving the session (3: savepoint,
# UPDATE, release). The MFA check is remembered in the session after the first page.
OFFICE_OVERHEAD = 8


@pytest.fixture(autouse=True)
def _media_root(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _february() -> Iterator[None]:
    with time_machine.travel(datetime(2026, 2, 5, 9, 0, tzinfo=timezone.get_current_timezone())):
        yield


@pytest.fixture
def clerk(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.BILLING)


@pytest.fixture
def meter_reader(make_staff: Callable[[Role], User]) -> User:
    """Staff of a role that has nothing to do with billing runs."""
    return make_staff(Role.METER_READING)


def _read(register: Register, on: date, value: str) -> None:
    Reading.objects.create(
        register=register, value=D(value), read_on=on, source=ReadingSource.COURIER,
        read_at=timezone.make_aware(datetime(on.year, on.month, on.day, 10)),
    )


@pytest.fixture
def readings(supply_point: SupplyPoint, price_list: PriceList, series: Any) -> Register:
    """The customer's point read 1300 on 31 Dec and 1420 on 31 Jan; a second, unread point."""
    meter = Meter.objects.create(supply_point=supply_point, serial_number="M-1",
                                 installed_on=date(2024, 1, 1))
    register = Register.objects.create(meter=meter, code="1.8.0", name="Total")
    _read(register, date(2025, 12, 31), "1300")
    _read(register, date(2026, 1, 31), "1420")
    SupplyPoint.objects.create(
        customer=supply_point.customer, code="RO005E000000000009", service=Service.ELECTRICITY,
        street="Str. Mică 1", postal_code="010102", city="București",
    )
    return register


def _form(**extra: str) -> dict[str, str]:
    data = {"name": "January 2026", "period_start": "2026-01-01", "period_end": "2026-01-31",
            "service": Service.ELECTRICITY, "customers": ""}
    data.update(extra)
    return data


@pytest.fixture
def run(
    readings: Register, clerk: User, client_for: Callable[[User], Client],
    django_capture_on_commit_callbacks: Any,
) -> BillingRun:
    with django_capture_on_commit_callbacks(execute=True):
        client_for(clerk).post(reverse("billing-office:run-create"), _form())
    return BillingRun.objects.get()


def _urls(run: BillingRun, batch: PrintBatch | None = None) -> list[tuple[str, str]]:
    point = run.exceptions.get().supply_point
    urls = [
        ("get", reverse("billing-office:run-list")),
        ("get", reverse("billing-office:run-create")),
        ("get", reverse("billing-office:run-detail", args=[run.public_id])),
        ("get", reverse("billing-office:run-progress", args=[run.public_id])),
        ("post", reverse("billing-office:run-issue", args=[run.public_id])),
        ("post", reverse("billing-office:run-resume", args=[run.public_id])),
        ("post", reverse("billing-office:point-exclude", args=[run.public_id, point.public_id])),
        ("post", reverse("billing-office:point-reprice", args=[run.public_id, point.public_id])),
    ]
    if batch is not None:
        urls += [("get", reverse("billing-office:batch-pdf", args=[batch.public_id])),
                 ("get", reverse("billing-office:batch-list", args=[batch.public_id]))]
    return urls


def _issued(run: BillingRun, client: Client, capture: Any) -> PrintBatch:
    point = run.exceptions.get().supply_point
    client.post(reverse("billing-office:point-exclude", args=[run.public_id, point.public_id]))
    with capture(execute=True):
        client.post(reverse("billing-office:run-issue", args=[run.public_id]))
    return PrintBatch.objects.get(run=run)


def test_a_customer_finds_no_billing_office_page(
    run: BillingRun, alice: User, clerk: User, client_for: Callable[[User], Client],
    django_capture_on_commit_callbacks: Any,
) -> None:
    batch = _issued(run, client_for(clerk), django_capture_on_commit_callbacks)
    client = client_for(alice)
    for method, url in _urls(run, batch):
        assert getattr(client, method)(url).status_code == 404, url


def test_staff_of_another_role_is_refused_every_billing_run_page(
    run: BillingRun, meter_reader: User, clerk: User, client_for: Callable[[User], Client],
    django_capture_on_commit_callbacks: Any,
) -> None:
    batch = _issued(run, client_for(clerk), django_capture_on_commit_callbacks)
    client = client_for(meter_reader)
    for method, url in _urls(run, batch):
        assert getattr(client, method)(url).status_code == 403, url
    assert run.print_batches.count() == 1


def test_customer_service_may_not_start_or_issue_a_run(
    run: BillingRun, make_staff: Callable[[Role], User], client_for: Callable[[User], Client],
) -> None:
    client = client_for(make_staff(Role.CUSTOMER_SERVICE))
    assert client.post(reverse("billing-office:run-create"), _form()).status_code == 403
    assert client.post(reverse("billing-office:run-issue", args=[run.public_id])).status_code \
        == 403
    assert BillingRun.objects.count() == 1


def test_it_lists_runs_in_a_fixed_number_of_queries(
    run: BillingRun, clerk: User, client_for: Callable[[User], Client],
    django_assert_num_queries: Any,
) -> None:
    BillingRun.objects.create(name="December 2025", period_start=date(2025, 12, 1),
                              period_end=date(2025, 12, 31))
    client = client_for(clerk)
    client.get(reverse("billing-office:run-list"))  # warm the session and permission caches
    # the paginator's count, the page of runs with their invoice count
    with django_assert_num_queries(OFFICE_OVERHEAD + 2):
        response = client.get(reverse("billing-office:run-list"))
    text = response.content.decode()
    assert "January 2026" in text and "December 2025" in text


def test_it_starts_a_run_and_shows_totals_and_problems(
    run: BillingRun, clerk: User, client_for: Callable[[User], Client]
) -> None:
    assert run.status == BillingRunStatus.REVIEW
    response = client_for(clerk).get(reverse("billing-office:run-detail", args=[run.public_id]))
    text = response.content.decode()
    assert "133.10" in text  # 110.00 net + 23.10 VAT
    assert "RO005E000000000009" in text
    assert str(RunExceptionKind.MISSING_READING.label) in text
    assert "Issue and send all invoices" not in text  # a problem is still open


def test_it_keeps_what_was_typed_when_the_period_is_backwards(
    readings: Register, clerk: User, client_for: Callable[[User], Client]
) -> None:
    response = client_for(clerk).post(
        reverse("billing-office:run-create"),
        _form(name="Backwards", period_start="2026-02-01", period_end="2026-01-01"),
    )
    assert response.status_code == 400
    text = response.content.decode()
    assert "The period ends before it starts." in text
    assert 'value="Backwards"' in text
    assert not BillingRun.objects.exists()


def test_it_names_unknown_customer_numbers(
    readings: Register, clerk: User, client_for: Callable[[User], Client], customer: Customer
) -> None:
    response = client_for(clerk).post(
        reverse("billing-office:run-create"), _form(customers=f"{customer.number}, C9999999")
    )
    assert response.status_code == 400
    assert "No customer has the number C9999999." in response.content.decode()


def test_leaving_a_point_out_answers_htmx_with_the_review_fragment(
    run: BillingRun, clerk: User, client_for: Callable[[User], Client]
) -> None:
    point = run.exceptions.get().supply_point
    response = client_for(clerk).post(
        reverse("billing-office:point-exclude", args=[run.public_id, point.public_id]),
        HTTP_HX_REQUEST="true",
    )
    text = response.content.decode()
    assert response.status_code == 200
    assert "<h1>" not in text and 'id="run-review"' in text
    assert "Left out of the run" in text
    assert "Issue and send all invoices" in text


def test_it_issues_from_the_page_and_offers_the_print_batch(
    run: BillingRun, clerk: User, client_for: Callable[[User], Client],
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_for(clerk)
    batch = _issued(run, client, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.status == BillingRunStatus.DONE

    page = client.get(reverse("billing-office:run-detail", args=[run.public_id]))
    text = page.content.decode()
    assert "1 issued, 1 rendered, 1 sent of 1 invoices" in text
    assert reverse("billing-office:batch-pdf", args=[batch.public_id]) in text

    pdf = client.get(reverse("billing-office:batch-pdf", args=[batch.public_id]))
    assert pdf["Content-Type"] == "application/pdf"
    assert b"".join(pdf.streaming_content).startswith(b"%PDF")  # type: ignore[attr-defined]
    listing = client.get(reverse("billing-office:batch-list", args=[batch.public_id]))
    assert "Str. Lalelelor 5" in b"".join(listing.streaming_content).decode()  # type: ignore[attr-defined]


def test_the_progress_poll_costs_two_queries_and_refreshes_when_done(
    run: BillingRun, clerk: User, client_for: Callable[[User], Client],
    django_assert_num_queries: Any,
) -> None:
    BillingRun.objects.filter(pk=run.pk).update(status=BillingRunStatus.ISSUING)
    client = client_for(clerk)
    url = reverse("billing-office:run-progress", args=[run.public_id])
    client.get(url)
    # the run, the progress counts
    with django_assert_num_queries(OFFICE_OVERHEAD + 2):
        response = client.get(url, HTTP_HX_REQUEST="true")
    assert "0 issued, 0 rendered, 0 sent of 1 invoices" in response.content.decode()
    assert 'hx-trigger="every 2s"' in response.content.decode()

    BillingRun.objects.filter(pk=run.pk).update(status=BillingRunStatus.DONE)
    assert client.get(url, HTTP_HX_REQUEST="true")["HX-Refresh"] == "true"


# ---------------------------------------------------------------------------
# The run's invoices, and cancelling a run


def test_the_run_page_lists_its_invoices_in_a_fixed_number_of_queries(
    run: BillingRun, clerk: User, client_for: Callable[[User], Client],
    django_assert_num_queries: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_for(clerk)
    _issued(run, client, django_capture_on_commit_callbacks)
    url = reverse("billing-office:run-detail", args=[run.public_id])
    client.get(url)  # warm the session and permission caches
    # the run, the progress counts, the totals, the problems, the open problems, the print
    # batches, the paginator's count, one page of invoices with customer and supply point
    with django_assert_num_queries(OFFICE_OVERHEAD + 8):
        response = client.get(url)
    text = response.content.decode()
    assert "FV-2026-000001" in text and "RO005E000000000001" in text


def _cancel_url(run: BillingRun) -> str:
    return reverse("billing-office:run-cancel", args=[run.public_id])


def test_a_clerk_cancels_a_run_with_a_reason_and_the_page_says_so(
    run: BillingRun, clerk: User, client_for: Callable[[User], Client]
) -> None:
    client = client_for(clerk)
    page = client.get(reverse("billing-office:run-detail", args=[run.public_id]))
    assert "Cancel the run and delete its drafts" in page.content.decode()

    response = client.post(_cancel_url(run), {"reason": "The January readings came late."},
                           follow=True)

    text = response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("billing-office:run-detail",
                                                     args=[run.public_id])
    assert "The run is cancelled; its draft invoices are deleted." in text
    assert "The January readings came late." in text
    assert "Cancelled before issuing" in text
    assert "Cancel the run and delete its drafts" not in text
    run.refresh_from_db()
    assert run.status == BillingRunStatus.CANCELLED
    assert not run.invoices.exists()


def test_cancelling_answers_htmx_with_a_redirect_to_the_run(
    run: BillingRun, clerk: User, client_for: Callable[[User], Client]
) -> None:
    response = client_for(clerk).post(_cancel_url(run), {"reason": "Duplicate"},
                                      HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == reverse("billing-office:run-detail", args=[run.public_id])
    run.refresh_from_db()
    assert run.status == BillingRunStatus.CANCELLED


def test_it_asks_why_next_to_the_field_and_cancels_nothing(
    run: BillingRun, clerk: User, client_for: Callable[[User], Client]
) -> None:
    response = client_for(clerk).post(_cancel_url(run), {"reason": "  "})
    assert response.status_code == 400
    text = response.content.decode()
    assert '<details class="cancel-run" open>' in text
    assert "This field is required." in text
    run.refresh_from_db()
    assert run.status == BillingRunStatus.REVIEW
    assert run.invoices.count() == 1


def test_it_keeps_a_too_long_reason_and_says_so(
    run: BillingRun, clerk: User, client_for: Callable[[User], Client]
) -> None:
    reason = "Late readings " * 30
    response = client_for(clerk).post(_cancel_url(run), {"reason": reason})
    assert response.status_code == 400
    text = response.content.decode()
    assert "Ensure this value has at most 300 characters" in text
    assert reason.strip() in text
    run.refresh_from_db()
    assert run.status == BillingRunStatus.REVIEW


def test_it_will_not_cancel_a_run_that_is_issuing(
    run: BillingRun, clerk: User, client_for: Callable[[User], Client]
) -> None:
    BillingRun.objects.filter(pk=run.pk).update(status=BillingRunStatus.ISSUING)
    client = client_for(clerk)
    response = client.post(_cancel_url(run), {"reason": "Too late"}, follow=True)
    text = response.content.decode()
    assert "The run is issuing its invoices and can no longer be cancelled." in text
    assert "Cancel the run and delete its drafts" not in text
    run.refresh_from_db()
    assert run.status == BillingRunStatus.ISSUING
    assert run.invoices.count() == 1


def test_a_customer_finds_no_cancel_page(
    run: BillingRun, alice: User, client_for: Callable[[User], Client]
) -> None:
    assert client_for(alice).post(_cancel_url(run), {"reason": "Mine"}).status_code == 404
    run.refresh_from_db()
    assert run.status == BillingRunStatus.REVIEW


@pytest.mark.parametrize("role", [Role.METER_READING, Role.CUSTOMER_SERVICE, Role.ADMINISTRATOR])
def test_staff_without_the_run_permission_may_not_cancel(
    role: Role, run: BillingRun, make_staff: Callable[[Role], User],
    client_for: Callable[[User], Client],
) -> None:
    client = client_for(make_staff(role))
    assert client.post(_cancel_url(run), {"reason": "Not mine"}).status_code == 403
    run.refresh_from_db()
    assert run.status == BillingRunStatus.REVIEW
    assert run.invoices.count() == 1
    if role == Role.ADMINISTRATOR:  # sees runs, but is not offered what it may not do
        page = client.get(reverse("billing-office:run-detail", args=[run.public_id]))
        assert page.status_code == 200
        assert "Cancel the run" not in page.content.decode()


def test_cancelling_only_accepts_post(
    run: BillingRun, clerk: User, client_for: Callable[[User], Client]
) -> None:
    assert client_for(clerk).get(_cancel_url(run)).status_code == 405
    run.refresh_from_db()
    assert run.status == BillingRunStatus.REVIEW


def test_a_reason_missing_from_an_htmx_cancel_comes_back_in_the_review_fragment(
    run: BillingRun, clerk: User, client_for: Callable[[User], Client]
) -> None:
    response = client_for(clerk).post(_cancel_url(run), {"reason": ""}, HTTP_HX_REQUEST="true")
    text = response.content.decode()
    assert response.status_code == 200  # htmx swaps only a successful answer
    assert "<h1>" not in text and 'id="run-review"' in text
    assert "This field is required." in text
    run.refresh_from_db()
    assert run.status == BillingRunStatus.REVIEW
