"""Office pages for payment files: upload, check, post, discard; who may see them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from billing.models import InvoiceStatus
from portal.models import Customer, User
from portal.roles import Role
from receivables.models import Collector, ImportStatus, Payment, PaymentImport
from tests.receivables.conftest import Issue
from tests.receivables.statements import Tx, camt053

ClientFor = Callable[[User], Client]


@pytest.fixture
def clerk(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.COLLECTIONS)


def test_a_clerk_uploads_checks_and_posts_a_statement(
    client_for: ClientFor, clerk: User, customer: Customer, issue: Issue, bank: Collector,
    django_capture_on_commit_callbacks: Any,
) -> None:
    invoice = issue(customer, "121.00")
    client = client_for(clerk)
    data = camt053([Tx("121.00", ref=invoice.payment_reference)])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("receivables-office:file-upload"), {
            "collector": bank.pk, "file": SimpleUploadedFile("stmt.xml", data),
        })
    imp = PaymentImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("receivables-office:file", args=[imp.public_id])
    page = client.get(response["Location"])
    assert imp.status == ImportStatus.CHECKED or page.context["imp"].status == "checked"
    assert "Post 1 payment" in page.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("receivables-office:file-post", args=[imp.public_id]))
    imp.refresh_from_db()
    invoice.refresh_from_db()
    assert imp.status == ImportStatus.POSTED
    assert invoice.status == InvoiceStatus.PAID
    listing = client.get(reverse("receivables-office:files")).content.decode()
    assert "stmt.xml" in listing


def test_the_same_file_again_is_refused_next_to_the_field(
    client_for: ClientFor, clerk: User, bank: Collector, django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_for(clerk)
    data = camt053([Tx("5.00", text="x")])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("receivables-office:file-upload"),
                    {"collector": bank.pk, "file": SimpleUploadedFile("a.xml", data)})
    response = client.post(reverse("receivables-office:file-upload"),
                           {"collector": bank.pk, "file": SimpleUploadedFile("b.xml", data)})
    assert response.status_code == 400
    assert "already waiting to be posted" in response.content.decode()
    assert PaymentImport.objects.count() == 1


def test_a_broken_file_shows_its_reason_and_can_be_discarded(
    client_for: ClientFor, clerk: User, bank: Collector, django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_for(clerk)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("receivables-office:file-upload"), {
            "collector": bank.pk, "file": SimpleUploadedFile("x.xml", b"%PDF-1.4 not a statement"),
        })
    imp = PaymentImport.objects.get()
    page = client.get(reverse("receivables-office:file", args=[imp.public_id])).content.decode()
    assert imp.problem and imp.problem[:30] in page
    client.post(reverse("receivables-office:file-discard", args=[imp.public_id]))
    imp.refresh_from_db()
    assert imp.status == ImportStatus.DISCARDED
    assert not Payment.objects.exists()


def test_the_file_list_costs_the_same_for_one_and_many_files(
    client_for: ClientFor, clerk: User, bank: Collector, django_assert_num_queries: Any,
) -> None:
    client = client_for(clerk)
    url = reverse("receivables-office:files")
    client.get(url)  # warm the session and the staff checks
    counts = []
    for total in (1, 30):
        while PaymentImport.objects.count() < total:
            n = PaymentImport.objects.count()
            PaymentImport.objects.create(collector=bank, file_name=f"f{n}.xml", sha256=f"{n:064d}",
                                         uploaded_by=clerk)
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        counts.append(len(queries))
    # Office overhead, then: COUNT of files, one page of files with collector and uploader.
    assert counts[0] == counts[1]


@pytest.mark.parametrize("name", ["files", "file-upload"])
def test_outsiders_and_other_roles_cannot_open_the_file_pages(
    client_for: ClientFor, alice: User, make_staff: Callable[[Role], User], name: str,
) -> None:
    url = reverse(f"receivables-office:{name}")
    assert client_for(alice).get(url).status_code == 404
    assert client_for(make_staff(Role.METER_READING)).get(url).status_code == 403


def test_outsiders_cannot_post_or_discard_a_file(
    client_for: ClientFor, alice: User, make_staff: Callable[[Role], User], bank: Collector,
    clerk: User,
) -> None:
    imp = PaymentImport.objects.create(collector=bank, file_name="f.xml", sha256="1" * 64,
                                       uploaded_by=clerk, status=ImportStatus.CHECKED)
    reader = make_staff(Role.METER_READING)
    for name, method in (("file", "get"), ("file-post", "post"), ("file-discard", "post")):
        url = reverse(f"receivables-office:{name}", args=[imp.public_id])
        assert getattr(client_for(alice), method)(url).status_code == 404
        assert getattr(client_for(reader), method)(url).status_code == 403
    imp.refresh_from_db()
    assert imp.status == ImportStatus.CHECKED
