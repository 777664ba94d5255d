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
    """Take the next number of a series in a year; call inside the issuing transaction."""
    if not connection.in_atomic_block:
        raise RuntimeError("next_number() must run inside the transaction that issues")
    # The first document of a year creates the counter; racing creators are harmless.
    NumberCounter.objects.bulk_create(
        [NumberCounter(series=series, year=year, last=0)], ignore_conflicts=True
    )
    counter = NumberCounter.objects.select_for_update().get(series=series, year=year)
    counter.last += 1
    counter.save(update_fields=["last"])
    return counter.last
