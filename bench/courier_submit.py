"""The courier's reading submit request, with short and long register histories.

    python bench/courier_submit.py --submits 40 --long 10000

Creates a fresh database on the configured (or embedded) PostgreSQL server,
migrates it, makes one round whose registers have either 10 or ``--long``
earlier daily readings, then posts one reading per register through the real
HTTP path (the JSON endpoint the phone's queue uses) and prints one JSON line:
``p95_ms`` over all submits and the number of queries of one submit on a
register with a short and with a long history. The two counts must be equal:
the plausibility context is loaded set-wise, not reading by reading.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "bench_courier_submit"


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18] * 1000 if len(samples) > 1 else samples[0] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--submits", type=int, default=40, help="registers (one submit each)")
    parser.add_argument("--short", type=int, default=10)
    parser.add_argument("--long", type=int, default=10_000)
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
    from datetime import date, datetime, timedelta
    from datetime import time as dtime
    from decimal import Decimal
    from zoneinfo import ZoneInfo

    from allauth.mfa.totp.internal.auth import TOTP
    from django.conf import settings
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from meters import rounds
    from meters.models import (
        Meter,
        Reading,
        ReadingSource,
        ReadingStatus,
        Register,
        Service,
        SupplyPoint,
    )
    from portal.models import Customer, CustomerKind, User
    from portal.roles import Role

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    zone = ZoneInfo(settings.TIME_ZONE)
    today = timezone.localdate()

    customer = Customer.objects.create(
        number="C9000001",
        kind=CustomerKind.COMPANY,
        company_name="Bench SRL",
        street="Str. Bench 1",
        postal_code="010101",
        city="București",
        country="RO",
    )
    courier = User.objects.create_user(email="courier@bench.example", password="x")
    courier.groups.add(Group.objects.get(name=Role.COURIER.value))
    TOTP.activate(courier, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    coordinator = User.objects.create_user(email="coordinator@bench.example", password="x")
    coordinator.groups.add(Group.objects.get(name=Role.METER_READING.value))

    started = time.perf_counter()
    points, kinds = [], []
    for n in range(args.submits):
        history = args.short if n % 2 == 0 else args.long
        point = SupplyPoint.objects.create(
            customer=customer,
            code=f"RO005EBENCH{n:06d}",
            service=Service.ELECTRICITY,
            street=f"Str. Bench {n}",
            postal_code="010101",
            city="București",
        )
        meter = Meter.objects.create(
            supply_point=point, serial_number=f"B-{n:06d}", installed_on=date(1990, 1, 1)
        )
        register = Register.objects.create(meter=meter, code="1.8.0", name="Total")
        Reading.objects.bulk_create(
            (
                Reading(
                    register=register,
                    value=Decimal(10 * (history - d)),
                    read_on=today - timedelta(days=d),
                    read_at=datetime.combine(today - timedelta(days=d), dtime(10), tzinfo=zone),
                    source=ReadingSource.COURIER,
                    status=ReadingStatus.ACCEPTED,
                )
                for d in range(history, 0, -1)
            ),
            batch_size=5000,
        )
        points.append(point)
        kinds.append(("short" if history == args.short else "long", register, 10 * history))
    the_round = rounds.create_round(
        name="Bench",
        period_start=today,
        period_end=today + timedelta(days=7),
        supply_points=points,
        created_by=coordinator,
        courier=courier,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE meters_reading")
    load_s = time.perf_counter() - started

    client = Client()
    client.force_login(courier)
    client.get("/courier/")  # warm caches as a phone's session would be

    samples: list[float] = []
    counts: dict[str, set[int]] = {"short": set(), "long": set()}
    stored = 0
    for kind, register, last_value in kinds:
        body = json.dumps(
            {
                "client_id": str(uuid.uuid4()),
                "round": str(the_round.public_id),
                "register": str(register.public_id),
                "value": str(last_value + 10),
            }
        )
        with CaptureQueriesContext(connection) as ctx:
            t = time.perf_counter()
            response = client.post("/courier/readings/", body, content_type="application/json")
            samples.append(time.perf_counter() - t)
        assert response.status_code == 200, response.content
        stored += response.json()["status"] == "stored"
        counts[kind].add(len(ctx.captured_queries))

    def one(values: set[int]) -> int | list[int]:
        return next(iter(values)) if len(values) == 1 else sorted(values)

    print(
        json.dumps(
            {
                "submits": len(samples),
                "stored": stored,
                "history_short": args.short,
                "history_long": args.long,
                "load_s": round(load_s, 1),
                "p95_ms": round(p95(samples), 2),
                "median_ms": round(statistics.median(samples) * 1000, 2),
                "queries_short_history": one(counts["short"]),
                "queries_long_history": one(counts["long"]),
            }
        )
    )
    connection.close()
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {DB_NAME}")


if __name__ == "__main__":
    main()
