"""Reading imports: staged, validated with line numbers, posted whole, never twice."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from meters import imports
from meters.models import ImportStatus, Reading, ReadingImport, ReadingStatus, Register
from portal.imports import ImportFileError, iter_rows
from portal.models import Task, TaskKind, User
from portal.roles import Role
from tests.meters.conftest import AddHistory


def csv_upload(text: str, name: str = "readings.csv", bom: bool = False) -> SimpleUploadedFile:
    data = text.encode("utf-8")
    return SimpleUploadedFile(name, (b"\xef\xbb\xbf" if bom else b"") + data, "text/csv")


def xlsx_upload(rows: list[list[object]], name: str = "readings.xlsx") -> SimpleUploadedFile:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return SimpleUploadedFile(name, buffer.getvalue())


@pytest.fixture
def coordinator(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.METER_READING)


@pytest.fixture
def history(register: Register, water_register: Register, add_history: AddHistory) -> None:
    add_history(register, [(date(2025, 1, 31), 1000), (date(2025, 2, 28), 1280)])
    add_history(water_register, [(date(2025, 1, 31), "100.50"), (date(2025, 2, 28), "110.50")])


GOOD = (
    "supply_point_code;register;read_on;value;reason\n"
    "RO005E000000000001;1.8.0;2025-03-31;1590;periodic\n"
    "RO-W-000000000001;W;31.03.2025;121,25;\n"
)


# --- Reading the file ------------------------------------------------------------------


def test_it_streams_csv_rows_with_line_numbers_and_comma_delimiter() -> None:
    text = "\ufeffMeter,Register,Read on,Value\nE-1,1.8.0,2025-03-31,5\n\nE-2,1.8.0,2025-03-31,6\n"
    data = io.BytesIO(text.encode())
    rows = list(iter_rows(data, "x.csv"))
    assert rows == [
        (2, {"meter": "E-1", "register": "1.8.0", "read_on": "2025-03-31", "value": "5"}),
        (4, {"meter": "E-2", "register": "1.8.0", "read_on": "2025-03-31", "value": "6"}),
    ]


def test_it_refuses_a_huge_line_with_its_number() -> None:
    data = io.BytesIO(b"meter;register;read_on;value\nE-1;1;2025-03-31;" + b"9" * 50_000 + b"\n")
    with pytest.raises(ImportFileError, match="Line 2"):
        list(iter_rows(data, "x.csv"))


def test_it_refuses_a_file_that_is_not_a_spreadsheet() -> None:
    with pytest.raises(ImportFileError, match="not an Excel workbook"):
        list(iter_rows(io.BytesIO(b"%PDF-1.7 hello"), "x.xlsx"))
    with pytest.raises(ImportFileError, match="not a text"):
        list(iter_rows(io.BytesIO(b"\x89PNG\r\n\x1a\n\x00\x00"), "x.csv"))


def _zip(members: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def test_it_refuses_a_zip_bomb() -> None:
    bomb = _zip({"xl/workbook.xml": b"<workbook/>", "xl/worksheets/sheet1.xml": b"0" * 60_000_000})
    with pytest.raises(ImportFileError, match="zip bomb"):
        list(iter_rows(bomb, "bomb.xlsx"))


def test_it_refuses_xml_entities() -> None:
    xxe = _zip({
        "xl/workbook.xml": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                           b"<workbook>&e;</workbook>",
    })
    with pytest.raises(ImportFileError, match="DTD"):
        list(iter_rows(xxe, "xxe.xlsx"))


def test_it_refuses_a_corrupt_xlsx() -> None:
    with pytest.raises(ImportFileError, match="damaged"):
        list(iter_rows(io.BytesIO(b"PK\x03\x04garbage"), "broken.xlsx"))


# --- Validation and posting ----------------------------------------------------------------


def test_it_reports_every_bad_row_with_its_line_and_posts_nothing(
    history: None, coordinator: User, register: Register
) -> None:
    text = (
        "supply_point_code;register;read_on;value\n"
        "RO005E000000000001;1.8.0;2025-03-31;1590\n"   # 2 good
        "RO005E000000000001;9.9.9;2025-03-31;1590\n"   # 3 unknown register
        "RO-NOPE;1.8.0;2025-03-31;1590\n"              # 4 unknown point
        "RO005E000000000001;1.8.0;31-31-2025;1590\n"   # 5 bad date
        "RO-W-000000000001;W;2025-03-31;12a\n"         # 6 bad number
        "RO005E000000000001;1.8.0;2025-03-31;1600\n"   # 7 duplicate of line 2
        "RO-W-000000000001;W;2025-03-31;50\n"          # 8 lower than previous: rejected
    )
    imp = imports.stage_import(upload=csv_upload(text), uploaded_by=coordinator)
    assert imp.status == ImportStatus.FAILED
    assert imp.row_count == 7
    found = {(e["line"], e["column"]): e["message"] for e in imp.errors}
    assert set(found) == {(3, "register"), (4, "register"), (5, "read_on"), (6, "value"),
                          (7, "read_on"), (8, "value")}
    assert "9.9.9" in found[3, "register"]
    assert "RO-NOPE" in found[4, "register"]
    assert "line 2" in found[7, "read_on"]
    assert "lower than the previous" in found[8, "value"]
    assert imp.error_count == 6
    assert not Reading.objects.filter(import_batch=imp).exists()
    with pytest.raises(imports.ServiceError):
        imports.commit_import(imp=imp, committed_by=coordinator)
    assert Reading.objects.filter(read_on=date(2025, 3, 31)).count() == 0


def test_it_posts_a_good_csv_in_one_go(
    history: None, coordinator: User, register: Register, water_register: Register
) -> None:
    imp = imports.stage_import(upload=csv_upload(GOOD, bom=True), uploaded_by=coordinator)
    assert (imp.status, imp.error_count, imp.row_count) == (ImportStatus.VALIDATED, 0, 2)
    assert not Reading.objects.filter(import_batch=imp).exists()
    imports.commit_import(imp=imp, committed_by=coordinator)
    imp.refresh_from_db()
    assert imp.status == ImportStatus.COMMITTED
    posted = {r.register_id: r for r in Reading.objects.filter(import_batch=imp)}
    assert posted[register.pk].value == Decimal("1590")
    assert posted[register.pk].consumption == Decimal("310")
    assert posted[register.pk].source == "imported"
    assert posted[register.pk].entered_by == coordinator
    assert posted[water_register.pk].value == Decimal("121.25")
    assert posted[water_register.pk].public_id is not None
    assert not Task.objects.filter(kind=TaskKind.READING_REVIEW).exists()


def test_it_posts_a_good_xlsx_by_meter_serial(
    history: None, coordinator: User, register: Register, water_register: Register
) -> None:
    rows: list[list[object]] = [
        ["Meter", "Register", "Read on", "Value"],
        ["E-1000001", "1.8.0", date(2025, 3, 31), 1590],
        ["W-2000001", "W", "2025-03-31", 121.25],
    ]
    imp = imports.stage_import(upload=xlsx_upload(rows), uploaded_by=coordinator)
    assert imp.errors == []
    imports.commit_import(imp=imp, committed_by=coordinator)
    assert sorted(Reading.objects.filter(import_batch=imp).values_list("value", flat=True)) == [
        Decimal("121.25"), Decimal("1590")]


def test_it_posts_flagged_rows_with_one_review_task_per_file(
    history: None, coordinator: User, register: Register
) -> None:
    text = (
        "meter;register;read_on;value\n"
        "E-1000001;1.8.0;2025-03-31;1600\n"
        "E-1000001;1.8.0;2025-04-30;9000\n"   # far above the expected band: flagged
        "E-1000001;1.8.0;2025-05-31;20000\n"  # again
    )
    imp = imports.stage_import(upload=csv_upload(text), uploaded_by=coordinator)
    assert imp.status == ImportStatus.VALIDATED, imp.errors
    imports.commit_import(imp=imp, committed_by=coordinator)
    statuses = list(Reading.objects.filter(import_batch=imp).order_by("read_on")
                    .values_list("status", flat=True))
    assert statuses[0] == ReadingStatus.ACCEPTED
    assert statuses[1:] == [ReadingStatus.FLAGGED, ReadingStatus.FLAGGED]
    assert Task.objects.filter(kind=TaskKind.READING_REVIEW).count() == 1


def test_it_refuses_the_same_file_twice_even_renamed(history: None, coordinator: User) -> None:
    imports.stage_import(upload=csv_upload(GOOD), uploaded_by=coordinator)
    with pytest.raises(imports.DuplicateFile, match="waiting to be posted"):
        imports.stage_import(upload=csv_upload(GOOD, name="other-name.csv"),
                             uploaded_by=coordinator)
    assert ReadingImport.objects.count() == 1


def test_it_refuses_a_posted_file_but_accepts_a_discarded_one_again(
    history: None, coordinator: User
) -> None:
    imp = imports.stage_import(upload=csv_upload(GOOD), uploaded_by=coordinator)
    imports.discard_import(imp=imp, discarded_by=coordinator)
    again = imports.stage_import(upload=csv_upload(GOOD), uploaded_by=coordinator)
    imports.commit_import(imp=again, committed_by=coordinator)
    with pytest.raises(imports.DuplicateFile, match="already posted"):
        imports.stage_import(upload=csv_upload(GOOD, name="renamed.csv"), uploaded_by=coordinator)


def test_it_reports_a_missing_column(coordinator: User) -> None:
    imp = imports.stage_import(upload=csv_upload("meter;value\nE-1;5\n"), uploaded_by=coordinator)
    assert imp.status == ImportStatus.FAILED
    assert "register" in imp.errors[0]["message"]


def test_it_uses_the_previous_row_of_the_file_as_previous_reading(
    history: None, coordinator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "CHUNK_ROWS", 1)  # across chunks, through the staging table
    text = (
        "meter;register;read_on;value\n"
        "E-1000001;1.8.0;2025-03-31;1600\n"
        "E-1000001;1.8.0;2025-04-30;1500\n"   # below line 2: rejected
        "E-1000001;1.8.0;2025-03-31;1610\n"   # same day as line 2
    )
    imp = imports.stage_import(upload=csv_upload(text), uploaded_by=coordinator)
    lines = {e["line"]: e["message"] for e in imp.errors}
    assert set(lines) == {3, 4}
    assert "line 2" in lines[4]


# --- Office pages ---------------------------------------------------------------------


def test_it_uploads_shows_errors_with_lines_and_posts_nothing(
    history: None, coordinator: User, client_for: Callable[[User], Client]
) -> None:
    client = client_for(coordinator)
    text = GOOD + "RO005E000000000001;1.8.0;2025-13-01;1700;\n"
    response = client.post(reverse("meters-office:import-upload"),
                           {"file": csv_upload(text)})
    imp = ReadingImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("meters-office:import-detail", args=[imp.public_id])
    page = client.get(response["Location"])
    assert page.status_code == 200
    content = page.content.decode()
    assert "2025-13-01" in content and ">4<" in content
    assert "Post all" not in content
    refused = client.post(reverse("meters-office:import-commit", args=[imp.public_id]))
    assert refused.status_code == 302
    assert not Reading.objects.filter(import_batch=imp).exists()


def test_it_posts_a_checked_file_from_its_page(
    history: None, coordinator: User, client_for: Callable[[User], Client]
) -> None:
    client = client_for(coordinator)
    client.post(reverse("meters-office:import-upload"), {"file": csv_upload(GOOD)})
    imp = ReadingImport.objects.get()
    assert "Post all 2 readings" in client.get(
        reverse("meters-office:import-detail", args=[imp.public_id])).content.decode()
    client.post(reverse("meters-office:import-commit", args=[imp.public_id]))
    assert Reading.objects.filter(import_batch=imp).count() == 2


def test_it_shows_why_an_upload_is_refused_next_to_the_field(
    history: None, coordinator: User, client_for: Callable[[User], Client]
) -> None:
    client = client_for(coordinator)
    client.post(reverse("meters-office:import-upload"), {"file": csv_upload(GOOD)})
    again = client.post(reverse("meters-office:import-upload"),
                        {"file": csv_upload(GOOD, name="copy.csv")}, HTTP_HX_REQUEST="true")
    assert again.status_code == 400
    assert "already waiting to be posted" in again.content.decode()
    assert 'id="upload-form"' in again.content.decode()
    assert ReadingImport.objects.count() == 1


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("readings.xlsx", b"just text", "not an Excel workbook"),
        ("readings.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text"),
        ("readings.csv", b"meter;register;read_on;value\nE;1;2025-01-01;" + b"1" * 20_000,
         "Line 2"),
    ],
)
def test_it_answers_a_malicious_upload_with_a_specific_message(
    coordinator: User, client_for: Callable[[User], Client], name: str, data: bytes,
    message: str,
) -> None:
    response = client_for(coordinator).post(
        reverse("meters-office:import-upload"), {"file": SimpleUploadedFile(name, data)},
        follow=True,
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Reading.objects.exists()


def test_it_lists_imports_in_a_fixed_number_of_queries(
    history: None, coordinator: User, client_for: Callable[[User], Client],
    django_assert_num_queries: Any,
) -> None:
    client = client_for(coordinator)
    for n in range(3):
        imports.stage_import(upload=csv_upload(GOOD + f"# {n}\n"), uploaded_by=coordinator)
    client.get(reverse("meters-office:import-list"))  # warm the session and user caches
    # Office overhead (9): session, user, role groups, MFA check, own and group
    # permissions (2), saving the session (savepoint, UPDATE, release);
    # + COUNT of the imports for the paginator
    # + the page of imports with their uploader (one JOIN).
    with django_assert_num_queries(9 + 2):
        response = client.get(reverse("meters-office:import-list"))
    assert response.content.decode().count("readings.csv") == 3


OFFICE_URLS = [
    ("get", "meters-office:import-list", False),
    ("get", "meters-office:import-upload", False),
    ("get", "meters-office:import-detail", True),
    ("post", "meters-office:import-commit", True),
    ("post", "meters-office:import-discard", True),
]


@pytest.fixture
def some_import(history: None, coordinator: User) -> ReadingImport:
    return imports.stage_import(upload=csv_upload(GOOD), uploaded_by=coordinator)


@pytest.mark.parametrize(("method", "name", "with_id"), OFFICE_URLS)
def test_it_hides_import_pages_from_customers(
    alice: User, client_for: Callable[[User], Client], some_import: ReadingImport,
    method: str, name: str, with_id: bool,
) -> None:
    url = reverse(name, args=[some_import.public_id] if with_id else [])
    assert getattr(client_for(alice), method)(url).status_code == 404


@pytest.mark.parametrize(("method", "name", "with_id"), OFFICE_URLS)
def test_it_forbids_import_pages_to_other_staff(
    make_staff: Callable[[Role], User], client_for: Callable[[User], Client],
    some_import: ReadingImport, method: str, name: str, with_id: bool,
) -> None:
    url = reverse(name, args=[some_import.public_id] if with_id else [])
    response = getattr(client_for(make_staff(Role.COLLECTIONS)), method)(url)
    assert response.status_code == 403
    some_import.refresh_from_db()
    assert some_import.status == ImportStatus.VALIDATED


def test_it_lets_billing_see_but_not_post_imports(
    make_staff: Callable[[Role], User], client_for: Callable[[User], Client],
    some_import: ReadingImport,
) -> None:
    client = client_for(make_staff(Role.BILLING))
    assert client.get(reverse("meters-office:import-list")).status_code == 403
    assert client.post(reverse("meters-office:import-commit",
                               args=[some_import.public_id])).status_code == 403
    assert not Reading.objects.filter(import_batch=some_import).exists()


def test_it_fails_a_file_with_only_a_header(coordinator: User) -> None:
    imp = imports.stage_import(upload=csv_upload("meter;register;read_on;value\n"),
                               uploaded_by=coordinator)
    assert imp.status == ImportStatus.FAILED
    assert imp.errors[0]["message"] == "The file has no readings."


def test_it_refuses_an_xlsx_whose_sheet_declares_entities(
    coordinator: User, history: None
) -> None:
    good = xlsx_upload([["meter", "register", "read_on", "value"], ["E-1000001", "1.8.0",
                                                                    "2025-03-31", 1590]])
    source = zipfile.ZipFile(io.BytesIO(good.read()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                declaration = b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                if data.startswith(b"<?xml"):
                    end = data.index(b"?>") + 2
                    data = data[:end] + declaration + data[end:]
                else:
                    data = declaration + data
            target.writestr(item, data)
    imp = imports.stage_import(upload=SimpleUploadedFile("evil.xlsx", buffer.getvalue()),
                               uploaded_by=coordinator)
    assert imp.status == ImportStatus.FAILED
    assert "DTD" in imp.errors[0]["message"]
    assert not Reading.objects.filter(import_batch=imp).exists()


def test_it_rejects_an_unknown_reason(history: None, coordinator: User) -> None:
    text = "meter;register;read_on;value;reason\nE-1000001;1.8.0;2025-03-31;1590;whim\n"
    imp = imports.stage_import(upload=csv_upload(text), uploaded_by=coordinator)
    assert imp.errors[0]["line"] == 2 and imp.errors[0]["column"] == "reason"


def test_it_discards_a_failed_file(history: None, coordinator: User,
                                   client_for: Callable[[User], Client]) -> None:
    imp = imports.stage_import(upload=csv_upload("meter;value\nE;1\n"), uploaded_by=coordinator)
    client_for(coordinator).post(reverse("meters-office:import-discard", args=[imp.public_id]))
    imp.refresh_from_db()
    assert imp.status == ImportStatus.DISCARDED


def test_it_pages_the_errors(coordinator: User, client_for: Callable[[User], Client],
                            history: None) -> None:
    text = "meter;register;read_on;value\n" + "".join(
        f"E-1000001;1.8.0;bad-{n};1\n" for n in range(150))
    imp = imports.stage_import(upload=csv_upload(text), uploaded_by=coordinator)
    assert imp.error_count == 150
    url = reverse("meters-office:import-detail", args=[imp.public_id])
    client = client_for(coordinator)
    first = client.get(url).content.decode()
    assert "bad-0" in first and "bad-99" in first and "bad-100" not in first
    assert 'rel="next"' in first
    second = client.get(url, {"page": 2}, HTTP_HX_REQUEST="true").content.decode()
    assert "bad-149" in second and 'id="errors"' in second and "<h1>" not in second
