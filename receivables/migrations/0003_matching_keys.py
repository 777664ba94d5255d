"""Indexes the payment matching joins on (receivables.matching).

They sit on billing's and portal's tables because matching is what reads
them that way: a payment reference as printed, a document number written
with or without separators, and a customer number's digits (the customer
part of RF, RO, PL and SK references).
"""

from django.db import migrations

FORWARD = r"""
CREATE INDEX receivables_invoice_reference ON billing_invoice (payment_reference)
    WHERE payment_reference <> '';
CREATE INDEX receivables_invoice_doc_key ON billing_invoice
    ((upper(regexp_replace(document_number, '[^0-9A-Za-z]', '', 'g'))))
    WHERE document_number <> '';
CREATE INDEX receivables_customer_digits ON portal_customer
    ((NULLIF(regexp_replace(number, '\D', '', 'g'), '')::numeric));
CREATE INDEX receivables_invoice_payable ON billing_invoice (customer_id, due_date, id)
    WHERE amount_due > 0;
CREATE INDEX receivables_invoice_amount ON billing_invoice (amount_due, due_date)
    WHERE amount_due > 0;
"""

BACKWARD = """
DROP INDEX receivables_invoice_amount;
DROP INDEX receivables_invoice_payable;
DROP INDEX receivables_customer_digits;
DROP INDEX receivables_invoice_doc_key;
DROP INDEX receivables_invoice_reference;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("receivables", "0002_ledger_never_changes"),
        ("billing", "0003_billing_runs_and_delivery"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
