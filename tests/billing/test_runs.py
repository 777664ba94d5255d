"""Billing runs: pricing from readings, exceptions, issuing in chunks, restarts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.db import connection, transaction
from django.utils import timezone
from pypdf import PdfReader

from billing import pricing, runs, services
from billing.models import (
    BillingRun,
    BillingRunStatus,
    DeliveryChannel,
    Invoice,
    InvoiceDelivery,
    InvoiceLine,
    InvoiceSeries,
    InvoiceStatus,
    PriceList,
    PrintBatch,
    RunExceptionKind,
    TariffAssignment,
)
from meters.models import (
    Meter,
    Reading,
    ReadingSource,
    ReadingStatus,
    Register,
    Service,
    SupplyPoint,
)
from notifications.models import OutboxMessage
from portal.models import AuditEvent, Customer, User
from portal.roles import Role
from portal.services import ServiceError
from tests.conftest import make_customer

D = Decimal
PERIOD = (date(2026, 1, 1), date(2026, 1, 31))


@pytest.fixture(autouse=True)
def _media_root(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _february() -> Iterator[None]:
    with time_machine.travel(datetime(2026, 2, 5, 9, 0, tzinfo=timezone.get_current_timezone())):
        yield


def read(register: Register, on: date, value: str, *, status: str = ReadingStatus.ACCEPTED,
         source: str = ReadingSource.COURIER) -> Reading:
    return Reading.objects.create(
        register=register, value=D(value), read_on=on, status=status, source=source,
        read_at=timezone.make_aware(datetime(on.year, on.month, on.day, 10)),
    )


def equip(point: SupplyPoint, serial: str) -> Register:
    meter = Meter.objects.create(supply_point=point, serial_number=serial,
                                 installed_on=date(2024, 1, 1))
    return Register.objects.create(meter=meter, code="1.8.0", name="Total")


def another_point(customer: Customer, code: str, price_list: PriceList) -> SupplyPoint:
    point = SupplyPoint.objects.create(
        customer=customer, code=code, service=Service.ELECTRICITY, street="ul. Długa 1",
        postal_code="31-147", city="Kraków",
    )
    TariffAssignment.objects.create(supply_point=point, price_list=price_list,
                                    valid_from=date(2024, 1, 1))
    return point


@pytest.fixture
def billing_clerk(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.BILLING)


@pytest.fixture
def scene(
    customer: Customer, other_customer: Customer, supply_point: SupplyPoint,
    price_list: PriceList, series: Any,
) -> dict[str, Any]:
    """Four electricity points for January 2026.

    read       customer's point (e-billing): read 1300 on 31 Dec, 1420 on 31 Jan → 120 kWh
    estimated  other customer's (paper): 500 on 1 Sep, 800 on 31 Dec, nothing in January
    unread     other customer's: a meter that was never read
    flagged    a third customer's: a reading in January waits for review
    """
    customer.consent_ebilling = True
    customer.save()
    reg = equip(supply_point, "M-1")
    read(reg, date(2025, 10, 1), "1000")
    read(reg, date(2025, 12, 31), "1300")
    read(reg, date(2026, 1, 31), "1420")

    estimated = another_point(other_customer, "RO005E000000000002", price_list)
    reg2 = equip(estimated, "M-2")
    read(reg2, date(2025, 9, 1), "500")
    read(reg2, date(2025, 12, 31), "800")

    unread = another_point(other_customer, "RO005E000000000003", price_list)
    equip(unread, "M-3")

    third = make_customer("C0300003", last_name="Ionescu", email="ion@example.com")
    flagged = another_point(third, "RO005E000000000004", price_list)
    reg4 = equip(flagged, "M-4")
    read(reg4, date(2025, 12, 31), "100")
    read(reg4, date(2026, 1, 20), "9000", status=ReadingStatus.FLAGGED)
    return {"read": supply_point, "estimated": estimated, "unread": unread,
            "flagged": flagged, "estimated_register": reg2}


def start(by: User | None, **extra: Any) -> BillingRun:
    arguments: dict[str, Any] = {
        "name": "January 2026", "period_start": PERIOD[0], "period_end": PERIOD[1],
        "service": Service.ELECTRICITY, "customers": [], "created_by": by,
    }
    arguments.update(extra)
    return runs.start_run(**arguments)


def priced_run(
    django_capture_on_commit_callbacks: Any, by: User | None, **extra: Any
) -> BillingRun:
    with django_capture_on_commit_callbacks(execute=True):
        run = start(by, **extra)
    run.refresh_from_db()
    return run


def issue(django_capture_on_commit_callbacks: Any, run: BillingRun, by: User | None) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        runs.issue_all(run=run, by=by)
    run.refresh_from_db()


def test_it_prices_a_run_from_readings_with_an_estimate_and_exceptions(
    scene: dict[str, Any], billing_clerk: User, django_capture_on_commit_callbacks: Any
) -> None:
    run = priced_run(django_capture_on_commit_callbacks, billing_clerk)

    assert run.status == BillingRunStatus.REVIEW
    assert run.supply_point_count == 4
    drafts = {i.supply_point_id: i for i in run.invoices.all()}
    assert set(drafts) == {scene["read"].pk, scene["estimated"].pk}
    assert all(i.status == InvoiceStatus.DRAFT for i in drafts.values())

    # 120 kWh: 100 at 0.80 and 20 at 0.90 (monthly tiers), 12.00 standing; VAT 21 %.
    first = drafts[scene["read"].pk]
    assert (first.net_total, first.vat_total, first.gross_total) == (
        D("110.00"), D("23.10"), D("133.10"))
    energy = first.lines.get(position=1)
    assert energy.register is not None and energy.register.meter.serial_number == "M-1"
    assert energy.start_reading is not None and energy.end_reading is not None
    assert (energy.start_reading.value, energy.end_reading.value) == (D("1300"), D("1420"))
    assert first.lines.get(description="Standing charge").register is None

    # No January reading: estimated on 31 Jan from 300 over 121 days → 77 kWh.
    estimate = Reading.objects.get(register=scene["estimated_register"], read_on=PERIOD[1])
    assert estimate.source == ReadingSource.ESTIMATED
    assert estimate.value == D("877")
    second = drafts[scene["estimated"].pk]
    assert second.lines.get(position=1).end_reading == estimate
    assert second.lines.get(position=1).quantity == D("77.000")

    problems = {(e.supply_point_id, e.kind) for e in run.exceptions.all()}
    assert problems == {
        (scene["unread"].pk, RunExceptionKind.MISSING_READING),
        (scene["flagged"].pk, RunExceptionKind.FLAGGED_READING),
    }
    (total,) = runs.totals(run)
    assert (total.currency, total.count, total.gross) == ("RON", 2, first.gross_total
                                                          + second.gross_total)


def test_it_refuses_to_issue_while_exceptions_are_open(
    scene: dict[str, Any], billing_clerk: User, django_capture_on_commit_callbacks: Any
) -> None:
    run = priced_run(django_capture_on_commit_callbacks, billing_clerk)
    with pytest.raises(ServiceError, match="2 left"):
        runs.issue_all(run=run, by=billing_clerk)
    assert not Invoice.objects.issued().exists()


def test_it_reprices_a_point_once_its_reading_was_reviewed(
    scene: dict[str, Any], billing_clerk: User, django_capture_on_commit_callbacks: Any
) -> None:
    run = priced_run(django_capture_on_commit_callbacks, billing_clerk)
    Reading.objects.filter(status=ReadingStatus.FLAGGED).update(status=ReadingStatus.ACCEPTED)

    outcome = runs.reprice(run=run, supply_point=scene["flagged"], by=billing_clerk)

    assert (outcome.invoices, outcome.exceptions) == (1, 0)
    assert not run.exceptions.filter(supply_point=scene["flagged"]).exists()
    invoice = run.invoices.get(supply_point=scene["flagged"])
    # The reviewed reading of 20 January ends the period: no estimate is needed.
    end_reading = invoice.lines.get(position=1).end_reading
    assert end_reading is not None and end_reading.value == D("9000")


def test_it_issues_renders_and_delivers_a_whole_run(
    scene: dict[str, Any], billing_clerk: User, django_capture_on_commit_callbacks: Any,
    customer: Customer, other_customer: Customer,
) -> None:
    run = priced_run(django_capture_on_commit_callbacks, billing_clerk)
    for point in (scene["unread"], scene["flagged"]):
        runs.exclude(run=run, supply_point=point, by=billing_clerk)

    issue(django_capture_on_commit_callbacks, run, billing_clerk)

    assert run.status == BillingRunStatus.DONE
    invoices = list(run.invoices.order_by("number"))
    assert [i.document_number for i in invoices] == ["FV-2026-000001", "FV-2026-000002"]
    assert all(i.issue_date == date(2026, 2, 5) and i.pdf and i.payment_reference.startswith("RF")
               for i in invoices)
    by_customer = {i.customer_id: i for i in invoices}

    # E-billing: one e-mail with the stored PDF attached and a portal link.
    emailed = by_customer[customer.pk]
    (message,) = OutboxMessage.objects.filter(kind="invoice")
    assert message.to == customer.email
    assert message.attachments == [{"name": f"{emailed.document_number}.pdf",
                                    "path": emailed.pdf.name,
                                    "content_type": "application/pdf"}]
    assert f"/invoices/{emailed.public_id}/" in message.body_text
    assert emailed.delivery.channel == DeliveryChannel.EMAIL

    # Paper: the other customer's invoice in one print batch with its address.
    posted = by_customer[other_customer.pk]
    (batch,) = PrintBatch.objects.filter(run=run)
    assert posted.delivery.print_batch == batch
    assert (batch.item_count, batch.page_count % 2) == (1, 0)
    with batch.merged_pdf.open("rb") as fh:
        assert len(PdfReader(fh).pages) == batch.page_count
    with batch.list_csv.open("rb") as fh:
        listing = fh.read().decode()
    # The letter goes to the customer's billing address.
    assert f"{posted.document_number},{other_customer.number},Kowalski Sp. z o.o." in listing
    assert "Kraków,PL" in listing

    progress = runs.progress(run)
    assert (progress.total, progress.issued, progress.rendered, progress.delivered) == (2, 2, 2, 2)
    assert (progress.email, progress.paper) == (1, 1)
    assert runs.postage_saved(progress) == D("2.50")


def test_a_rerun_of_the_issue_task_issues_and_sends_nothing_twice(
    scene: dict[str, Any], billing_clerk: User, django_capture_on_commit_callbacks: Any
) -> None:
    run = priced_run(django_capture_on_commit_callbacks, billing_clerk)
    for point in (scene["unread"], scene["flagged"]):
        runs.exclude(run=run, supply_point=point, by=billing_clerk)
    issue(django_capture_on_commit_callbacks, run, billing_clerk)
    before = list(run.invoices.values_list("pk", "number", "pdf", "payment_reference"))

    # The task comes again (redelivered after a lost worker, or a second click).
    ids = list(run.invoices.values_list("pk", flat=True))
    BillingRun.objects.filter(pk=run.pk).update(status=BillingRunStatus.ISSUING)
    run.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        runs.process_chunk(run=run, invoice_ids=ids)
        runs.queue_chunks(run=run)

    assert list(run.invoices.values_list("pk", "number", "pdf", "payment_reference")) == before
    assert OutboxMessage.objects.filter(kind="invoice").count() == 1
    assert InvoiceDelivery.objects.count() == 2
    assert PrintBatch.objects.count() == 1


def test_a_chunk_killed_midway_leaves_no_gap_and_no_duplicate_when_rerun(
    price_list: PriceList, series: Any, billing_clerk: User,
    django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch, settings: Any,
) -> None:
    settings.BILLING_RUN_CHUNK_SIZE = 3
    owners = []
    for n in range(5):
        owner = make_customer(f"C09{n:05d}", email=f"p{n}@example.com", consent_ebilling=True)
        owners.append(owner)
        point = another_point(owner, f"RO005E00000000010{n}", price_list)
        reg = equip(point, f"K-{n}")
        read(reg, date(2025, 12, 31), "100")
        read(reg, date(2026, 1, 31), str(150 + n))
    run = priced_run(django_capture_on_commit_callbacks, billing_clerk, customers=owners)
    assert run.invoices.count() == 5

    # The worker dies while rendering the second invoice of the first chunk.
    from billing import documents

    real_store = documents.store_invoice_pdf
    calls = {"n": 0}

    def dying_store(invoice: Invoice) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise SystemExit("worker killed")
        real_store(invoice)

    monkeypatch.setattr(documents, "store_invoice_pdf", dying_store)
    with pytest.raises(SystemExit), django_capture_on_commit_callbacks(execute=True):
        runs.issue_all(run=run, by=billing_clerk)
    run.refresh_from_db()
    assert run.status == BillingRunStatus.ISSUING
    # The first chunk was issued together (numbers 1-3), then its first invoice went out.
    assert run.invoices.issued().count() == 3
    assert InvoiceDelivery.objects.count() == 1

    # The task is delivered again: the run finishes.
    monkeypatch.setattr(documents, "store_invoice_pdf", real_store)
    with django_capture_on_commit_callbacks(execute=True):
        runs.resume(run=run)
    run.refresh_from_db()

    assert run.status == BillingRunStatus.DONE
    assert sorted(n or 0 for n in run.invoices.values_list("number", flat=True)) == [1, 2, 3, 4, 5]
    assert OutboxMessage.objects.filter(kind="invoice").count() == 5
    assert InvoiceDelivery.objects.filter(channel=DeliveryChannel.EMAIL).count() == 5
    assert all(invoice.pdf for invoice in run.invoices.all())


def test_it_does_not_invoice_a_point_twice_for_the_same_period(
    scene: dict[str, Any], billing_clerk: User, django_capture_on_commit_callbacks: Any
) -> None:
    first = priced_run(django_capture_on_commit_callbacks, billing_clerk)
    for point in (scene["unread"], scene["flagged"]):
        runs.exclude(run=first, supply_point=point, by=billing_clerk)
    issue(django_capture_on_commit_callbacks, first, billing_clerk)

    second = priced_run(django_capture_on_commit_callbacks, billing_clerk)

    assert not second.invoices.exists()
    assert set(second.exceptions.values_list("supply_point_id", "kind")) >= {
        (scene["read"].pk, RunExceptionKind.ALREADY_INVOICED),
        (scene["estimated"].pk, RunExceptionKind.ALREADY_INVOICED),
    }


def test_it_starts_a_run_for_chosen_customers_only(
    scene: dict[str, Any], billing_clerk: User, customer: Customer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        run = start(billing_clerk, service="", customers=[customer])
    run.refresh_from_db()
    assert run.supply_point_count == 1
    assert list(run.invoices.values_list("supply_point_id", flat=True)) == [scene["read"].pk]


def test_it_refuses_a_run_that_matches_no_supply_point(
    series: Any, billing_clerk: User
) -> None:
    with pytest.raises(ServiceError, match="No supply point"):
        start(billing_clerk, service=Service.WATER)
    assert not BillingRun.objects.exists()


# ---------------------------------------------------------------------------
# Cancelling a run before it issues


def _audit_of_cancel(run: BillingRun) -> AuditEvent:
    return AuditEvent.objects.get(action="billing.run_cancelled", object_id=str(run.pk))


def test_it_cancels_a_run_under_review_and_deletes_its_drafts_and_estimates(
    scene: dict[str, Any], billing_clerk: User, django_capture_on_commit_callbacks: Any
) -> None:
    run = priced_run(django_capture_on_commit_callbacks, billing_clerk)
    estimate = Reading.objects.get(register=scene["estimated_register"], read_on=PERIOD[1])

    runs.cancel(run=run, reason="  Wrong price list for January.  ", by=billing_clerk)

    run.refresh_from_db()
    assert run.status == BillingRunStatus.CANCELLED
    assert not Invoice.objects.filter(billing_run=run).exists()
    assert not InvoiceLine.objects.exists()
    # The estimate only the drafts used goes with them: a courier may still read that day.
    assert not Reading.objects.filter(pk=estimate.pk).exists()
    event = _audit_of_cancel(run)
    assert (event.actor, event.note) == (billing_clerk, "Wrong price list for January.")
    assert event.before == {"status": "review"}
    assert event.after == {"status": "cancelled", "drafts_deleted": 2, "estimates_deleted": 1}
    assert runs.cancellation(run) == event
    # Nothing can be done with it any more.
    with pytest.raises(ServiceError, match="only a run under review"):
        runs.issue_all(run=run, by=billing_clerk)
    with pytest.raises(ServiceError, match="cancelled already"):
        runs.cancel(run=run, reason="Again", by=billing_clerk)


def test_cancelling_keeps_an_estimate_a_later_reading_follows(
    scene: dict[str, Any], billing_clerk: User, django_capture_on_commit_callbacks: Any
) -> None:
    run = priced_run(django_capture_on_commit_callbacks, billing_clerk)
    estimate = Reading.objects.get(register=scene["estimated_register"], read_on=PERIOD[1])
    # The next reading's consumption counts from the estimate: it stays.
    read(scene["estimated_register"], date(2026, 2, 3), "900")

    runs.cancel(run=run, reason="Wrong period", by=billing_clerk)

    assert Reading.objects.filter(pk=estimate.pk).exists()
    assert _audit_of_cancel(run).after["estimates_deleted"] == 0


def test_cancelling_never_deletes_an_issued_invoice(
    scene: dict[str, Any], billing_clerk: User, django_capture_on_commit_callbacks: Any
) -> None:
    run = priced_run(django_capture_on_commit_callbacks, billing_clerk)
    draft = run.invoices.get(supply_point=scene["read"])
    issued = services.issue_invoice(invoice=draft, issued_by=billing_clerk)

    runs.cancel(run=run, reason="Started twice", by=billing_clerk)

    assert list(Invoice.objects.filter(billing_run=run)) == [issued]
    assert issued.lines.count() == 3


@pytest.mark.parametrize("issued", [False, True], ids=["issuing", "done"])
def test_it_refuses_to_cancel_a_run_once_issuing_started(
    issued: bool, scene: dict[str, Any], billing_clerk: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    run = priced_run(django_capture_on_commit_callbacks, billing_clerk)
    for point in (scene["unread"], scene["flagged"]):
        runs.exclude(run=run, supply_point=point, by=billing_clerk)
    if issued:
        issue(django_capture_on_commit_callbacks, run, billing_clerk)
    else:
        runs.issue_all(run=run, by=billing_clerk)  # the issuing tasks are still queued
    before = list(run.invoices.values_list("pk", "status"))

    message = "credit notes" if issued else "issuing its invoices and can no longer be cancelled"
    with pytest.raises(ServiceError, match=message):
        runs.cancel(run=run, reason="Too late", by=billing_clerk)

    run.refresh_from_db()
    assert run.status == (BillingRunStatus.DONE if issued else BillingRunStatus.ISSUING)
    assert list(run.invoices.values_list("pk", "status")) == before
    assert not AuditEvent.objects.filter(action="billing.run_cancelled").exists()


def test_it_wants_a_reason_to_cancel(
    scene: dict[str, Any], billing_clerk: User, django_capture_on_commit_callbacks: Any
) -> None:
    run = priced_run(django_capture_on_commit_callbacks, billing_clerk)
    with pytest.raises(ServiceError, match="Say why"):
        runs.cancel(run=run, reason="   ", by=billing_clerk)
    run.refresh_from_db()
    assert run.status == BillingRunStatus.REVIEW
    assert run.invoices.count() == 2


def test_a_run_cancelled_while_pricing_prices_no_further_batch(
    scene: dict[str, Any], billing_clerk: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs, "PRICING_BATCH", 1)
    run = start(billing_clerk)  # the pricing task is queued, not run
    assert run.status == BillingRunStatus.PRICING

    runs.cancel(run=run, reason="Wrong period", by=billing_clerk)
    # The task had loaded the run before staff cancelled it.
    runs.price_run(run=run)

    run.refresh_from_db()
    assert run.status == BillingRunStatus.CANCELLED
    assert not run.invoices.exists()
    assert not run.exceptions.exists()


# ---------------------------------------------------------------------------
# Supply points the last run did not invoice


def _invoice_count(point: SupplyPoint) -> int:
    return Invoice.objects.filter(supply_point=point, period_start=PERIOD[0]).count()


def test_a_point_left_out_is_priced_by_the_next_run_and_an_invoiced_one_is_not(
    scene: dict[str, Any], billing_clerk: User, django_capture_on_commit_callbacks: Any
) -> None:
    first = priced_run(django_capture_on_commit_callbacks, billing_clerk)
    for point in (scene["unread"], scene["flagged"]):
        runs.exclude(run=first, supply_point=point, by=billing_clerk)
    issue(django_capture_on_commit_callbacks, first, billing_clerk)
    numbers = dict(first.invoices.values_list("supply_point_id", "document_number"))
    # Meanwhile the unread meter was read and the flagged reading reviewed.
    register = Register.objects.get(meter__supply_point=scene["unread"])
    read(register, date(2025, 12, 31), "40")
    read(register, date(2026, 1, 31), "95")
    Reading.objects.filter(status=ReadingStatus.FLAGGED).update(status=ReadingStatus.ACCEPTED)

    second = priced_run(django_capture_on_commit_callbacks, billing_clerk, name="January, late")

    assert set(second.invoices.values_list("supply_point_id", flat=True)) == {
        scene["unread"].pk, scene["flagged"].pk}
    assert second.invoices.get(supply_point=scene["unread"]).lines.get(position=1).quantity \
        == D("55")
    problems = {e.supply_point_id: e for e in second.exceptions.all()}
    assert set(problems) == {scene["read"].pk, scene["estimated"].pk}
    for point_id, problem in problems.items():
        assert problem.kind == RunExceptionKind.ALREADY_INVOICED
        assert numbers[point_id] in problem.message
    assert [_invoice_count(scene[name]) for name in ("read", "estimated", "unread", "flagged")] \
        == [1, 1, 1, 1]


def test_the_points_of_a_cancelled_run_are_priced_by_the_next_run(
    scene: dict[str, Any], billing_clerk: User, django_capture_on_commit_callbacks: Any
) -> None:
    first = priced_run(django_capture_on_commit_callbacks, billing_clerk)
    runs.cancel(run=first, reason="Wrong period", by=billing_clerk)

    second = priced_run(django_capture_on_commit_callbacks, billing_clerk, name="January, again")

    assert set(second.invoices.values_list("supply_point_id", flat=True)) == {
        scene["read"].pk, scene["estimated"].pk}
    assert set(second.exceptions.values_list("kind", flat=True)) == {
        RunExceptionKind.MISSING_READING, RunExceptionKind.FLAGGED_READING}
    # Estimated again, as the first time (the first estimate went with the cancel).
    (estimate,) = Reading.objects.filter(register=scene["estimated_register"],
                                         source=ReadingSource.ESTIMATED)
    assert estimate.value == D("877")
    assert second.invoices.get(supply_point=scene["estimated"]).lines.get(position=1) \
        .end_reading == estimate


def test_a_draft_of_another_open_run_keeps_the_point_out_of_a_new_run(
    scene: dict[str, Any], billing_clerk: User, django_capture_on_commit_callbacks: Any
) -> None:
    priced_run(django_capture_on_commit_callbacks, billing_clerk)  # under review

    second = priced_run(django_capture_on_commit_callbacks, billing_clerk, name="January bis")

    assert not second.invoices.exists()
    already = second.exceptions.filter(kind=RunExceptionKind.ALREADY_INVOICED)
    assert set(already.values_list("supply_point_id", flat=True)) == {
        scene["read"].pk, scene["estimated"].pk}
    assert all("The run “January 2026” has a draft invoice" in e.message for e in already)


@pytest.mark.django_db(transaction=True)
def test_two_runs_pricing_the_same_point_at_once_invoice_it_once(
    scene: dict[str, Any], billing_clerk: User
) -> None:
    def pricing_run(name: str) -> BillingRun:
        return BillingRun.objects.create(
            name=name, period_start=PERIOD[0], period_end=PERIOD[1],
            service=Service.ELECTRICITY, status=BillingRunStatus.PRICING,
        )

    first, second = pricing_run("January"), pricing_run("January, by a colleague")
    point, series = scene["read"], InvoiceSeries.objects.get(code="FV")
    started = threading.Event()
    outcomes: list[runs.PricingOutcome] = []
    errors: list[BaseException] = []

    def price_second() -> None:
        try:
            connection.ensure_connection()
            started.set()
            with transaction.atomic():
                outcomes.append(runs.price_supply_points(
                    run=second, supply_point_ids=[point.pk], vat=pricing.load_vat_table(),
                    series=series,
                ))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    colleague = threading.Thread(target=price_second)
    with transaction.atomic():
        runs.price_supply_points(run=first, supply_point_ids=[point.pk],
                                 vat=pricing.load_vat_table(), series=series)
        colleague.start()
        started.wait(timeout=10)
        colleague.join(timeout=1)
        assert colleague.is_alive()  # waits for the first run's drafts
    colleague.join(timeout=30)

    assert errors == []
    assert [(o.invoices, o.exceptions) for o in outcomes] == [(0, 1)]
    assert list(Invoice.objects.values_list("billing_run__name", flat=True)) == ["January"]
    assert second.exceptions.get().kind == RunExceptionKind.ALREADY_INVOICED
