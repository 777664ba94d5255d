"""Payment file matching and posting, against a line-by-line ORM loop.

    python bench/payments_import.py --lines 200000 --invoices 3000000

Creates a fresh database on the configured (or embedded) PostgreSQL server,
migrates it (every index and trigger as in production) and loads, with COPY,
one customer per twelve invoices and the invoices: twelve monthly invoices per
customer, the older ones paid, the latest one open (and the one before for
every fifth customer), each with its RF payment reference. Customers who pay
by account without a reference have that account on file.

Then it writes a camt.053 statement of ``--lines`` credits, the mix a utility
sees: 70 % quote the RF reference, 10 % write the invoice number in the text,
10 % give no reference (the payer's account identifies the customer: oldest
item first), 5 % pay half of the invoice, 5 % cannot be matched (suggestions).
In a child process the file goes through the real path: ``stage_file``
(stored, hashed, parsed, keys derived, COPY into the staging table; the
check task runs eagerly) and ``post_file`` (matched and posted in one
transaction). ``lines_per_s`` is lines matched and posted per second (the
posting task); ``check_lines_per_s`` is the upload and check (parsing the XML).

The baseline, in the same run and database, posts a slice of lines of the same
mix for other customers the obvious way: per line, look the invoice up by
reference, by number, or the customer by account (ORM queries), allocate
oldest first, create the payment, its allocations and ledger entry, and update
the invoice status. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB_NAME = "bench_payments_import"
IBAN = "RO49AAAA1B31007593840000"


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def copy_rows(model: Any, template: Any, rows: Any, overrides: tuple[str, ...]) -> None:
    """COPY rows into ``model``'s table: every column from ``template`` except ``overrides``.

    ``rows`` yields tuples of the override values, in the order of ``overrides``.
    """
    from django.db import connection

    fields = [
        f for f in model._meta.concrete_fields
        if not f.primary_key and not getattr(f, "generated", False)
    ]
    names = [f.column for f in fields]
    fixed = [f.get_db_prep_save(getattr(template, f.attname), connection) for f in fields]
    positions = [names.index(model._meta.get_field(o).column) for o in overrides]
    sql = f"COPY {model._meta.db_table} ({', '.join(names)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.copy(sql) as copy:
        row = list(fixed)
        for values in rows:
            for position, value in zip(positions, values, strict=True):
                row[position] = value
            copy.write_row(row)


def child(database_url: str, path: str, user_id: int, collector_id: int) -> None:
    setup_django(database_url)
    from django.core.files import File

    from portal.models import User
    from receivables import imports
    from receivables.models import Collector

    user = User.objects.get(pk=user_id)
    collector = Collector.objects.get(pk=collector_id)
    started = time.perf_counter()
    with open(path, "rb") as handle:
        imp = imports.stage_file(
            collector=collector, upload=File(handle, name="statement.xml"),  # type: ignore[arg-type]
            uploaded_by=user,
        )
    imp.refresh_from_db()
    assert imp.status == "checked", imp.problem  # noqa: S101
    checked = time.perf_counter()
    imports.request_post(imp=imp, by=user)  # the posting task runs eagerly
    imp.refresh_from_db()
    assert imp.status == "posted", imp.problem  # noqa: S101
    done = time.perf_counter()
    print(json.dumps({
        "check_s": checked - started, "post_s": done - checked, "total_s": done - started,
        "lines": imp.line_count, "matched": imp.matched_count, "unmatched": imp.unmatched_count,
        "peak_mb": peak_rss_mb(),
    }))


def entry(n: int, amount: Decimal, *, ref: str = "", text: str = "", iban: str = "",
          day: str = "2026-11-02") -> str:
    rmt = ""
    if ref:
        rmt += ("<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp>"
                f"<Ref>{ref}</Ref></CdtrRefInf></Strd>")
    if text:
        rmt += f"<Ustrd>{text}</Ustrd>"
    account = f"<DbtrAcct><Id><IBAN>{iban}</IBAN></Id></DbtrAcct>" if iban else ""
    return (
        f"<Ntry><Amt Ccy=\"EUR\">{amount:.2f}</Amt><CdtDbtInd>CRDT</CdtDbtInd>"
        f"<Sts>BOOK</Sts><BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt>"
        f"<AcctSvcrRef>BANK{n:09d}</AcctSvcrRef><NtryDtls><TxDtls>"
        "<Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>"
        f"<AmtDtls><TxAmt><Amt Ccy=\"EUR\">{amount:.2f}</Amt></TxAmt></AmtDtls>"
        f"<RltdPties><Dbtr><Nm>Payer {n}</Nm></Dbtr>{account}</RltdPties>"
        f"{f'<RmtInf>{rmt}</RmtInf>' if rmt else ''}</TxDtls></NtryDtls></Ntry>\n"
    )


def write_statement(path: Path, lines: list[tuple[int, Decimal, str, str, str]], name: str) -> None:
    with path.open("w") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n'
                  '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">'
                  f"<BkToCstmrStmt><GrpHdr><MsgId>{name}</MsgId>"
                  "<CreDtTm>2026-11-02T18:00:00</CreDtTm></GrpHdr>"
                  f"<Stmt><Id>{name}</Id><CreDtTm>2026-11-02T18:00:00</CreDtTm>"
                  f"<Acct><Id><IBAN>{IBAN}</IBAN></Id><Ccy>EUR</Ccy></Acct>\n")
        for n, amount, ref, text, iban in lines:
            out.write(entry(n, amount, ref=ref, text=text, iban=iban))
        out.write("</Stmt></BkToCstmrStmt></Document>\n")


def main() -> None:  # noqa: PLR0915 - one script, read top to bottom
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--invoices", type=int, default=3_000_000)
    parser.add_argument("--baseline-lines", type=int, default=3_000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--child", nargs=4, metavar=("DATABASE_URL", "FILE", "USER", "COLLECTOR"))
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ["GUICHET_ENV"] = "test"
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), int(args.child[3]))
        return

    from portal import embedded

    base_url = os.environ.get("DATABASE_URL") or embedded.postgres_uri()
    import psycopg

    name = f"{DB_NAME}_{args.invoices}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    from urllib.parse import urlsplit, urlunsplit

    database_url = urlunsplit(urlsplit(base_url)._replace(path=f"/{name}"))
    setup_django(database_url)

    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from billing.models import Invoice, InvoiceSeries, SeriesKind
    from billing.references import rf_base, rf_reference
    from portal.models import Customer, CustomerKind, User
    from receivables.models import Collector, CollectorKind, PayerAccount

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    customers = max(1, args.invoices // 12)
    now = timezone.now()
    copy_rows(
        Customer,
        Customer(kind=CustomerKind.PERSON, first_name="Ana", last_name="Pop", street="Str. 1",
                 postal_code="010101", city="București", created_at=now, updated_at=now),
        ((uuid.uuid4(), f"C{i:07d}", f"Client {i}") for i in range(customers)),
        ("public_id", "number", "last_name"),
    )
    series = InvoiceSeries.objects.create(code="FV", prefix="FV", kind=SeriesKind.INVOICE,
                                          is_default=True, padding=7)
    ids = dict(Customer.objects.values_list("number", "id"))
    months = [date(2025, 12, 1) + timedelta(days=31 * k) for k in range(12)]
    months = [d.replace(day=1) for d in months]
    # Per customer: twelve invoices, the amount depends on customer and month.
    template = Invoice(
        kind="invoice", series=series, status="paid", currency="EUR", created_at=now,
        updated_at=now, issued_at=now,
    )
    per_year: dict[int, int] = {}

    def invoice_rows() -> Any:
        for i in range(customers):
            number = f"C{i:07d}"
            customer_id = ids[number]
            for k, month in enumerate(months):
                year = month.year
                per_year[year] = per_year.get(year, 0) + 1
                seq = per_year[year]
                document = f"FV-{year}-{seq:07d}"
                gross = Decimal(40 + (i * 7 + k * 13) % 160) + Decimal("0.21")
                net = (gross / Decimal("1.21")).quantize(Decimal("0.01"))
                vat = gross - net
                open_ = k == 11 or (k == 10 and i % 5 == 0)
                due = month + timedelta(days=20)
                yield (
                    uuid.uuid4(), seq, document, customer_id, month, month, due,
                    "issued" if open_ else "paid", net, vat, gross, gross,
                    rf_reference(rf_base(number, document)),
                )

    copy_rows(
        Invoice, template, invoice_rows(),
        ("public_id", "number", "document_number", "customer", "period_start", "issue_date",
         "due_date", "status", "net_total", "vat_total", "gross_total", "amount_due",
         "payment_reference"),
    )
    # Accounts of the customers who pay without a reference (10 % of the file).
    copy_rows(
        PayerAccount, PayerAccount(learned_at=now),
        (
            (f"RO{i:02d}PAYR{i:016d}", ids[f"C{i:07d}"])
            for i in range(customers) if i % 20 in (16, 17)
        ),
        ("account", "customer"),
    )
    collector = Collector.objects.create(code="bank", name="Bank", kind=CollectorKind.BANK,
                                         account=IBAN, currency="EUR", report_days=1)
    user = User.objects.create_user(email="bench@guichet.example", password="x")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    load_s = time.perf_counter() - started

    # --- The lines: one per customer, paying its latest invoice (the mix above).
    open_items = {
        number: (document, ref, amount)
        for number, document, ref, amount in Invoice.objects.filter(status="issued")
        .order_by("customer_id", "due_date")
        .values_list("customer__number", "document_number", "payment_reference", "amount_due")
        .iterator(chunk_size=20_000)
    }

    def line_for(n: int, i: int) -> tuple[int, Decimal, str, str, str]:
        document, ref, amount = open_items[f"C{i:07d}"]
        kind = i % 20
        if kind < 14:
            return n, amount, ref, "", ""
        if kind < 16:
            return n, amount, "", f"Factura {document} multumesc", ""
        if kind < 18:
            return n, amount, "", "energie electrica", f"RO{i:02d}PAYR{i:016d}"
        if kind == 18:
            return n, (amount / 2).quantize(Decimal("0.01")), ref, "", ""
        return n, amount + Decimal("0.01"), "", "plata", ""

    workdir = Path(tempfile.mkdtemp(prefix="bench-payments-"))
    statement = workdir / "statement.xml"
    count = min(args.lines, customers)
    write_statement(statement, [line_for(n, i) for n, i in enumerate(range(count), 1)], "S-MAIN")

    # --- The real path, in a child process.
    connection.close()
    result = subprocess.run(  # noqa: S603
        [sys.executable, __file__, "--child", database_url, str(statement), str(user.pk),
         str(collector.pk)],
        capture_output=True, text=True, check=False,
    )
    if result.returncode:
        sys.stderr.write(result.stderr)
        raise SystemExit(result.returncode)
    measured = json.loads(result.stdout.strip().splitlines()[-1])

    # --- Baseline: line by line with the ORM, other customers, the same mix.
    baseline_ids = range(count, min(customers, count + args.baseline_lines))
    baseline_lines = [line_for(n, i) for n, i in enumerate(baseline_ids, 1)]
    random.Random(1).shuffle(baseline_lines)
    baseline_s = run_baseline(baseline_lines)

    # Matched and posted: the posting task, from checked lines to payments, allocations,
    # ledger entries and invoice statuses (the baseline starts from parsed lines too).
    lines_per_s = measured["lines"] / measured["post_s"]
    baseline_per_s = len(baseline_lines) / baseline_s
    print(json.dumps({
        "lines": measured["lines"], "invoices": Invoice.objects.count(),
        "matched": measured["matched"], "unmatched": measured["unmatched"],
        "check_s": round(measured["check_s"], 2), "post_s": round(measured["post_s"], 2),
        "lines_per_s": round(lines_per_s),
        "check_lines_per_s": round(measured["lines"] / measured["check_s"]),
        "peak_mb": round(measured["peak_mb"], 1),
        "baseline_lines": len(baseline_lines), "baseline_lines_per_s": round(baseline_per_s),
        "vs_baseline": round(lines_per_s / baseline_per_s, 1), "load_s": round(load_s, 1),
    }))
    connection.close()
    if not args.keep:
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name}")


def run_baseline(lines: list[tuple[int, Decimal, str, str, str]]) -> float:
    """The obvious implementation: one line at a time through the ORM, one transaction."""
    import re

    from django.db import transaction
    from django.db.models import Sum

    from billing.models import Invoice
    from receivables.models import Allocation, LedgerEntry, PayerAccount, Payment

    number_in_text = re.compile(r"FV-\d{4}-\d{7}")
    started = time.perf_counter()
    with transaction.atomic():
        for n, amount, ref, text, iban in lines:
            invoice = customer_id = None
            method = ""
            if ref:
                invoice = Invoice.objects.filter(payment_reference=ref).first()
                method = "reference"
            if invoice is None and (found := number_in_text.search(text)):
                # Through the same index as the real path (document numbers without separators).
                key = re.sub(r"[^0-9A-Za-z]", "", found.group(0)).upper()
                invoice = Invoice.objects.extra(  # noqa: S610 - a constant expression
                    where=["upper(regexp_replace(document_number, '[^0-9A-Za-z]', '', 'g')) = %s"],
                    params=[key],
                ).first()
                method = "invoice_number"
            if invoice is not None:
                customer_id = invoice.customer_id
            elif iban:
                account = PayerAccount.objects.filter(account=iban).first()
                customer_id = account.customer_id if account else None
                method = "customer" if account else ""
            payment = Payment.objects.create(
                channel="bank", source="baseline", txn_id=f"BL{n:09d}", customer_id=customer_id,
                booking_date=date(2026, 11, 2), amount=amount, currency="EUR",
                payer_account=iban, reference=ref, text=text, match_method=method,
                unallocated=amount,
            )
            if customer_id is None:
                continue
            items = (
                [invoice] if invoice is not None
                else list(Invoice.objects.filter(customer_id=customer_id,
                                                 status__in=["issued", "partly_paid"])
                          .order_by("due_date", "id"))
            )
            left = amount
            for item in items:
                paid = item.allocations.aggregate(s=Sum("amount"))["s"] or Decimal("0")
                take = min(left, item.amount_due - paid)
                if take <= 0:
                    continue
                Allocation.objects.create(payment=payment, invoice=item, amount=take, method=method)
                Invoice.objects.filter(pk=item.pk).update(
                    status="paid" if paid + take >= item.amount_due else "partly_paid"
                )
                left -= take
                if left <= 0:
                    break
            Payment.objects.filter(pk=payment.pk).update(unallocated=left)
            LedgerEntry.objects.create(customer_id=customer_id, kind="payment",
                                       entry_date=payment.booking_date, amount=-amount,
                                       currency="EUR", payment=payment)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
