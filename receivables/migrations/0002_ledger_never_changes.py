"""The database refuses changes to the ledger, to allocations and to posted payments.

Ledger entries and allocations are never updated or deleted: corrections are
new rows. A posted payment keeps its money and identity; only its match may
change: the customer (set once), how it was matched and the amount not yet
allocated.
"""

from django.db import migrations

PAYMENT_KEEP = "ARRAY['customer_id', 'match_method', 'unallocated']"

FORWARD = f"""
CREATE FUNCTION receivables_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never changed or deleted; add a correcting row', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER receivables_ledgerentry_guard BEFORE UPDATE OR DELETE ON receivables_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION receivables_append_only();
CREATE TRIGGER receivables_allocation_guard BEFORE UPDATE OR DELETE ON receivables_allocation
    FOR EACH ROW EXECUTE FUNCTION receivables_append_only();

CREATE FUNCTION receivables_payment_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'payment % cannot be deleted; reverse it', OLD.txn_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF (to_jsonb(NEW) - {PAYMENT_KEEP}) <> (to_jsonb(OLD) - {PAYMENT_KEEP})
       OR (OLD.customer_id IS NOT NULL AND NEW.customer_id IS DISTINCT FROM OLD.customer_id)
       OR NEW.unallocated < 0 THEN
        RAISE EXCEPTION 'payment % cannot change', OLD.txn_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER receivables_payment_guard BEFORE UPDATE OR DELETE ON receivables_payment
    FOR EACH ROW EXECUTE FUNCTION receivables_payment_guard();
"""

BACKWARD = """
DROP TRIGGER receivables_payment_guard ON receivables_payment;
DROP FUNCTION receivables_payment_guard();
DROP TRIGGER receivables_allocation_guard ON receivables_allocation;
DROP TRIGGER receivables_ledgerentry_guard ON receivables_ledgerentry;
DROP FUNCTION receivables_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("receivables", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
