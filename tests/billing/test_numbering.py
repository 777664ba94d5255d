"""Gapless numbers per series and year, also when many issue at once."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection, transaction

from billing import services
from billing.models import Invoice, InvoiceSeries, NumberCounter, SeriesKind
from billing.numbering import format_number, next_number
from portal.models import Customer
from tests.billing.conftest import MakeDraft

D = Decimal


def test_it_formats_numbers_with_prefix_year_and_padding() -> None:
    assert format_number("FV", 2026, 123) == "FV-2026-000123"
    assert format_number("CN", 2027, 7, padding=4) == "CN-2027-0007"


@pytest.mark.django_db
def test_it_counts_per_series_and_year(series: dict[str, InvoiceSeries]) -> None:
    invoices, credits = series[SeriesKind.INVOICE], series[SeriesKind.CREDIT_NOTE]
    with transaction.atomic():
        taken = [next_number(invoices, 2026), next_number(invoices, 2026),
                 next_number(credits, 2026), next_number(invoices, 2027)]
    assert taken == [1, 2, 1, 1]
    assert NumberCounter.objects.get(series=invoices, year=2026).last == 2


@pytest.mark.django_db(transaction=True)
def test_it_refuses_to_number_outside_a_transaction(series: dict[str, InvoiceSeries]) -> None:
    # Outside the issuing transaction a crash after numbering would leave a gap.
    with pytest.raises(RuntimeError):
        next_number(series[SeriesKind.INVOICE], 2026)


@pytest.mark.django_db
def test_it_gives_a_number_back_when_the_issuing_transaction_rolls_back(
    series: dict[str, InvoiceSeries],
) -> None:
    invoices = series[SeriesKind.INVOICE]
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        next_number(invoices, 2026)
        1 / 0  # noqa: B018 - the issue fails after numbering
    with transaction.atomic():
        assert next_number(invoices, 2026) == 1


@pytest.mark.django_db(transaction=True)
def test_it_numbers_concurrent_issues_without_gap_or_duplicate(
    customer: Customer, make_draft: MakeDraft,
) -> None:
    threads_count, per_thread = 10, 4
    total = threads_count * per_thread
    drafts = [make_draft(customer, [("10.00", "19")]) for _ in range(total)]
    barrier = threading.Barrier(threads_count)
    errors: list[BaseException] = []

    def issue(invoices: list[Invoice]) -> None:
        try:
            connection.ensure_connection()  # connect first, so all start issuing together
            barrier.wait(timeout=30)
            for invoice in invoices:
                services.issue_invoice(
                    invoice=invoice, issued_by=None, issue_date=date(2026, 3, 1)
                )
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=issue, args=(drafts[n::threads_count],))
        for n in range(threads_count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    numbers = list(Invoice.objects.order_by("number").values_list("number", flat=True))
    assert numbers == list(range(1, total + 1))
    assert Invoice.objects.get(number=total).document_number == "FV-2026-000040"
    assert NumberCounter.objects.get().last == total
