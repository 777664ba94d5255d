"""The nightly dunning run over a night's overdue items.

    python bench/dunning_run.py --overdue 100000

Creates a fresh database on the configured (or embedded) PostgreSQL server,
migrates it and seeds it with COPY: customers (a tenth of them companies,
most with an e-mail address, many with a mobile number, in the five
languages), ``--overdue`` open invoices due between 3 days from now and 40
days ago (a tenth of them partly paid, with their payments and allocations),
twice as many paid invoices, the default policy of four levels (SMS before
the due date, e-mail after 7 days, then two levels that need approval, with
fees and B2B interest) and the statutory interest rates.

Then it times ``run_dunning`` for today: select the items set-wise, decide
the level, group them into notices, compute fees and interest, queue the
e-mails and SMS (rendered texts COPYed into the outbox) and publish their
delivery tasks. The tasks go to a Redis database of the bench's own and are
purged afterwards: nothing is sent. An immediate second run must queue 0.
Prints one JSON line:

seconds               the first run: select, decide and queue a night's notices
cpu_seconds           the CPU it used here and in its database backend (db_cpu_seconds);
                      a busy machine's wall-clock seconds also count the waiting for a core
notices / items       what it created; queued = e-mail and SMS written to the outbox
pending_approval      notices waiting in the approval queue
second_run_seconds    the immediate rerun
second_run_queued     notices the rerun queued (must be 0)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "bench_dunning_run"
BROKER_DB = 10
LANGUAGES = ("en", "ro", "pl", "it", "sk")
BATCH = 50_000


def setup(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()


def copy_rows(model: Any, rows: Iterable[dict[str, Any]]) -> int:
    """COPY rows (attname → value) into the model's table; other columns get their defaults."""
    from django.db import connection, models
    from django.utils import timezone
    from psycopg.types.json import Jsonb

    now = timezone.now()
    fields = [
        f for f in model._meta.concrete_fields
        if not f.primary_key and not isinstance(f, models.GeneratedField)
    ]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = f"COPY {model._meta.db_table} ({columns}) FROM STDIN"

    def default(field: Any) -> Any:
        if field.has_default():
            return field.get_default()
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            return now
        return None if field.null else ""

    count = 0
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            values = []
            for field in fields:
                value = row[field.attname] if field.attname in row else default(field)
                if isinstance(value, dict | list):
                    value = Jsonb(value)
                values.append(value)
            copy.write_row(values)
            count += 1
    return count


def seed(overdue: int, today: date) -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    from billing.models import Invoice, InvoiceSeries, SeriesKind
    from portal.models import Customer
    from receivables.dunning_models import (
        DunningChannel,
        DunningLevel,
        DunningPolicy,
        InterestRate,
    )
    from receivables.models import Allocation, Payment

    D = Decimal
    now = timezone.now()
    policy = DunningPolicy.objects.create(name="Standard", is_default=True,
                                          minimum_amount=D("5.00"))
    for sequence, name, days, channel, extra in (
        (1, "Courtesy reminder", -3, DunningChannel.SMS, {}),
        (2, "First reminder", 7, DunningChannel.EMAIL, {}),
        (3, "Second reminder", 21, DunningChannel.EMAIL,
         {"fee": D("5.00"), "charge_interest": True, "interest_kind": "b2b_statutory",
          "compensation": D("40.00"), "needs_approval": True}),
        (4, "Final notice", 35, DunningChannel.REGISTERED_LETTER,
         {"fee": D("10.00"), "charge_interest": True, "interest_kind": "b2b_statutory",
          "compensation": D("40.00"), "needs_approval": True}),
    ):
        DunningLevel.objects.create(policy=policy, sequence=sequence, name=name,
                                    days_after_due=days, channel=channel, **extra)
    InterestRate.objects.create(kind="b2b_statutory", rate=D("12.00"),
                                valid_from=today - timedelta(days=365),
                                valid_to=today - timedelta(days=20))
    InterestRate.objects.create(kind="b2b_statutory", rate=D("11.50"),
                                valid_from=today - timedelta(days=19))
    series = InvoiceSeries.objects.create(code="FV", prefix="FV", kind=SeriesKind.INVOICE,
                                          is_default=True)

    customer_count = max(1, overdue * 4 // 5)

    def customers() -> Iterator[dict[str, Any]]:
        for n in range(customer_count):
            company = n % 10 == 0
            yield {
                "public_id": uuid.uuid4(), "number": f"D{n:08d}",
                "kind": "company" if company else "person",
                "first_name": "" if company else "Ana", "last_name": "" if company else f"B{n}",
                "company_name": f"Firma {n} SRL" if company else "",
                "street": f"Str. Bench {n}", "postal_code": f"{10000 + n % 900:06d}",
                "city": "București", "country": "RO", "language": LANGUAGES[n % 5],
                "email": f"d{n}@bench.example" if n % 20 else "",
                "mobile": f"+40721{n:06d}" if n % 5 < 3 else "",
                "created_at": now, "updated_at": now, "search_text": "",
            }

    with transaction.atomic():
        copy_rows(Customer, customers())
        first_customer = Customer.objects.order_by("pk").values_list("pk", flat=True)[0]

        def invoices() -> Iterator[dict[str, Any]]:
            # The overdue items, then twice as many paid ones.
            for n in range(overdue * 3):
                number = n + 1
                is_open = n < overdue
                days_late = n % 44 - 3 if is_open else 30 + n % 300
                due = today - timedelta(days=days_late)
                issue_date = due - timedelta(days=14)
                gross = D(40 + n % 400) + D("0.21")
                net = (gross / D("1.21")).quantize(D("0.01"))
                status = "paid"
                if is_open:
                    status = "partly_paid" if n % 10 == 0 else "issued"
                yield {
                    "public_id": uuid.uuid4(), "kind": "invoice", "series_id": series.pk,
                    "number": number,
                    "document_number": f"FV-{issue_date.year}-{number:07d}",
                    "customer_id": first_customer + n % customer_count,
                    "issue_date": issue_date, "due_date": due, "status": status,
                    "currency": "EUR", "net_total": net, "vat_total": gross - net,
                    "gross_total": gross, "prepaid_amount": D("0.00"), "amount_due": gross,
                    "payment_reference": f"RF{number:020d}"[:25], "issued_at": now,
                    "created_at": now, "updated_at": now,
                }

        copy_rows(Invoice, invoices())
        partly = list(
            Invoice.objects.filter(status="partly_paid").values_list("pk", "customer_id")
        )
        copy_rows(Payment, (
            {"public_id": uuid.uuid4(), "channel": "bank", "kind": "payment", "source": "bench",
             "txn_id": f"P{pk}", "customer_id": customer_id, "booking_date": today,
             "amount": D("10.00"), "fee": D("0.00"), "currency": "EUR",
             "match_method": "reference", "unallocated": D("0.00"), "created_at": now}
            for pk, customer_id in partly
        ))
        payments = dict(Payment.objects.values_list("txn_id", "pk"))
        copy_rows(Allocation, (
            {"payment_id": payments[f"P{pk}"], "invoice_id": pk, "amount": D("10.00"),
             "method": "reference", "created_at": now}
            for pk, _customer in partly
        ))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def _cpu(process: Any) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def bench_broker_url(url: str) -> str:
    if url.startswith("redis+socket://"):
        return url.partition("?")[0] + f"?virtual_host={BROKER_DB}"
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path=f"/{BROKER_DB}"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--overdue", type=int, default=100_000)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ["GUICHET_ENV"] = "development"
    os.environ["MEDIA_ROOT"] = str(ROOT / "var" / "bench-media")
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
    from portal import embedded

    base_url = os.environ.get("DATABASE_URL") or embedded.postgres_uri()
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    from urllib.parse import urlsplit, urlunsplit

    database_url = urlunsplit(urlsplit(base_url)._replace(path=f"/{DB_NAME}"))
    setup(database_url)

    import psutil
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from notifications.models import OutboxMessage
    from portal.celery import app
    from receivables import dunning
    from receivables.dunning_models import DunningNotice

    call_command("migrate", verbosity=0)
    today = timezone.localdate()
    seed(args.overdue, today)

    # Delivery tasks go to a broker database of their own and are purged: nothing is sent.
    app.conf.broker_url = bench_broker_url(settings.CELERY_BROKER_URL)  # type: ignore[misc]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend_pid,) = cursor.fetchone()  # type: ignore[misc]
    backend, this = psutil.Process(backend_pid), psutil.Process()
    try:
        cpu_before = (_cpu(backend), _cpu(this))
        started = time.perf_counter()
        run = dunning.run_dunning(day=today)
        seconds = time.perf_counter() - started
        db_cpu, python_cpu = _cpu(backend) - cpu_before[0], _cpu(this) - cpu_before[1]
        started = time.perf_counter()
        second = dunning.run_dunning(day=today)
        second_seconds = time.perf_counter() - started
    finally:
        app.control.purge()

    assert OutboxMessage.objects.count() == run.queued_count
    assert DunningNotice.objects.count() == run.notice_count
    print(json.dumps({
        "overdue": args.overdue,
        "seconds": round(seconds, 2),
        # CPU the run used (this process and its database backend): on a busy machine the
        # wall-clock seconds also count the time it waited for a core.
        "cpu_seconds": round(db_cpu + python_cpu, 2),
        "db_cpu_seconds": round(db_cpu, 2),
        "load_average": round(os.getloadavg()[0], 1),
        "notices": run.notice_count,
        "items": run.item_count,
        "queued": run.queued_count,
        "pending_approval": run.approval_count,
        "second_run_seconds": round(second_seconds, 2),
        "second_run_queued": second.queued_count,
    }))


if __name__ == "__main__":
    main()
