"""Signals billing sends; apps that build on billing (receivables) listen.

``document_issued(sender=Invoice, invoice=…)`` is sent inside the issuing
transaction, once per document, after it has its number, dates and status.
"""

from django.dispatch import Signal

document_issued = Signal()
