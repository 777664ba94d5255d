"""The database itself refuses changes to issued documents and their lines.

Invoice.save() checks the same in Python; these triggers also stop
QuerySet.update(), bulk_create() and raw SQL. After issue only the status may
change, and the payment reference and the PDF may be set once.
"""

from django.db import migrations

KEEP = "ARRAY['status', 'updated_at', 'payment_reference', 'pdf', 'pdf_sha256']"

FORWARD = f"""
CREATE FUNCTION billing_invoice_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'draft' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'issued document % cannot be deleted', OLD.document_number
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.status = 'draft'
       OR (to_jsonb(NEW) - {KEEP}) <> (to_jsonb(OLD) - {KEEP})
       OR (OLD.payment_reference <> '' AND NEW.payment_reference <> OLD.payment_reference)
       OR (OLD.pdf <> '' AND NEW.pdf <> OLD.pdf)
       OR (OLD.pdf_sha256 <> '' AND NEW.pdf_sha256 <> OLD.pdf_sha256) THEN
        RAISE EXCEPTION 'issued document % cannot change', OLD.document_number
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER billing_invoice_guard BEFORE UPDATE OR DELETE ON billing_invoice
    FOR EACH ROW EXECUTE FUNCTION billing_invoice_guard();

CREATE FUNCTION billing_invoiceline_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    new_invoice bigint;
    old_invoice bigint;
BEGIN
    IF TG_OP <> 'DELETE' THEN
        new_invoice := NEW.invoice_id;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        old_invoice := OLD.invoice_id;
    END IF;
    IF EXISTS (
        SELECT 1 FROM billing_invoice
        WHERE status <> 'draft' AND (id = new_invoice OR id = old_invoice)
    ) THEN
        RAISE EXCEPTION 'the lines of an issued document cannot change'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER billing_invoiceline_guard BEFORE INSERT OR UPDATE OR DELETE
    ON billing_invoiceline
    FOR EACH ROW EXECUTE FUNCTION billing_invoiceline_guard();
"""

BACKWARD = """
DROP TRIGGER billing_invoiceline_guard ON billing_invoiceline;
DROP FUNCTION billing_invoiceline_guard();
DROP TRIGGER billing_invoice_guard ON billing_invoice;
DROP FUNCTION billing_invoice_guard();
"""


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
