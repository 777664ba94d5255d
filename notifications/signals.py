"""Signals other apps connect to; notifications imports none of them."""

from __future__ import annotations

from django.dispatch import Signal

# Sent once when an S10 range's free numbers drop to its alarm threshold, inside
# the transaction that took the numbers (a receiver's writes commit or roll back
# with them). Arguments: ``range`` (the S10Range), ``remaining`` (int).
s10_range_low = Signal()
