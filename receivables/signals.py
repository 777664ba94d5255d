"""Signals receivables sends.

``allocations_changed(sender=Allocation, invoice_ids=[…])`` is sent inside
the transaction that allocated (or reversed) money on those invoices, after
their status was brought up to date. Dunning listens: a pending notice of an
item that is now paid is cancelled before it is sent.
"""

from django.dispatch import Signal

allocations_changed = Signal()
