"""The portal invoice list for a customer with 10 and with 100,000 invoices.

    python bench/portal_pages.py [--big 100000] [--small 10] [--repeat 50]

Creates a fresh database on the configured (or embedded) PostgreSQL server,
migrates it, streams the invoices in with COPY, then requests /invoices/
through the real HTTP path (middleware, session, templates) as each
customer's owner. Prints one JSON line: the query count and p95 of the first
page for both customers (the targets: the same count, big p95 within 1.5x of
small), plus, for the big customer, a page deep in the history (keyset
cursor), a common filter (unpaid) and a rare one (cancelled: the scan has to
walk the customer's whole history to fill a page).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB_NAME = "bench_portal_pages"
# A document's link in the list: one per row shown.
ROW = re.compile(r'href="/invoices/[0-9a-f-]{36}/"')
BATCH_SIZE = 5_000


def p95(samples: list[float]) -> float:
    if len(samples) == 1:
        return samples[0] * 1000
    return statistics.quantiles(samples, n=20)[18] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument(
        "--explain", action="store_true", help="print each case's invoice query plan to stderr"
    )
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ["GUICHET_ENV"] = "test"
    from portal import embedded

    base_url = os.environ.get("DATABASE_URL") or embedded.postgres_uri()
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(base_url)
    os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{DB_NAME}"))

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)

    started = time.perf_counter()
    small = seed_customer("B0000001", args.small)
    big = seed_customer("B0000002", args.big)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_invoice")
    load_s = time.perf_counter() - started

    def first_look(client: Client, params: dict[str, str]) -> tuple[int, int]:
        """(queries of one request, rows it shows), after a warm-up request."""
        client.get("/invoices/", params)  # warm: templates, connection, session
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/invoices/", params)
        assert response.status_code == 200, response.status_code
        # Read now: every request clears the connection's query log.
        queries = captured.captured_queries
        if args.explain:
            page_query = next(q["sql"] for q in queries if "LIMIT 26" in q["sql"])
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {page_query}")
                plan = "\n".join(row[0] for row in cursor.fetchall())
            print(f"--- {params}\n{plan}", file=sys.stderr)
        return len(queries), len(ROW.findall(response.content.decode()))

    small_client, big_client = login(small), login(big)
    cases = {
        "small": (small_client, {}),
        "big": (big_client, {}),
        "deep_page_big": (big_client, {"after": deep_cursor(big)}),
        "unpaid_filter_big": (big_client, {"status": "issued"}),
        "rare_status_filter_big": (big_client, {"status": "cancelled"}),
    }
    looks = {name: first_look(client, params) for name, (client, params) in cases.items()}
    # Round-robin over the cases, so that a busy moment of the machine hits all alike.
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, (client, params) in cases.items():
            t = time.perf_counter()
            client.get("/invoices/", params)
            samples[name].append(time.perf_counter() - t)

    result: dict[str, Any] = {
        "invoices_small": args.small,
        "invoices_big": args.big,
        "load_s": round(load_s, 1),
        "queries_small": looks["small"][0],
        "queries_big": looks["big"][0],
        "p95_ms_small": round(p95(samples["small"]), 2),
        "p95_ms_big": round(p95(samples["big"]), 2),
        "median_ms_small": round(statistics.median(samples["small"]) * 1000, 2),
        "median_ms_big": round(statistics.median(samples["big"]) * 1000, 2),
        "big_over_small_p95": round(p95(samples["big"]) / p95(samples["small"]), 2),
        "rows_shown_small": looks["small"][1],
        "rows_shown_big": looks["big"][1],
    }
    for name in ("deep_page_big", "unpaid_filter_big", "rare_status_filter_big"):
        result[f"queries_{name}"] = looks[name][0]
        result[f"p95_ms_{name}"] = round(p95(samples[name]), 2)
        result[f"rows_shown_{name}"] = looks[name][1]
    print(json.dumps(result))
    connection.close()
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {DB_NAME}")


def seed_customer(number: str, count: int) -> Any:
    """A customer with an owner, three supply points and ``count`` issued invoices.

    Thirty invoices a day back from today (ties on the issue date); the newest
    2 % are unpaid, one in 20,000 is cancelled, the rest paid.
    """
    import uuid
    from decimal import Decimal

    from django.db import connection, transaction
    from django.utils import timezone

    from billing.models import Invoice, InvoiceSeries, InvoiceStatus, SeriesKind
    from meters.models import Service, SupplyPoint
    from portal.models import Customer, Membership, MembershipRole, User

    customer = Customer.objects.create(
        number=number,
        kind="person",
        first_name="Bench",
        last_name=number,
        street="Str. Bench 1",
        postal_code="010101",
        city="București",
        country="RO",
        email=f"{number.lower()}@example.com",
    )
    user = User.objects.create_user(email=f"owner-{number.lower()}@example.com", password="x")
    Membership.objects.create(user=user, customer=customer, role=MembershipRole.OWNER)
    points = [
        SupplyPoint.objects.create(
            customer=customer,
            code=f"{number}-SP{i}",
            service=Service.ELECTRICITY,
            street=f"Str. Bench {i}",
            postal_code="010101",
            city="București",
        )
        for i in range(3)
    ]
    series, _ = InvoiceSeries.objects.get_or_create(
        code="BENCH", defaults={"prefix": "FV", "kind": SeriesKind.INVOICE, "is_default": True}
    )
    fields = [f for f in Invoice._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = f"COPY {Invoice._meta.db_table} ({columns}) FROM STDIN"  # noqa: S608 - our own names
    today = timezone.localdate()
    now = timezone.now()
    start = Invoice.objects.filter(series=series).count() + 1
    unpaid = max(1, count // 50)
    with transaction.atomic(), connection.cursor() as cursor:
        for first in range(0, count, BATCH_SIZE):
            with cursor.cursor.copy(sql) as copy:
                for i in range(first, min(count, first + BATCH_SIZE)):
                    number_in_series = start + i
                    day: date = today - timedelta(days=i // 30)
                    status = (
                        InvoiceStatus.ISSUED
                        if i < unpaid
                        else InvoiceStatus.CANCELLED
                        if i % 20_000 == 19_999
                        else InvoiceStatus.PAID
                    )
                    invoice = Invoice(
                        public_id=uuid.uuid4(),
                        series=series,
                        number=number_in_series,
                        document_number=f"FV-{day.year}-{number_in_series:07d}",
                        customer=customer,
                        supply_point=points[i % 3],
                        period_start=day.replace(day=1),
                        period_end=day,
                        issue_date=day,
                        due_date=day + timedelta(days=14),
                        status=status,
                        currency="RON",
                        net_total=Decimal("100.00"),
                        vat_total=Decimal("19.00"),
                        gross_total=Decimal("119.00"),
                        amount_due=Decimal("119.00"),
                        issued_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                    copy.write_row(
                        [
                            f.get_db_prep_save(getattr(invoice, f.attname), connection)
                            for f in fields
                        ]
                    )
    return customer


def login(customer: Any) -> Any:
    from django.test import Client

    from portal.models import User

    client = Client()
    client.force_login(User.objects.get(memberships__customer=customer))
    client.get("/")  # the session chooses the current customer
    return client


def deep_cursor(customer: Any) -> str:
    """The public id of a document 90 % down the customer's history."""
    from billing.models import Invoice

    invoices = Invoice.objects.filter(customer=customer).order_by("-issue_date", "-id")
    position = int(invoices.count() * 0.9)
    return str(invoices.values_list("public_id", flat=True)[position])


if __name__ == "__main__":
    main()
