"""``manage.py dunning_run [--date YYYY-MM-DD]``: the nightly dunning run, by hand."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from receivables import dunning


class Command(BaseCommand):
    help = "Notice the overdue items that reached a dunning level (safe to run again)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", help="The run's day (default: today, operator's time).")

    def handle(self, *args: Any, **options: Any) -> None:
        day = timezone.localdate()
        if options["date"]:
            try:
                day = date.fromisoformat(options["date"])
            except ValueError:
                raise CommandError("--date must be YYYY-MM-DD") from None
        dunning.sync_outcomes()
        run = dunning.run_dunning(day=day)
        self.stdout.write(
            f"{run.run_date}: {run.notice_count} notices ({run.item_count} items): "
            f"{run.queued_count} queued, {run.approval_count} waiting for approval, "
            f"{run.letter_count} letters"
        )
