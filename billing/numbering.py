"""Gapless document numbers per series and year.

A number is taken inside the transaction that issues the document, under a
row lock on the series' counter for the year: a second issuer waits until the
first commits (and sees its number) or rolls back (and the number is given
again). So numbers are consecutive, with no gap and no duplicate, however
many issue at once.
"""

from __future__ import annotations

from django.db import connection

from billing.models import InvoiceSeries, NumberCounter


def format_number(prefix: str, year: int, number: int, padding: int = 6) -> str:
    """FV-2026-000123."""
    return f"{prefix}-{year}-{number:0{padding}d}"


def next_number(series: InvoiceSeries, year: int) -> int:
    """Take the next number of a series in a year; call inside the issuing transaction.

    One statement: ``UPDATE … SET last = last + 1 … RETURNING last`` takes the
    counter's row lock (held until the transaction ends) and the number at once.
    A document issued after another in the same transaction (a run issues a
    chunk in one) finds the lock already held and pays one round trip.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("next_number() must run inside the transaction that issues")
    number = _increment(series, year)
    if number is None:
        # The first document of a year creates the counter; racing creators are harmless.
        NumberCounter.objects.bulk_create(
            [NumberCounter(series=series, year=year, last=0)], ignore_conflicts=True
        )
        number = _increment(series, year)
        assert number is not None
    return number


def _increment(series: InvoiceSeries, year: int) -> int | None:
    """The counter's next value, or None when the series has no counter for the year yet."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {NumberCounter._meta.db_table} SET last = last + 1 "  # noqa: S608
            "WHERE series_id = %s AND year = %s RETURNING last",
            [series.pk, year],
        )
        row = cursor.fetchone()
    return row[0] if row else None
