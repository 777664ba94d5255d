"""One-page invoice PDF: how long one rendering takes.

    python bench/invoice_render.py [--repeat 30]

Creates a fresh database on the configured (or embedded) PostgreSQL server,
migrates it, issues one invoice (two lines, a supply point with a year of
readings for the chart, EUR so that it carries the EPC QR code and the Code 128
barcode), then renders it again and again in this process, as a worker does.
Prints one JSON line with medians in seconds (wall clock; cpu_ = this process's
CPU time, which other work on the machine disturbs less):

  html_median_s       context (queries, codes, chart) + template
  render_median_s     render_invoice_pdf: HTML + PDF, the issue's ≤ 0.25 s target
  pdfa_median_s       the same as PDF/A-3b
  facturx_median_s    document_pdf: XML + PDF/A-3b + embedding (what is stored)
  bare_weasyprint_s   the same HTML through plain WeasyPrint with a <link>ed stylesheet
                      and no shared font configuration (the baseline)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "bench_invoice_render"


def timed(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds of each function, run in turns so that other
    work on the machine weighs on all of them alike."""
    for fn in fns.values():
        fn()  # warm-up: caches, fonts, schema
    walls: dict[str, list[float]] = {name: [] for name in fns}
    cpus: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            walls[name].append(time.perf_counter() - wall)
            cpus[name].append(time.process_time() - cpu)
    return {
        name: (round(statistics.median(walls[name]), 4), round(statistics.median(cpus[name]), 4))
        for name in fns
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ["GUICHET_ENV"] = "test"
    from portal import embedded

    base_url = os.environ.get("DATABASE_URL") or embedded.postgres_uri()
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB}")
        conn.execute(f"CREATE DATABASE {DB}")
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(base_url)
    os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{DB}"))

    import django

    django.setup()
    from datetime import date, datetime
    from datetime import time as dtime
    from decimal import Decimal
    from zoneinfo import ZoneInfo

    from django.conf import settings
    from django.core.management import call_command
    from weasyprint import HTML

    from billing import documents, pricing, services
    from billing.models import InvoiceSeries, SeriesKind
    from meters.models import (
        Meter,
        Reading,
        ReadingSource,
        ReadingStatus,
        Register,
        Service,
        SupplyPoint,
    )
    from portal import checks
    from portal.documents import StaticOnlyFetcher
    from portal.models import Customer

    call_command("migrate", verbosity=0)
    InvoiceSeries.objects.create(code="FV", prefix="FV", kind=SeriesKind.INVOICE, is_default=True)
    customer = Customer.objects.create(
        number="C0100001",
        first_name="Ana",
        last_name="Popescu",
        street="Str. Lalelelor 5",
        postal_code="010101",
        city="București",
        email="ana@example.com",
    )
    point = SupplyPoint.objects.create(
        customer=customer,
        code="RO005E000000000001",
        service=Service.ELECTRICITY,
        street="Str. Lalelelor 5",
        postal_code="010101",
        city="București",
    )
    meter = Meter.objects.create(
        supply_point=point, serial_number="E-1", installed_on=date(2024, 1, 1)
    )
    register = Register.objects.create(meter=meter, code="1.8.0", name="Total", unit="kWh")
    zone = ZoneInfo(settings.TIME_ZONE)
    Reading.objects.bulk_create(
        Reading(
            register=register,
            value=Decimal(1000 + 150 * n),
            read_on=day,
            read_at=datetime.combine(day, dtime(10), tzinfo=zone),
            source=ReadingSource.COURIER,
            status=ReadingStatus.ACCEPTED,
        )
        for n, day in enumerate([date(2025, m, 28) for m in range(1, 13)] + [date(2026, 1, 30)])
    )
    lines = [
        pricing.Line(
            description=description,
            quantity=Decimal(qty),
            unit=unit,
            unit_price=Decimal(price),
            net_amount=Decimal(net),
            vat_code="standard",
            vat_rate=Decimal("19"),
            period_start=date(2026, 1, 1),
            period_end=date(2026, 1, 31),
        )
        for description, qty, unit, price, net in [
            ("Energy", "230", "kWh", "0.80", "184.00"),
            ("Standing charge", "1", "month", "12.00", "12.00"),
        ]
    ]
    priced = pricing.total_lines(
        lines, currency="EUR", period_start=date(2026, 1, 1), period_end=date(2026, 1, 31)
    )
    draft = services.create_draft_invoice(customer=customer, priced=priced, supply_point=point)
    invoice = services.issue_invoice(invoice=draft, issued_by=None)

    html = documents.invoice_html(invoice)
    css_link = f'<link rel="stylesheet" href="{settings.STATIC_URL}{documents.STYLESHEET}">'
    bare_html = html.replace("</head>", css_link + "</head>")

    def bare() -> None:
        HTML(
            string=bare_html, base_url=f"{settings.SITE_URL}/", url_fetcher=StaticOnlyFetcher()
        ).write_pdf()

    results = timed(
        {
            "html": lambda: documents.invoice_html(invoice),
            "render": lambda: documents.render_invoice_pdf(invoice),
            "pdfa": lambda: documents.render_invoice_pdf(invoice, pdf_variant="pdf/a-3b"),
            "facturx": lambda: documents.document_pdf(invoice),
            "bare_weasyprint": bare,
        },
        args.repeat,
    )
    report: dict[str, Any] = {"harfbuzz_subset": checks.harfbuzz_subsetting()}
    for name, (wall, cpu) in results.items():
        suffix = "_s" if name == "bare_weasyprint" else "_median_s"
        report[name + suffix] = wall
        report["cpu_" + name + suffix] = cpu
    report["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
