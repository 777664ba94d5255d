"""A whole billing run through the real Celery path.

    python bench/billing_run.py --invoices 10000 --workers 2

Creates a fresh database on the configured (or embedded) PostgreSQL server,
seeds one customer, supply point, meter and two readings per invoice (half of
the customers with e-billing), prices the run in this process (pricing alone),
then issues it through a Celery worker started here with ``--workers``
processes on the (embedded) Redis broker: numbering, payment references,
rendering and storing the PDFs, queuing the e-mails and the print batches.
Prints one JSON line:

pricing_per_s         invoices priced per second (readings, tariffs, drafts stored)
end_to_end_per_s      invoices per second from pricing start to the run being done
render_median_s       median rendering time of one invoice PDF (WeasyPrint, this process)
stored_pdf_median_s   the same for the stored document (with Factur-X where it applies)
peak_mb_per_worker    the highest peak RSS of one worker process
worker_rss_first_mb / _mid_mb / _last_mb   RSS of the workers early, half way and late in the run
merge_peak_mb         the highest RSS of a print batch merge (a child process of a worker)
bare_weasyprint_per_s bare WeasyPrint rendering the same HTML in a 2-process pool
harfbuzz_subsetting   whether WeasyPrint subsets fonts with HarfBuzz
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "bench_billing_run"
BROKER_DB = 9


def _bare_render(job: tuple[str, str, str]) -> int:
    from weasyprint import CSS, HTML

    html, base_url, stylesheet = job
    pdf = HTML(string=html, base_url=base_url).write_pdf(stylesheets=[CSS(filename=stylesheet)])
    return len(pdf or b"")


def bare_weasyprint_per_s(html: str, base_url: str, stylesheet: str, renders: int) -> float:
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_bare_render, [(html, base_url, stylesheet)] * 2)  # warm both processes
        started = time.perf_counter()
        pool.map(_bare_render, [(html, base_url, stylesheet)] * renders, chunksize=1)
        return renders / (time.perf_counter() - started)


def setup(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()


def seed(count: int) -> None:
    from datetime import date, datetime
    from decimal import Decimal

    from django.utils import timezone

    from billing.models import (
        ComponentKind,
        InvoiceSeries,
        PriceComponent,
        PriceList,
        PriceListVersion,
        PriceTier,
        SeriesKind,
        TariffAssignment,
        TierMode,
        VatRate,
    )
    from meters.models import Meter, Reading, ReadingSource, Register, Service, SupplyPoint
    from portal.models import Customer

    VatRate.objects.create(country="RO", code="standard", rate=Decimal("21"),
                           valid_from=date(2025, 8, 1))
    for kind, prefix in [(SeriesKind.INVOICE, "FV"), (SeriesKind.CREDIT_NOTE, "CN"),
                         (SeriesKind.ADVANCE, "AV")]:
        InvoiceSeries.objects.create(code=prefix, prefix=prefix, kind=kind, is_default=True)
    price_list = PriceList.objects.create(code="RES-E", name="Residential electricity",
                                          service=Service.ELECTRICITY, currency="RON")
    version = PriceListVersion.objects.create(price_list=price_list, valid_from=date(2025, 1, 1))
    energy = PriceComponent.objects.create(
        version=version, position=1, code="energy", name="Energy", kind=ComponentKind.PER_UNIT,
        unit="kWh", unit_price=Decimal("0.80"), tier_mode=TierMode.GRADUATED,
    )
    PriceTier.objects.create(component=energy, from_quantity=Decimal("100"),
                             unit_price=Decimal("0.90"))
    PriceComponent.objects.create(
        version=version, position=2, code="standing", name="Standing charge",
        kind=ComponentKind.FIXED_PER_PERIOD, unit="month", unit_price=Decimal("12.00"),
    )
    version.published_at = timezone.now()
    version.save()

    customers = Customer.objects.bulk_create(
        Customer(number=f"B{n:07d}", first_name="Ana", last_name=f"Bench {n}",
                 street=f"Str. Bench {n}", postal_code=f"{10000 + n % 900:06d}",
                 city="București", country="RO", language="ro", email=f"b{n}@bench.example",
                 consent_ebilling=n % 2 == 0)
        for n in range(count)
    )
    points = SupplyPoint.objects.bulk_create(
        SupplyPoint(customer=c, code=f"RO005EBENCH{n:07d}", service=Service.ELECTRICITY,
                    street=c.street, postal_code=c.postal_code, city=c.city)
        for n, c in enumerate(customers)
    )
    TariffAssignment.objects.bulk_create(
        TariffAssignment(supply_point=p, price_list=price_list, valid_from=date(2024, 1, 1))
        for p in points
    )
    meters = Meter.objects.bulk_create(
        Meter(supply_point=p, serial_number=f"BM{n:07d}", installed_on=date(2024, 1, 1))
        for n, p in enumerate(points)
    )
    registers = Register.objects.bulk_create(
        Register(meter=m, code="1.8.0", name="Total") for m in meters
    )
    zone = timezone.get_current_timezone()
    readings = []
    for n, register in enumerate(registers):
        for day, value in ((date(2025, 12, 31), 1000 + n % 50), (date(2026, 1, 31),
                                                                 1100 + n % 50 + n % 97)):
            readings.append(Reading(
                register=register, value=Decimal(value), read_on=day,
                read_at=datetime(day.year, day.month, day.day, 10, tzinfo=zone),
                source=ReadingSource.COURIER,
            ))
    Reading.objects.bulk_create(readings, batch_size=5000)


def bench_broker_url(url: str) -> str:
    """The broker URL on Redis database BROKER_DB (kombu spells it virtual_host on a socket)."""
    if url.startswith("redis+socket://"):
        return url.partition("?")[0] + f"?virtual_host={BROKER_DB}"
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path=f"/{BROKER_DB}"))


def worker_processes(parent: Any) -> list[Any]:
    """The worker's pool processes (its children)."""
    return [p for p in parent.children() if p.is_running()]


def helper_processes(parent: Any) -> list[Any]:
    """Processes the pool processes start (billing.printmerge merging a print batch)."""
    return [p for worker in worker_processes(parent) for p in worker.children(recursive=True)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--renders", type=int, default=20, help="samples for the medians")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    # Development settings (the test settings pin MEDIA_ROOT to the tests' folder): the
    # bench's PDFs go to their own folder, tasks go to the broker, e-mails are built with
    # their attachments and dropped (the locmem backend would keep every one, PDF and all,
    # in the worker that sent it: a worker's memory would grow with the run for no reason
    # of ours).
    os.environ["GUICHET_ENV"] = "development"
    os.environ["MEDIA_ROOT"] = str(ROOT / "var" / "bench-media")
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.dummy.EmailBackend"
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
    from django.db import transaction

    from billing import documents, runs
    from billing.models import BillingRun, BillingRunStatus, Invoice
    from meters.models import Service
    from portal.checks import harfbuzz_subsetting
    from portal.documents import static_path

    call_command("migrate", verbosity=0)
    seed(args.invoices)

    run = BillingRun.objects.create(
        name="Bench", period_start=date(2026, 1, 1), period_end=date(2026, 1, 31),
        service=Service.ELECTRICITY, status=BillingRunStatus.PRICING,
    )
    started = time.perf_counter()
    outcome = runs.price_run(run=run)
    pricing_s = time.perf_counter() - started
    assert outcome.invoices == args.invoices, outcome

    # The bench's tasks go to a Redis database of their own: the test suite's cache.clear()
    # (FLUSHDB on the shared database) would otherwise drop the queued chunks mid-run.
    broker = bench_broker_url(settings.CELERY_BROKER_URL)
    env = {**os.environ, "DATABASE_URL": database_url}
    worker = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "celery", "-A", "portal", "-b", broker, "worker", "-P",
         "prefork", f"--concurrency={args.workers}", "--loglevel=WARNING",
         "-n", f"bench{os.getpid()}@%h"],
        cwd=ROOT, env=env,
    )
    try:
        from portal.celery import app

        app.conf.broker_url = broker  # type: ignore[misc]

        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=1.0):
            if time.monotonic() > deadline:
                raise SystemExit("the worker did not start")
        parent = psutil.Process(worker.pid)
        samples: dict[int, list[float]] = {}
        helpers: list[float] = []
        issue_started = time.perf_counter()
        with transaction.atomic():
            runs.issue_all(run=run, by=None)
        while True:
            with contextlib.suppress(psutil.Error):
                for proc in worker_processes(parent):
                    with contextlib.suppress(psutil.Error):
                        samples.setdefault(proc.pid, []).append(proc.memory_info().rss / 2**20)
                for proc in helper_processes(parent):
                    with contextlib.suppress(psutil.Error):
                        helpers.append(proc.memory_info().rss / 2**20)
            run.refresh_from_db()
            if run.status == BillingRunStatus.DONE:
                break
            if worker.poll() is not None:
                raise SystemExit("the worker stopped")
            time.sleep(0.5)
        issue_s = time.perf_counter() - issue_started
    finally:
        worker.terminate()
        worker.wait(30)

    sample = list(Invoice.objects.filter(billing_run=run).select_related("customer")
                  [: args.renders])
    renders, stored = [], []
    documents.render_invoice_pdf(sample[0])  # warm the stylesheet and fonts
    for invoice in sample:
        t = time.perf_counter()
        documents.render_invoice_pdf(invoice)
        renders.append(time.perf_counter() - t)
        t = time.perf_counter()
        documents.document_pdf(invoice)
        stored.append(time.perf_counter() - t)
    html = documents.invoice_html(sample[0])
    stylesheet = str(static_path(settings.STATIC_URL + documents.STYLESHEET))
    bare = bare_weasyprint_per_s(html, f"{settings.SITE_URL}/", stylesheet,
                                 max(10, args.renders * 2))

    workers = [s for s in samples.values() if s]
    print(json.dumps({
        "invoices": args.invoices,
        "workers": args.workers,
        "pricing_per_s": round(args.invoices / pricing_s, 1),
        "end_to_end_per_s": round(args.invoices / (pricing_s + issue_s), 2),
        "render_median_s": round(statistics.median(renders), 3),
        "stored_pdf_median_s": round(statistics.median(stored), 3),
        "peak_mb_per_worker": round(max(max(s) for s in workers), 1) if workers else None,
        "worker_rss_first_mb": [round(s[min(2, len(s) - 1)], 1) for s in workers],
        "worker_rss_mid_mb": [round(s[len(s) // 2], 1) for s in workers],
        "worker_rss_last_mb": [round(s[-1], 1) for s in workers],
        "merge_peak_mb": round(max(helpers), 1) if helpers else None,
        "bare_weasyprint_per_s": round(bare, 2),
        "harfbuzz_subsetting": harfbuzz_subsetting(),
    }))


if __name__ == "__main__":
    main()
