"""Reading import throughput and memory, against the obvious alternatives.

    python bench/readings_import.py --rows 1000000

Creates a fresh database on the configured (or embedded) PostgreSQL server,
migrates it (indexes and foreign keys as in production), creates N/12
registers (one supply point and meter each) with one earlier reading each,
and writes a CSV of N readings: twelve monthly readings per register, month
by month, as a utility's file would come. Then, in a child process (so its
peak memory is the import's own), the file goes through the real import path:
``stage_import`` (store, hash, validate every row with the plausibility rules)
and ``commit_import`` (COPY in one transaction). Its peak memory is the
child's peak resident set (VmHWM), Django and the libraries included.

On the same table, after removing the imported rows each time, it times the
same rows through ``Reading.objects.bulk_create`` (batches of 5,000, objects
built from the file as they are read) and a bare ``COPY`` of the rows already
in the table's format. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB_NAME = "bench_readings_import"
START = date(2025, 1, 1)


def months_after(day: date, n: int) -> date:
    month = day.month - 1 + n
    return date(day.year + month // 12, month % 12 + 1, 1)


def peak_rss_mb() -> float:
    """This process's peak resident memory.

    /proc's VmHWM belongs to the process's own address space; getrusage's
    ru_maxrss would also count the parent's peak from before exec.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()


def child(database_url: str, path: str, user_id: int) -> None:
    """The measured import: the real path, in its own process."""
    setup_django(database_url)
    from django.core.files import File

    from meters import imports
    from portal.models import User

    user = User.objects.get(pk=user_id)
    started = time.perf_counter()
    with open(path, "rb") as handle:
        # Celery runs eagerly here: the check task runs as the upload commits.
        imp = imports.stage_import(
            upload=File(handle, name="readings.csv"),  # type: ignore[arg-type]
            uploaded_by=user,
        )
    imp = imports.check_import(imp)  # nothing left to do when the task ran
    validated = time.perf_counter()
    validate_peak_mb = peak_rss_mb()
    assert imp.error_count == 0, imp.errors[:5]  # noqa: S101
    imports.request_post(imp=imp, requested_by=user)  # the posting task runs eagerly
    imp.refresh_from_db()
    assert imp.status == "committed", imp.problem  # noqa: S101
    done = time.perf_counter()
    peak_mb = peak_rss_mb()
    print(json.dumps({"validate_s": validated - started, "commit_s": done - validated,
                      "total_s": done - started, "peak_mb": peak_mb,
                      "validate_peak_mb": validate_peak_mb, "rows": imp.row_count}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--import-only", action="store_true",
                        help="skip the bulk_create and COPY comparisons (memory runs)")
    parser.add_argument("--child", nargs=3, metavar=("DATABASE_URL", "FILE", "USER_ID"))
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ["GUICHET_ENV"] = "test"
    if args.child:
        if os.environ.get("BENCH_PROFILE"):
            import cProfile

            cProfile.runctx("child(*a)", globals(), {"child": child, "a": (
                args.child[0], args.child[1], int(args.child[2]))}, os.environ["BENCH_PROFILE"])
            return
        child(args.child[0], args.child[1], int(args.child[2]))
        return

    global DB_NAME
    DB_NAME = f"{DB_NAME}_{args.rows}"
    from portal import embedded

    base_url = os.environ.get("DATABASE_URL") or embedded.postgres_uri()
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(base_url)
    database_url = urlunsplit(parts._replace(path=f"/{DB_NAME}"))
    setup_django(database_url)

    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from meters.models import Meter, Reading, Register, Service, SupplyPoint
    from portal.models import Customer, CustomerKind, User

    call_command("migrate", verbosity=0)
    workdir = Path(tempfile.mkdtemp(prefix="bench-readings-"))
    registers = max(1, args.rows // 12)

    # --- Data: customers, supply points, meters, registers, one earlier reading each.
    started = time.perf_counter()
    customers = Customer.objects.bulk_create(
        Customer(number=f"B{i:07d}", kind=CustomerKind.COMPANY, company_name=f"Client {i}",
                 street="Str. Gării 1", postal_code="010101", city="București", country="RO")
        for i in range(max(1, registers // 50))
    )
    for first in range(0, registers, 20_000):
        batch = range(first, min(first + 20_000, registers))
        points = SupplyPoint.objects.bulk_create(
            SupplyPoint(customer=customers[i % len(customers)], code=f"RO005E{i:012d}",
                        service=Service.ELECTRICITY, street="Str. Gării 1",
                        postal_code="010101", city="București")
            for i in batch
        )
        meters = Meter.objects.bulk_create(
            Meter(supply_point=p, serial_number=f"E-{p.code[-9:]}", installed_on=date(2020, 1, 1))
            for p in points
        )
        regs = Register.objects.bulk_create(
            Register(meter=m, code="1.8.0", name="Total", integer_digits=6) for m in meters
        )
        noon = timezone.make_aware(datetime(2025, 1, 1, 12))
        Reading.objects.bulk_create(
            Reading(register=r, value=Decimal(1000 + r.pk % 5000), read_at=noon, read_on=START,
                    source="courier")
            for r in regs
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    user = User.objects.create_user(email="bench@guichet.example", password="x")
    load_s = time.perf_counter() - started

    # --- The file: twelve monthly readings per register, month by month.
    upload = workdir / "readings.csv"
    copy_file = workdir / "copy.csv"
    point_ids = list(Register.objects.order_by("id").values_list("id", "meter__supply_point__code"))
    # The bare COPY posts the same rows as the import: same consumption, same
    # foreign keys (a file of its own) to check.
    from meters.models import ReadingImport

    baseline = ReadingImport.objects.create(
        original_name="baseline.csv", sha256="0" * 64, status="discarded", uploaded_by=user,
        file="baseline.csv",
    )
    with upload.open("w", newline="") as out, copy_file.open("w", newline="") as raw:
        writer = csv.writer(out, delimiter=";")
        raw_writer = csv.writer(raw)
        writer.writerow(["supply_point_code", "register", "read_on", "value", "reason"])
        written = 0
        for month in range(1, 13):
            day = months_after(START, month)
            stamp = timezone.make_aware(datetime.combine(day, datetime.min.time())
                                        + timedelta(hours=12)).isoformat()
            for register_id, code in point_ids:
                if written >= args.rows:
                    break
                value = 1000 + register_id % 5000 + month * (250 + register_id % 7)
                writer.writerow([code, "1.8.0", day.isoformat(), value, "periodic"])
                raw_writer.writerow([uuid.uuid4(), register_id, value, stamp, day, "imported",
                                     "periodic", "accepted", "[]", 250 + register_id % 7, "t",
                                     user.pk, baseline.pk, "", "", stamp])
                written += 1
    del point_ids

    def clear() -> None:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM meters_reading WHERE read_on > %s", [START])
            cursor.execute("UPDATE meters_readingimport SET status = 'discarded'")
        connection.close()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE meters_reading")

    # --- The real import path, in a child process.
    connection.close()
    result = subprocess.run(  # noqa: S603
        [sys.executable, __file__, "--child", database_url, str(upload), str(user.pk)],
        capture_output=True, text=True, check=False,
    )
    if result.returncode:
        sys.stderr.write(result.stderr)
        raise SystemExit(result.returncode)
    if os.environ.get("BENCH_PROFILE"):
        return
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    imported = Reading.objects.filter(read_on__gt=START).count()
    if args.import_only:
        print(json.dumps({"rows": measured["rows"], "imported": imported,
                          "validate_s": round(measured["validate_s"], 2),
                          "commit_s": round(measured["commit_s"], 2),
                          "rows_per_s": round(measured["rows"] / measured["total_s"]),
                          "peak_mb": round(measured["peak_mb"], 1),
                          "validate_peak_mb": round(measured["validate_peak_mb"], 1)}))
        connection.close()
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {DB_NAME}")
        return
    clear()

    # --- bulk_create of the same rows.
    started = time.perf_counter()
    with upload.open(newline="") as handle:
        reader = csv.reader(handle, delimiter=";")
        next(reader)
        codes = dict(Register.objects.values_list("meter__supply_point__code", "id"))
        pending: list[Reading] = []
        for row_code, _register, row_day, row_value, row_reason in reader:
            read_on = date.fromisoformat(row_day)
            pending.append(Reading(
                register_id=codes[row_code], value=Decimal(row_value), read_on=read_on,
                read_at=timezone.make_aware(datetime.combine(read_on, datetime.min.time())
                                            + timedelta(hours=12)),
                source="imported", reason=row_reason, entered_by=user, import_batch=baseline,
            ))
            if len(pending) == 5000:
                Reading.objects.bulk_create(pending)
                pending = []
        Reading.objects.bulk_create(pending)
        del codes
    bulk_s = time.perf_counter() - started
    clear()

    # --- Bare COPY of the same rows.
    columns = ("public_id, register_id, value, read_at, read_on, source, reason, status, "
               "findings, consumption, used_for_billing, entered_by_id, import_batch_id, photo, "
               "photo_sha256, created_at")
    started = time.perf_counter()
    with psycopg.connect(database_url) as conn, conn.cursor() as copy_cursor:
        with copy_cursor.copy(f"COPY meters_reading ({columns}) FROM STDIN "
                         "WITH (FORMAT csv, NULL '\\N')") as copy, copy_file.open("rb") as raw_file:
            while block := raw_file.read(1024 * 1024):
                copy.write(block)
        conn.commit()
    copy_s = time.perf_counter() - started

    rows = measured["rows"]
    print(json.dumps({
        "rows": rows,
        "registers": registers,
        "imported": imported,
        "load_s": round(load_s, 1),
        "validate_s": round(measured["validate_s"], 2),
        "commit_s": round(measured["commit_s"], 2),
        "rows_per_s": round(rows / measured["total_s"]),
        "peak_mb": round(measured["peak_mb"], 1),
        "bulk_create_rows_per_s": round(rows / bulk_s),
        "copy_rows_per_s": round(rows / copy_s),
        "vs_bulk_create": round(bulk_s / measured["total_s"], 2),
        "vs_copy": round(copy_s / measured["total_s"], 2),
    }))
    connection.close()
    for path in (upload, copy_file):
        path.unlink()
    workdir.rmdir()
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {DB_NAME}")


if __name__ == "__main__":
    main()
