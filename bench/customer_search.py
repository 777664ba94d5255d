"""Office customer search on a large customer base.

    python bench/customer_search.py --customers 100000

Creates a fresh database on the configured (or embedded) PostgreSQL server,
migrates it, generates the customers through seed_demo's generator, then times
the office search page through the real HTTP path for typical inputs (number,
name, e-mail, phone, street) and, in the same run on the same table, the
obvious alternative: a case-insensitive substring scan over the same fields.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18] * 1000 if len(samples) > 1 else samples[0] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ["GUICHET_ENV"] = "test"
    from portal import embedded

    base_url = os.environ.get("DATABASE_URL") or embedded.postgres_uri()
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_customer_search")
        conn.execute("CREATE DATABASE bench_customer_search")
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(base_url)
    os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path="/bench_customer_search"))

    import django

    django.setup()
    from allauth.mfa.totp.internal.auth import TOTP
    from django.conf import settings
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Q
    from django.test import Client

    from portal.management.commands.seed_demo import create_generated_customers
    from portal.models import Customer, User
    from portal.roles import Role

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    create_generated_customers(args.customers)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE portal_customer")
    load_s = time.perf_counter() - started

    sample = list(Customer.objects.order_by("?")[:5])
    queries = []
    for c in sample:
        queries += [
            c.number,
            c.name.split()[-1][:5],
            c.email.split("@")[0],
            c.mobile[-9:],
            c.street.split()[1][:6] if len(c.street.split()) > 1 else c.city,
        ]

    clerk = User.objects.create_user(email="bench@guichet.example", password="x")
    clerk.groups.add(Group.objects.get(name=Role.CUSTOMER_SERVICE.value))
    TOTP.activate(clerk, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    client = Client()
    client.force_login(clerk)

    page, scan, found = [], [], 0
    for _ in range(args.repeat):
        for text in queries:
            t = time.perf_counter()
            response = client.get("/office/customers/", {"q": text}, HTTP_HX_REQUEST="true")
            page.append(time.perf_counter() - t)
            assert response.status_code == 200
            found += text.upper() in response.content.decode().upper()
            t = time.perf_counter()
            list(
                Customer.objects.filter(
                    Q(number__icontains=text)
                    | Q(last_name__icontains=text)
                    | Q(first_name__icontains=text)
                    | Q(company_name__icontains=text)
                    | Q(email__icontains=text)
                    | Q(mobile__icontains=text)
                    | Q(street__icontains=text)
                    | Q(city__icontains=text)
                ).order_by("number")[:50]
            )
            scan.append(time.perf_counter() - t)

    print(
        json.dumps(
            {
                "customers": Customer.objects.count(),
                "load_s": round(load_s, 1),
                "queries": len(queries) * args.repeat,
                "search_page_p95_ms": round(p95(page), 2),
                "search_page_median_ms": round(statistics.median(page) * 1000, 2),
                "substring_scan_p95_ms": round(p95(scan), 2),
                "speedup_vs_scan": round(p95(scan) / p95(page), 1),
                "hits_shown": found,
            }
        )
    )
    connection.close()
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE bench_customer_search")


if __name__ == "__main__":
    main()
