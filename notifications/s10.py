"""UPU S10 item numbers (e.g. RR123456785RO): check digit, validation, allocation.

An S10 number is a two-letter service indicator, an eight-digit serial, a
check digit and the ISO code of the issuing operator's country. The operator
assigns us ranges of serials per product (S10Range); allocate() hands them
out in order and never twice.
"""

from __future__ import annotations

import re

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext

from notifications.countries import is_country
from notifications.models import S10_LAST_SERIAL, S10Number, S10Range
from notifications.signals import s10_range_low

_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
_S10 = re.compile(r"^([A-Z]{2})(\d{8})(\d)([A-Z]{2})$")
_LETTERS = re.compile(r"^[A-Z]{2}$")


class S10Exhausted(Exception):
    """No active range of the service indicator and country has room for the numbers asked."""

    def __init__(self, *, prefix: str, country: str, count: int) -> None:
        self.prefix, self.country, self.count = prefix, country, count
        super().__init__(
            gettext(
                "No S10 numbers left for %(prefix)s…%(country)s (%(count)d needed): "
                "add a range from the postal operator."
            )
            % {"prefix": prefix, "country": country, "count": count}
        )


def check_digit(serial8: str) -> int:
    """The S10 check digit of an eight-digit serial (UPU S10: weights 8 6 4 2 3 5 9 7)."""
    if len(serial8) != 8 or not serial8.isascii() or not serial8.isdigit():
        raise ValueError(gettext("An S10 serial has exactly eight digits."))
    check = 11 - sum(int(d) * w for d, w in zip(serial8, _WEIGHTS, strict=True)) % 11
    return {10: 0, 11: 5}.get(check, check)


def _country(country: str) -> str:
    country = country.strip().upper()
    if not is_country(country):
        raise ValueError(gettext("“%(code)s” is not an ISO country code.") % {"code": country})
    return country


def format_s10(prefix: str, serial: int, country: str) -> str:
    """The full number for a serial: format_s10("RR", 12345678, "RO") == "RR123456785RO"."""
    prefix = prefix.strip().upper()
    if not _LETTERS.match(prefix):
        raise ValueError(gettext("An S10 service indicator is two letters, e.g. RR."))
    if not 0 <= serial <= S10_LAST_SERIAL:
        raise ValueError(gettext("An S10 serial lies between 0 and 99999999."))
    serial8 = f"{serial:08d}"
    return f"{prefix}{serial8}{check_digit(serial8)}{_country(country)}"


def validate_s10(text: str) -> str:
    """The number normalised (no spaces, capitals); ValueError saying what is wrong otherwise."""
    number = "".join(text.split()).upper()
    match = _S10.match(number)
    if match is None:
        raise ValueError(
            gettext(
                "An S10 number is two letters, nine digits and two letters, e.g. RR123456785RO."
            )
        )
    _prefix, serial8, digit, country = match.groups()
    if check_digit(serial8) != int(digit):
        raise ValueError(gettext("The check digit of this S10 number is wrong: check for a typo."))
    _country(country)
    return number


def remaining(range_: S10Range) -> int:
    """Numbers still free in the range as the database has it now (others may be allocating)."""
    next_serial, last_serial = (
        S10Range.objects.filter(pk=range_.pk).values_list("next_serial", "last_serial").get()
    )
    return int(last_serial - next_serial + 1)


# Takes n serials from a range only if it is still active and has room for all
# of them; the row lock it takes serialises allocations from one range until
# the surrounding transaction ends.
_TAKE = """
    UPDATE notifications_s10range
       SET next_serial = next_serial + %(n)s
     WHERE id = %(id)s AND active AND next_serial + %(n)s - 1 <= last_serial
 RETURNING next_serial - %(n)s, last_serial - next_serial + 1
"""


def _take(range_: S10Range, n: int) -> tuple[int, int] | None:
    """(first serial taken, numbers left after) or None when the range changed meanwhile."""
    with connection.cursor() as cursor:
        cursor.execute(_TAKE, {"n": n, "id": range_.pk})
        row = cursor.fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def _alarm_if_low(range_: S10Range, left: int) -> None:
    if left > range_.alarm_remaining or range_.alarm_sent_at is not None:
        return
    now = timezone.now()
    # Claimed with a conditional update: concurrent allocations alarm once.
    if S10Range.objects.filter(pk=range_.pk, alarm_sent_at__isnull=True).update(alarm_sent_at=now):
        range_.alarm_sent_at = now
        s10_range_low.send(sender=S10Range, range=range_, remaining=left)


def allocate(
    *, prefix: str, country: str, count: int = 1, purpose: str = "", about_label: str = ""
) -> list[str]:
    """Hand out ``count`` new S10 numbers of a service indicator and country.

    Taken from the active range with the lowest first serial that has room,
    spilling over to the next one; S10Exhausted (nothing taken) when all
    ranges together have too few. The numbers belong to the caller's
    transaction: if it rolls back they were never issued and will be handed
    out again, so print or send them only after commit.
    """
    prefix, country = prefix.strip().upper(), country.strip().upper()
    if count < 1:
        raise ValueError("count must be at least 1")
    issued: list[S10Number] = []
    with transaction.atomic():
        while len(issued) < count:
            range_ = S10Range.objects.with_room(prefix=prefix, country=country).first()
            if range_ is None:
                # Rolls back what was taken from earlier ranges in this call.
                raise S10Exhausted(prefix=prefix, country=country, count=count)
            n = min(count - len(issued), range_.remaining)
            taken = _take(range_, n)
            if taken is None:
                continue  # another allocation took numbers first: look again
            first, left = taken
            range_.next_serial = first + n
            now = timezone.now()
            issued += [
                S10Number(
                    number=format_s10(prefix, serial, country),
                    range=range_,
                    serial=serial,
                    purpose=purpose,
                    about_label=about_label,
                    issued_at=now,
                )
                for serial in range(first, first + n)
            ]
            _alarm_if_low(range_, left)
        S10Number.objects.bulk_create(issued)
    return [item.number for item in issued]
