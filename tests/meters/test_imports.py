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
import time_machine
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.urls import reverse

from meters import imports, plausibility
from meters.models import (
    ImportStatus,
    Meter,
    Reading,
    ReadingImport,
    ReadingStatus,
    Register,
    Service,
    SupplyPoint,
)
from portal.imports import ImportFileError, iter_rows
from portal.models import Customer, Task, TaskKind, User
from portal.roles import Role
from tests.meters.conftest import AddHistory, _add_history


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


def stage_and_check(*, upload: SimpleUploadedFile, uploaded_by: User) -> ReadingImport:
    """Upload a file and run its check (the Celery task, which the test transaction holds)."""
    return imports.check_import(imports.stage_import(upload=upload, uploaded_by=uploaded_by))


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
    imp = stage_and_check(upload=csv_upload(text), uploaded_by=coordinator)
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
    imp = stage_and_check(upload=csv_upload(GOOD, bom=True), uploaded_by=coordinator)
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
    imp = stage_and_check(upload=xlsx_upload(rows), uploaded_by=coordinator)
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
    imp = stage_and_check(upload=csv_upload(text), uploaded_by=coordinator)
    assert imp.status == ImportStatus.VALIDATED, imp.errors
    imports.commit_import(imp=imp, committed_by=coordinator)
    statuses = list(Reading.objects.filter(import_batch=imp).order_by("read_on")
                    .values_list("status", flat=True))
    assert statuses[0] == ReadingStatus.ACCEPTED
    assert statuses[1:] == [ReadingStatus.FLAGGED, ReadingStatus.FLAGGED]
    assert Task.objects.filter(kind=TaskKind.READING_REVIEW).count() == 1


def test_it_refuses_the_same_file_twice_even_renamed(history: None, coordinator: User) -> None:
    stage_and_check(upload=csv_upload(GOOD), uploaded_by=coordinator)
    with pytest.raises(imports.DuplicateFile, match="waiting to be posted"):
        stage_and_check(upload=csv_upload(GOOD, name="other-name.csv"),
                             uploaded_by=coordinator)
    assert ReadingImport.objects.count() == 1


def test_it_refuses_a_posted_file_but_accepts_a_discarded_one_again(
    history: None, coordinator: User
) -> None:
    imp = stage_and_check(upload=csv_upload(GOOD), uploaded_by=coordinator)
    imports.discard_import(imp=imp, discarded_by=coordinator)
    again = stage_and_check(upload=csv_upload(GOOD), uploaded_by=coordinator)
    imports.commit_import(imp=again, committed_by=coordinator)
    with pytest.raises(imports.DuplicateFile, match="already posted"):
        stage_and_check(upload=csv_upload(GOOD, name="renamed.csv"), uploaded_by=coordinator)


def test_it_reports_a_missing_column(coordinator: User) -> None:
    imp = stage_and_check(upload=csv_upload("meter;value\nE-1;5\n"), uploaded_by=coordinator)
    assert imp.status == ImportStatus.FAILED
    assert "register" in imp.errors[0]["message"]


def test_it_uses_the_previous_row_of_the_file_as_previous_reading(
    history: None, coordinator: User
) -> None:
    text = (
        "meter;register;read_on;value\n"
        "E-1000001;1.8.0;2025-03-31;1600\n"
        "E-1000001;1.8.0;2025-04-30;1500\n"   # below line 2: rejected
        "E-1000001;1.8.0;2025-03-31;1610\n"   # same day as line 2
    )
    imp = stage_and_check(upload=csv_upload(text), uploaded_by=coordinator)
    lines = {e["line"]: e["message"] for e in imp.errors}
    assert set(lines) == {3, 4}
    assert "line 2" in lines[4]


# --- Office pages ---------------------------------------------------------------------


def test_it_uploads_shows_errors_with_lines_and_posts_nothing(
    history: None, coordinator: User, client_for: Callable[[User], Client],
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_for(coordinator)
    text = GOOD + "RO005E000000000001;1.8.0;2025-13-01;1700;\n"
    with django_capture_on_commit_callbacks(execute=True):
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


def test_it_shows_the_check_under_way_and_refreshes_when_it_ends(
    history: None, coordinator: User, client_for: Callable[[User], Client]
) -> None:
    client = client_for(coordinator)
    client.post(reverse("meters-office:import-upload"), {"file": csv_upload(GOOD)})
    imp = ReadingImport.objects.get()  # the check task waits for the commit
    assert imp.status == ImportStatus.UPLOADED
    url = reverse("meters-office:import-detail", args=[imp.public_id])
    page = client.get(url).content.decode()
    assert "waiting to be checked" in page and 'hx-trigger="every 2s"' in page
    assert "Post all" not in page
    ReadingImport.objects.filter(pk=imp.pk).update(status=ImportStatus.CHECKING)
    cache.set(imports.progress_key(imp), 50_000)
    poll = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="import-progress")
    assert "50000 lines read" in poll.content.decode().replace("\u202f", "").replace(",", "")
    assert "<h1>" not in poll.content.decode()
    imports.check_import(imp)
    done = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="import-progress")
    assert done["HX-Refresh"] == "true"


def test_it_posts_a_checked_file_from_its_page(
    history: None, coordinator: User, client_for: Callable[[User], Client],
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_for(coordinator)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("meters-office:import-upload"), {"file": csv_upload(GOOD)})
    imp = ReadingImport.objects.get()
    assert "Post all 2 readings" in client.get(
        reverse("meters-office:import-detail", args=[imp.public_id])).content.decode()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        client.post(reverse("meters-office:import-commit", args=[imp.public_id]))
    imp.refresh_from_db()
    assert imp.status == ImportStatus.POSTING
    assert "Posting 2 readings" in client.get(
        reverse("meters-office:import-detail", args=[imp.public_id])).content.decode()
    for callback in queued:  # the posting task, run once and then again (a redelivery)
        callback()
        callback()
    assert Reading.objects.filter(import_batch=imp).count() == 2
    imp.refresh_from_db()
    assert imp.status == ImportStatus.COMMITTED


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
    ("name", "data", "message", "at_once"),
    [
        ("readings.xlsx", b"just text", "not an Excel workbook", True),
        ("readings.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text", True),
        ("bomb.xlsx", _zip({"xl/workbook.xml": b"<workbook/>",
                            "xl/worksheets/sheet1.xml": b"0" * 60_000_000}).getvalue(),
         "zip bomb", True),
        ("readings.csv", b"meter;register;read_on;value\nE;1;2025-01-01;" + b"1" * 20_000,
         "Line 2", False),
    ],
)
def test_it_answers_a_malicious_upload_with_a_specific_message(
    coordinator: User, client_for: Callable[[User], Client], name: str, data: bytes,
    message: str, at_once: bool, django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_for(coordinator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("meters-office:import-upload"),
                               {"file": SimpleUploadedFile(name, data)})
    if at_once:  # told next to the field, nothing stored
        assert response.status_code == 400
        assert message in response.content.decode()
        assert not ReadingImport.objects.exists()
    else:  # found by the check, shown on the file's page
        assert response.status_code == 302
        assert message in client.get(response["Location"]).content.decode()
    assert not Reading.objects.exists()


def test_it_lists_imports_in_a_fixed_number_of_queries(
    history: None, coordinator: User, client_for: Callable[[User], Client],
    django_assert_num_queries: Any,
) -> None:
    client = client_for(coordinator)
    for n in range(3):
        stage_and_check(upload=csv_upload(GOOD + f"# {n}\n"), uploaded_by=coordinator)
    client.get(reverse("meters-office:import-list"))  # warm the session and user caches
    # Office overhead (8): session, user, role groups, own and group permissions (2),
    # saving the session (savepoint, UPDATE, release); the MFA check is in the session;
    # + COUNT of the imports for the paginator
    # + the page of imports with their uploader (one JOIN).
    with django_assert_num_queries(8 + 2):
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
    return stage_and_check(upload=csv_upload(GOOD), uploaded_by=coordinator)


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
    imp = stage_and_check(upload=csv_upload("meter;register;read_on;value\n"),
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
    imp = stage_and_check(upload=SimpleUploadedFile("evil.xlsx", buffer.getvalue()),
                               uploaded_by=coordinator)
    assert imp.status == ImportStatus.FAILED
    assert "DTD" in imp.errors[0]["message"]
    assert not Reading.objects.filter(import_batch=imp).exists()


def test_it_rejects_an_unknown_reason(history: None, coordinator: User) -> None:
    text = "meter;register;read_on;value;reason\nE-1000001;1.8.0;2025-03-31;1590;whim\n"
    imp = stage_and_check(upload=csv_upload(text), uploaded_by=coordinator)
    assert imp.errors[0]["line"] == 2 and imp.errors[0]["column"] == "reason"


def test_it_discards_a_failed_file(history: None, coordinator: User,
                                   client_for: Callable[[User], Client]) -> None:
    imp = stage_and_check(upload=csv_upload("meter;value\nE;1\n"), uploaded_by=coordinator)
    client_for(coordinator).post(reverse("meters-office:import-discard", args=[imp.public_id]))
    imp.refresh_from_db()
    assert imp.status == ImportStatus.DISCARDED


def test_it_pages_the_errors(coordinator: User, client_for: Callable[[User], Client],
                            history: None) -> None:
    text = "meter;register;read_on;value\n" + "".join(
        f"E-1000001;1.8.0;bad-{n};1\n" for n in range(150))
    imp = stage_and_check(upload=csv_upload(text), uploaded_by=coordinator)
    assert imp.error_count == 150
    url = reverse("meters-office:import-detail", args=[imp.public_id])
    client = client_for(coordinator)
    first = client.get(url).content.decode()
    assert "bad-0" in first and "bad-99" in first and "bad-100" not in first
    assert 'rel="next"' in first
    second = client.get(url, {"page": 2}, HTTP_HX_REQUEST="true").content.decode()
    assert "bad-149" in second and 'id="errors"' in second and "<h1>" not in second


# --- The set-wise check agrees with the rules ------------------------------------------------


# (index, date) readings after a history of 1000 → 1300 → 1600 over 60 days (5 a day).
EDGE_CASES: list[tuple[str, str]] = [
    ("1750", "2025-03-02"),      # 150 in 30 days: as expected
    ("1630", "2025-03-02"),      # 30 in 30 days: the band's low end is 0.2 × 150 = 30
    ("1629", "2025-03-02"),      # just below it
    ("1631", "2025-03-02"),      # just above it
    ("2050", "2025-03-02"),      # 450: the band's high end, 3 × 150
    ("2051", "2025-03-02"),      # just above it
    ("2049", "2025-03-02"),      # just below it
    ("1600", "2025-03-02"),      # no consumption
    ("16000", "2025-03-02"),     # ten times the previous index: a slipped decimal point
    ("16320", "2025-03-02"),     # within the slip tolerance (2 %)
    ("16330", "2025-03-02"),     # just outside it
    ("160", "2025-03-02"),       # a tenth: lower than the previous
    ("1500", "2025-03-02"),      # lower than the previous
    ("50", "2025-03-02"),        # a wrap of the dial? 999,999 → 50 is not plausible here
    ("1750.5", "2025-03-02"),    # decimals on a whole-number dial
    ("1000000", "2025-03-02"),   # seven digits on a six-digit dial
    ("-5", "2025-03-02"),        # negative
    ("1750", "2025-01-31"),      # before the last reading
    ("1750", "2025-01-30"),      # on the last reading's day
    ("1750", "2099-01-01"),      # in the future
    ("1750", "2023-12-31"),      # before the meter was installed
]


def test_it_judges_every_edge_case_as_the_rules_do(
    customer: Customer, coordinator: User
) -> None:
    """Each case on its own register, same history: SQL accepts exactly what the rules accept."""
    registers = []
    for n, _case in enumerate(EDGE_CASES):
        point = SupplyPoint.objects.create(
            customer=customer, code=f"RO-EDGE-{n:03d}", service=Service.ELECTRICITY,
            street="Str. Mare 1", postal_code="010101", city="București")
        meter = Meter.objects.create(supply_point=point, serial_number=f"E-EDGE-{n:03d}",
                                     installed_on=date(2024, 1, 1))
        registers.append(Register.objects.create(meter=meter, code="1.8.0", name="Total",
                                                 integer_digits=6, decimals=0))
    history = [(date(2024, 12, 1), 1000), (date(2024, 12, 31), 1300), (date(2025, 1, 30), 1600)]
    for register in registers:
        _add_history(register, history)
    text = "supply_point_code;register;read_on;value\n" + "".join(
        f"RO-EDGE-{n:03d};1.8.0;{day};{value}\n" for n, (value, day) in enumerate(EDGE_CASES))
    with time_machine.travel(date(2025, 6, 1)):
        imp = stage_and_check(upload=csv_upload(text), uploaded_by=coordinator)
        rules = plausibility.active_rules()
        contexts = plausibility.load_contexts([r.pk for r in registers])
        expected = {
            n + 2: plausibility.check(contexts[r.pk], Decimal(value), date.fromisoformat(day),
                                      today=date(2025, 6, 1), rules=rules)
            for n, (r, (value, day)) in enumerate(zip(registers, EDGE_CASES, strict=True))
        }
    rejected_lines = {e["line"] for e in imp.errors}
    assert rejected_lines == {line for line, v in expected.items() if v.rejected}
    # Post the rest on their own to compare statuses, findings and consumption.
    good = "supply_point_code;register;read_on;value\n" + "".join(
        f"RO-EDGE-{n:03d};1.8.0;{day};{value}\n" for n, (value, day) in enumerate(EDGE_CASES)
        if not expected[n + 2].rejected)
    with time_machine.travel(date(2025, 6, 1)):
        imp = stage_and_check(upload=csv_upload(good), uploaded_by=coordinator)
        assert imp.status == ImportStatus.VALIDATED, imp.errors
        imports.commit_import(imp=imp, committed_by=coordinator)
    posted = {r.register_id: r for r in Reading.objects.filter(import_batch=imp)}
    for n, register in enumerate(registers):
        verdict = expected[n + 2]
        if verdict.rejected:
            continue
        reading = posted[register.pk]
        assert reading.status == verdict.status, EDGE_CASES[n]
        assert [f["rule"] for f in reading.findings] == [f.rule for f in verdict.findings]
        assert reading.consumption == verdict.consumption, EDGE_CASES[n]
    assert imp.flagged_count == sum(1 for v in expected.values() if v.flagged)


def test_it_gives_each_row_the_meter_in_place_on_its_day(
    customer: Customer, coordinator: User
) -> None:
    point = SupplyPoint.objects.create(
        customer=customer, code="RO-EXCH-1", service=Service.ELECTRICITY, street="Str. Mare 1",
        postal_code="010101", city="București")
    old = Register.objects.create(
        meter=Meter.objects.create(supply_point=point, serial_number="OLD-1",
                                   installed_on=date(2020, 1, 1), removed_on=date(2025, 3, 15)),
        code="1.8.0", name="Total", integer_digits=6, decimals=0)
    new = Register.objects.create(
        meter=Meter.objects.create(supply_point=point, serial_number="NEW-1",
                                   installed_on=date(2025, 3, 15)),
        code="1.8.0", name="Total", integer_digits=6, decimals=0)
    _add_history(old, [(date(2025, 1, 31), 5000)])
    text = (
        "supply_point_code;register;read_on;value;reason\n"
        "RO-EXCH-1;1.8.0;2025-02-28;5300;periodic\n"
        "RO-EXCH-1;1.8.0;14.03.2025;5420;meter exchange\n"
        "RO-EXCH-1;1.8.0;2025-04-30;310;\n"
    )
    imp = stage_and_check(upload=csv_upload(text), uploaded_by=coordinator)
    assert imp.errors == []
    imports.commit_import(imp=imp, committed_by=coordinator)
    readings = Reading.objects.filter(import_batch=imp).order_by("read_on")
    assert [(r.register_id, r.reason) for r in readings] == [
        (old.pk, "periodic"), (old.pk, "meter_exchange"), (new.pk, "periodic")]
    assert [r.consumption for r in readings] == [Decimal("300"), Decimal("120"), None]


def test_it_checks_again_from_the_start_after_an_interruption(
    history: None, coordinator: User
) -> None:
    imp = imports.stage_import(upload=csv_upload(GOOD), uploaded_by=coordinator)
    ReadingImport.objects.filter(pk=imp.pk).update(status=ImportStatus.CHECKING)  # a worker died
    imp = imports.check_import(imp)
    assert (imp.status, imp.row_count) == (ImportStatus.VALIDATED, 2)
    assert imports.check_import(imp).status == ImportStatus.VALIDATED  # a redelivery: no-op
    imports.commit_import(imp=imp, committed_by=coordinator)
    assert imports.commit_import(imp=imp, committed_by=coordinator).status == (
        ImportStatus.COMMITTED)
    assert Reading.objects.filter(import_batch=imp).count() == 2


def test_it_keeps_a_file_discarded_while_it_was_being_checked(
    history: None, coordinator: User
) -> None:
    imp = imports.stage_import(upload=csv_upload(GOOD), uploaded_by=coordinator)
    imports.discard_import(imp=imp, discarded_by=coordinator)
    assert imports.check_import(imp).status == ImportStatus.DISCARDED


def test_it_fails_a_file_whose_checked_rows_are_gone(
    history: None, coordinator: User, django_capture_on_commit_callbacks: Any
) -> None:
    imp = stage_and_check(upload=csv_upload(GOOD), uploaded_by=coordinator)
    with connection.cursor() as cursor:  # what a database crash does to an unlogged table
        cursor.execute(f"TRUNCATE {imports.checked_table(imp)}")
    with django_capture_on_commit_callbacks(execute=True):
        imports.request_post(imp=imp, requested_by=coordinator)
    imp.refresh_from_db()
    assert imp.status == ImportStatus.FAILED
    assert "upload it again" in imp.problem
    assert not Reading.objects.filter(import_batch=imp).exists()
    again = stage_and_check(upload=csv_upload(GOOD), uploaded_by=coordinator)  # allowed again
    assert again.status == ImportStatus.VALIDATED


def test_it_refuses_readings_posted_since_the_check(
    history: None, coordinator: User, register: Register, django_capture_on_commit_callbacks: Any
) -> None:
    imp = stage_and_check(upload=csv_upload(GOOD), uploaded_by=coordinator)
    _add_history(register, [(date(2025, 3, 31), 1590)])  # a courier was quicker
    with django_capture_on_commit_callbacks(execute=True):
        imports.request_post(imp=imp, requested_by=coordinator)
    imp.refresh_from_db()
    assert imp.status == ImportStatus.FAILED
    assert "posted since the file was checked" in imp.problem
    assert not Reading.objects.filter(import_batch=imp).exists()
