"""What the database and the models refuse: changed issued documents, bad totals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing import services
from billing.models import (
    ImmutableDocumentError,
    Invoice,
    InvoiceLine,
    InvoiceSeries,
    InvoiceStatus,
    PriceAgreement,
    PriceComponent,
    PriceList,
    PriceListVersion,
    PublishedError,
    SeriesKind,
)
from portal.models import Customer, User
from portal.roles import Role
from tests.billing.conftest import MakeDraft

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture
def issued(customer: Customer, make_draft: MakeDraft) -> Invoice:
    return services.issue_invoice(invoice=make_draft(customer, [("10.00", "19")]),
                                  issued_by=None)


def test_it_refuses_to_change_an_issued_invoice(issued: Invoice) -> None:
    issued.gross_total = D("1.00")
    issued.net_total = D("0.81")
    with pytest.raises(ImmutableDocumentError):
        issued.save()
    fresh = Invoice.objects.get(pk=issued.pk)
    fresh.due_date = date(2030, 1, 1)
    with pytest.raises(ImmutableDocumentError):
        fresh.save()
    with pytest.raises(ImmutableDocumentError):
        Invoice.objects.get(pk=issued.pk).delete()
    assert Invoice.objects.get(pk=issued.pk).gross_total == D("11.90")


def test_it_refuses_changes_that_bypass_save(issued: Invoice) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.filter(pk=issued.pk).update(due_date=date(2030, 1, 1))
    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceLine.objects.filter(invoice=issued).update(description="Something else")
    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceLine.objects.filter(invoice=issued).delete()
    line = issued.lines.get()
    with pytest.raises(ImmutableDocumentError):
        line.save()


def test_it_lets_an_issued_invoice_change_status_and_get_its_reference_and_pdf_once(
    issued: Invoice,
) -> None:
    issued.status = InvoiceStatus.PARTLY_PAID
    issued.payment_reference = "RF18539007547034"
    issued.pdf_sha256 = "a" * 64
    issued.save()
    issued.status = InvoiceStatus.PAID
    issued.save(update_fields=["status", "updated_at"])
    assert Invoice.objects.get(pk=issued.pk).status == InvoiceStatus.PAID
    issued.payment_reference = "RF00OTHER"
    with pytest.raises(ImmutableDocumentError):
        issued.save()
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.filter(pk=issued.pk).update(payment_reference="RF00OTHER")
    issued.refresh_from_db()
    issued.status = InvoiceStatus.DRAFT
    with pytest.raises(ImmutableDocumentError):
        issued.save()


def test_it_lets_a_draft_change_and_be_deleted(customer: Customer,
                                               make_draft: MakeDraft) -> None:
    draft = make_draft(customer, [("10.00", "19")])
    draft.note = "Checked"
    draft.save()
    line = draft.lines.get()
    line.description = "Corrected"
    line.save()
    draft.delete()
    assert not Invoice.objects.exists()


def test_it_keeps_gross_equal_to_net_plus_vat_in_the_database(
    customer: Customer, make_draft: MakeDraft,
) -> None:
    draft = make_draft(customer, [("10.00", "19")])
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.filter(pk=draft.pk).update(gross_total=D("12.00"))


def test_it_requires_a_number_exactly_when_issued(
    customer: Customer, series: dict[str, InvoiceSeries],
) -> None:
    common = {"customer": customer, "series": series[SeriesKind.INVOICE], "currency": "EUR"}
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.create(**common, status=InvoiceStatus.ISSUED)
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.create(**common, number=5, issue_date=date(2026, 1, 1))


def test_it_refuses_a_number_twice_in_a_series_and_year(
    customer: Customer, series: dict[str, InvoiceSeries],
) -> None:
    common = {"customer": customer, "series": series[SeriesKind.INVOICE], "currency": "EUR",
              "status": InvoiceStatus.ISSUED, "number": 1}
    Invoice.objects.create(**common, issue_date=date(2026, 1, 1))
    Invoice.objects.create(**common, issue_date=date(2027, 1, 1))  # a new year starts at 1
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.create(**common, issue_date=date(2026, 12, 31))


def test_it_freezes_a_published_price_list_version(price_list: PriceList) -> None:
    version = PriceListVersion.objects.get()
    component = version.components.get(code="energy")
    component.unit_price = D("0.01")
    with pytest.raises(PublishedError):
        component.save()
    with pytest.raises(PublishedError):
        component.tiers.get().delete()
    version.note = "cheaper"
    with pytest.raises(PublishedError):
        version.save()
    with pytest.raises(PublishedError):
        PriceComponent(version=version, code="new", name="New", kind="per_unit", unit="kWh",
                       unit_price=D("1")).save()
    draft = PriceListVersion.objects.create(price_list=price_list, valid_from=date(2026, 1, 1))
    PriceComponent.objects.create(version=draft, code="energy", name="Energy", kind="per_unit",
                                  unit="kWh", unit_price=D("0.85"))
    draft.published_at = timezone.now()
    draft.save()
    assert PriceComponent.objects.get(version=draft).unit_price == D("0.85")


def test_it_needs_an_agreement_to_be_a_price_or_a_discount(customer: Customer) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        PriceAgreement.objects.create(customer=customer, component_code="energy",
                                      unit_price=D("1"), discount_percent=D("5"),
                                      valid_from=date(2026, 1, 1))
    with pytest.raises(IntegrityError), transaction.atomic():
        PriceAgreement.objects.create(customer=customer, unit_price=D("1"),
                                      valid_from=date(2026, 1, 1))


@pytest.fixture
def admin_client(make_staff: Callable[[Role], User], client_for: Callable[[User], Client]
                 ) -> Client:
    user = make_staff(Role.ADMINISTRATOR)
    user.is_staff = user.is_superuser = True
    user.save(update_fields=["is_staff", "is_superuser"])
    return client_for(user)


def test_it_shows_a_published_version_read_only_in_the_admin(
    admin_client: Client, price_list: PriceList, series: dict[str, InvoiceSeries],
) -> None:
    version = PriceListVersion.objects.get()
    for name in ["vatrate", "pricelist", "pricelistversion", "pricecomponent", "invoiceseries",
                 "priceagreement", "tariffassignment"]:
        assert admin_client.get(reverse(f"admin:billing_{name}_changelist")).status_code == 200
    page = admin_client.get(reverse("admin:billing_pricelistversion_change", args=[version.pk]))
    assert page.status_code == 200
    assert b'name="valid_from"' not in page.content  # view only
    response = admin_client.post(
        reverse("admin:billing_pricelistversion_change", args=[version.pk]),
        {"valid_from": "2020-01-01", "note": "changed"},
    )
    assert response.status_code == 403
    assert PriceListVersion.objects.get().valid_from == date(2025, 1, 1)


def test_it_publishes_a_draft_version_from_the_admin(
    admin_client: Client, price_list: PriceList,
) -> None:
    draft = PriceListVersion.objects.create(price_list=price_list, valid_from=date(2026, 1, 1))
    page = admin_client.get(reverse("admin:billing_pricelistversion_change", args=[draft.pk]))
    assert b'name="valid_from"' in page.content
    admin_client.post(reverse("admin:billing_pricelistversion_changelist"), {
        "action": "publish", "_selected_action": [draft.pk],
    })
    draft.refresh_from_db()
    assert draft.is_published


def test_the_database_guard_names_every_frozen_column(db: None) -> None:
    """A new Invoice field must be added to the guard (migration 0004 builds its list)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'billing_invoice_guard'")
        (source,) = cursor.fetchone()
    keep = {"status", "updated_at", "payment_reference", "pdf", "pdf_sha256"}
    missing = [
        f.column for f in Invoice._meta.concrete_fields
        if f.attname not in keep and f"NEW.{f.column}," not in source + ","
        and f"NEW.{f.column})" not in source
    ]
    assert not missing, f"billing_invoice_guard does not compare {missing}: add a migration"
