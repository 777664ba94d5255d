"""Dunning runs that overlap: duplicated beats, reruns while a run is open, killed workers.

Real transactions and threads (each thread has its own database connection).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction

from billing.models import Invoice
from notifications.models import OutboxMessage
from portal.models import Customer
from receivables import dunning, dunning_outbox
from receivables.dunning_models import DunningNotice, DunningNoticeItem
from tests.receivables.dunning_helpers import DUE, make_company, make_policy

pytestmark = pytest.mark.django_db(transaction=True)

Issue = Callable[..., Invoice]
DAY = DUE + timedelta(days=10)


@pytest.fixture
def overdue(customer: Customer, issue: Issue) -> list[Invoice]:
    make_policy()
    company = make_company()
    invoices = [issue(customer, "121.00"), issue(customer, "60.50"), issue(company, "242.00")]
    issue(make_company("C0300004"), "99.00", due=DUE - timedelta(days=1))
    return invoices


def _in_thread(target: Callable[[], Any], results: dict[str, Any], key: str) -> threading.Thread:
    def work() -> None:
        try:
            results[key] = target()
        except Exception as exc:  # reported by the test
            results[key] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def _assert_each_item_noticed_once() -> None:
    pairs = list(DunningNoticeItem.objects.values_list("invoice_id", "level_id"))
    assert len(pairs) == len(set(pairs)) == Invoice.objects.count()
    notices = DunningNotice.objects.all()
    # No notice lost all its items to the other run, and every queued one has its message.
    assert all(notice.items.exists() for notice in notices)
    assert sorted(OutboxMessage.objects.values_list("pk", flat=True)) == sorted(
        notices.values_list("outbox_message_id", flat=True)
    )


def test_a_run_that_selected_before_the_other_committed_adds_no_duplicate(
    overdue: list[Invoice],
) -> None:
    """Without the advisory lock, only the constraints keep the second run from duplicating."""
    first_done = threading.Event()
    results: dict[str, Any] = {}

    def first() -> Any:
        with transaction.atomic():
            run = dunning.run_dunning(day=DAY, lock=False)
            first_done.set()
            time.sleep(1.0)  # the second run selects the same items meanwhile
        return run

    def second() -> Any:
        first_done.wait(10)
        return dunning.run_dunning(day=DAY, lock=False)

    threads = [_in_thread(first, results, "first"), _in_thread(second, results, "second")]
    for thread in threads:
        thread.join(30)

    assert not isinstance(results["first"], Exception), results["first"]
    assert not isinstance(results["second"], Exception), results["second"]
    assert results["first"].notice_count == 3
    assert results["second"].notice_count == 0
    _assert_each_item_noticed_once()


def test_two_runs_started_together_notice_each_item_once(overdue: list[Invoice]) -> None:
    start = threading.Barrier(2)
    results: dict[str, Any] = {}

    def run() -> Any:
        start.wait(10)
        return dunning.run_dunning(day=DAY)

    threads = [_in_thread(run, results, "a"), _in_thread(run, results, "b")]
    for thread in threads:
        thread.join(30)

    counts = sorted(results[key].notice_count for key in ("a", "b"))
    assert counts == [0, 3]
    _assert_each_item_noticed_once()


def test_a_run_killed_half_way_leaves_nothing_and_the_next_one_does_it_all(
    overdue: list[Invoice], monkeypatch: pytest.MonkeyPatch,
) -> None:
    def killed(**kwargs: Any) -> list[int]:
        raise SystemExit("worker killed")

    with monkeypatch.context() as patch:
        patch.setattr(dunning_outbox, "write_messages", killed)
        with pytest.raises(SystemExit):
            dunning.run_dunning(day=DAY)
    assert DunningNotice.objects.count() == 0

    assert dunning.run_dunning(day=DAY).notice_count == 3
    _assert_each_item_noticed_once()

