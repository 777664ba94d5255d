"""The courier pages: my rounds, a round on a phone, readings sent (twice) from the queue."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from allauth.mfa.totp.internal.auth import TOTP
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from meters import rounds
from meters.models import Reading, ReadingRound, ReadingStatus, Register, RoundStop, SupplyPoint
from portal.models import User
from portal.roles import Role
from tests.conftest import TOTP_SECRET, make_user


def png() -> bytes:
    """A tiny real image, enough for ImageField."""
    out = io.BytesIO()
    Image.new("RGB", (2, 2), "white").save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def history(register: Register, add_history: Any) -> None:
    """A steady 10 kWh a day: last index 1,900 thirty days ago; today 1,960–2,800 is expected."""
    today = timezone.localdate()
    add_history(
        register,
        [
            (today - timedelta(days=d), v)
            for d, v in ((120, 1000), (90, 1300), (60, 1600), (30, 1900))
        ],
    )


@pytest.fixture
def courier(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.COURIER)


@pytest.fixture
def other_courier(db: None) -> User:
    user = make_user("paula@staff.example.com", first_name="Paula", last_name="Post")
    user.groups.add(Group.objects.get(name=Role.COURIER.value))
    TOTP.activate(user, TOTP_SECRET)
    return user


@pytest.fixture
def coordinator(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.METER_READING)


@pytest.fixture
def my_round(
    supply_point: SupplyPoint, register: Register, courier: User, coordinator: User
) -> ReadingRound:
    today = timezone.localdate()
    return rounds.create_round(
        name="Lalelelor November",
        period_start=today - timedelta(days=3),
        period_end=today + timedelta(days=7),
        supply_points=[supply_point],
        created_by=coordinator,
        courier=courier,
    )


def sync(client: Client, payload: dict[str, Any]) -> Any:
    return client.post(
        reverse("courier:reading-sync"), json.dumps(payload), content_type="application/json"
    )


def payload(my_round: ReadingRound, register: Register, value: str, **extra: Any) -> dict[str, Any]:
    return {
        "client_id": str(uuid.uuid4()),
        "round": str(my_round.public_id),
        "register": str(register.public_id),
        "value": value,
        **extra,
    }


def courier_urls(my_round: ReadingRound, register: Register) -> list[tuple[str, str]]:
    return [
        ("get", reverse("courier:home")),
        ("get", reverse("courier:round", args=[my_round.public_id])),
        ("post", reverse("courier:reading-form", args=[my_round.public_id, register.public_id])),
        ("post", reverse("courier:reading-sync")),
        ("post", reverse("courier:stop-skip", args=[my_round.public_id, 1])),
    ]


def request(
    client: Client, method: str, url: str, my_round: ReadingRound, register: Register
) -> Any:
    if method == "get":
        return client.get(url)
    if url == reverse("courier:reading-sync"):
        return sync(client, payload(my_round, register, "2200"))
    if url.endswith("/skip/"):
        return client.post(url, {"reason": "no_access"})
    return client.post(url, {"value": "2200"})


@pytest.mark.usefixtures("history")
def test_it_hides_the_courier_pages_from_customers(
    client_for: Callable[[User], Client], alice: User, my_round: ReadingRound, register: Register
) -> None:
    client = client_for(alice)
    for method, url in courier_urls(my_round, register):
        assert request(client, method, url, my_round, register).status_code == 404, url
    assert not Reading.objects.filter(round_stop__round=my_round).exists()
    assert not RoundStop.objects.filter(round=my_round).exclude(skip_reason="").exists()


@pytest.mark.usefixtures("history")
def test_it_forbids_the_courier_pages_to_office_staff(
    client_for: Callable[[User], Client],
    coordinator: User,
    my_round: ReadingRound,
    register: Register,
) -> None:
    client = client_for(coordinator)
    for method, url in courier_urls(my_round, register):
        assert request(client, method, url, my_round, register).status_code == 403, url
    assert not Reading.objects.filter(round_stop__round=my_round).exists()
    assert not RoundStop.objects.filter(round=my_round).exclude(skip_reason="").exists()


def test_it_sends_anonymous_visitors_to_the_courier_login(
    client: Client, my_round: ReadingRound
) -> None:
    response = client.get(reverse("courier:round", args=[my_round.public_id]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("courier:login"))


@pytest.mark.usefixtures("history")
def test_it_hides_another_couriers_round(
    client_for: Callable[[User], Client],
    other_courier: User,
    my_round: ReadingRound,
    register: Register,
) -> None:
    client = client_for(other_courier)
    home = client.get(reverse("courier:home"))
    assert home.status_code == 200
    assert my_round.name not in home.content.decode()
    for method, url in courier_urls(my_round, register)[1:]:
        assert request(client, method, url, my_round, register).status_code == 404, url
    assert not Reading.objects.filter(round_stop__round=my_round).exists()
    assert not RoundStop.objects.filter(round=my_round).exclude(skip_reason="").exists()


def test_it_lists_my_assigned_rounds(
    client_for: Callable[[User], Client], courier: User, my_round: ReadingRound
) -> None:
    response = client_for(courier).get(reverse("courier:home"))
    assert response.status_code == 200
    assert my_round.name in response.content.decode()
    assert reverse("courier:round", args=[my_round.public_id]) in response.content.decode()


@pytest.mark.usefixtures("history")
def test_it_shows_each_stop_with_previous_index_and_expected_range(
    client_for: Callable[[User], Client],
    courier: User,
    my_round: ReadingRound,
    supply_point: SupplyPoint,
    register: Register,
) -> None:
    response = client_for(courier).get(reverse("courier:round", args=[my_round.public_id]))
    assert response.status_code == 200
    page = response.content.decode()
    for text in (
        supply_point.code,
        supply_point.address,
        supply_point.access_notes,
        "E-1000001",
        "1900",
        'data-low="1960"',
        'data-high="2800"',
        'accept="image/*"',
        'capture="environment"',
        "courier/courier.js",
    ):
        assert text in page, text
    assert "<script>" not in page


@pytest.mark.usefixtures("history")
def test_it_stores_a_reading_sent_twice_once(
    client_for: Callable[[User], Client],
    courier: User,
    my_round: ReadingRound,
    register: Register,
) -> None:
    client = client_for(courier)
    data = payload(my_round, register, "2200")
    first, second = sync(client, data), sync(client, data)
    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == second.json()["status"] == "stored"
    stored = Reading.objects.get(client_id=data["client_id"])
    assert stored.value == 2200
    assert stored.round_stop == RoundStop.objects.get(round=my_round)
    assert stored.entered_by == courier
    assert Reading.objects.filter(register=register, value=2200).count() == 1


@pytest.mark.usefixtures("history")
def test_it_asks_to_confirm_an_out_of_range_value(
    client_for: Callable[[User], Client],
    courier: User,
    my_round: ReadingRound,
    register: Register,
) -> None:
    client = client_for(courier)
    data = payload(my_round, register, "5000")
    response = sync(client, data)
    assert response.status_code == 409
    answer = response.json()
    assert answer["status"] == "needs_confirmation"
    assert (answer["low"], answer["high"]) == ("1960", "2800")
    assert not Reading.objects.filter(register=register, value=5000).exists()

    confirmed = sync(client, {**data, "confirm": True})
    assert confirmed.status_code == 200
    assert confirmed.json()["reading_status"] == ReadingStatus.FLAGGED
    assert Reading.objects.get(client_id=data["client_id"]).status == ReadingStatus.FLAGGED


@pytest.mark.usefixtures("history")
def test_it_explains_a_rejected_value(
    client_for: Callable[[User], Client],
    courier: User,
    my_round: ReadingRound,
    register: Register,
) -> None:
    response = sync(client_for(courier), payload(my_round, register, "1500"))
    assert response.status_code == 422
    assert response.json()["status"] == "rejected"
    assert response.json()["messages"]
    assert not Reading.objects.valid().filter(register=register, value=1500).exists()


@pytest.mark.usefixtures("history")
def test_it_says_what_is_wrong_with_a_bad_value(
    client_for: Callable[[User], Client],
    courier: User,
    my_round: ReadingRound,
    register: Register,
) -> None:
    response = sync(client_for(courier), payload(my_round, register, "twelve"))
    assert response.status_code == 422
    assert "value" in response.json()["errors"]


@pytest.mark.usefixtures("history")
def test_it_keeps_a_photo_and_the_place_sent_with_a_reading(
    client_for: Callable[[User], Client],
    courier: User,
    my_round: ReadingRound,
    register: Register,
) -> None:
    data = payload(my_round, register, "2200", latitude="44.426767", longitude="26.102538")
    data["photo"] = SimpleUploadedFile("meter.png", png(), content_type="image/png")
    response = client_for(courier).post(reverse("courier:reading-sync"), data)
    assert response.status_code == 200, response.content
    reading = Reading.objects.get(client_id=data["client_id"])
    assert len(reading.photo_sha256) == 64
    assert str(reading.latitude) == "44.426767"


@pytest.mark.usefixtures("history")
def test_it_needs_the_csrf_token_to_send_a_reading(
    courier: User, my_round: ReadingRound, register: Register
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(courier)
    assert sync(client, payload(my_round, register, "2200")).status_code == 403
    assert not Reading.objects.filter(register=register, value=2200).exists()


@pytest.mark.usefixtures("history")
def test_the_form_without_script_saves_or_asks_to_confirm(
    client_for: Callable[[User], Client],
    courier: User,
    my_round: ReadingRound,
    register: Register,
) -> None:
    client = client_for(courier)
    url = reverse("courier:reading-form", args=[my_round.public_id, register.public_id])
    asked = client.post(url, {"value": "5000"})
    assert asked.status_code == 422
    page = asked.content.decode()
    assert 'name="confirm"' in page and "1960" in page and 'value="5000"' in page
    saved = client.post(url, {"value": "5000", "confirm": "on"})
    assert saved.status_code == 302
    assert Reading.objects.get(register=register, value=5000).status == ReadingStatus.FLAGGED


def test_it_serves_the_service_worker_for_the_courier_pages(client: Client) -> None:
    response = client.get(reverse("courier:service-worker"))
    assert response.status_code == 200
    assert response["Service-Worker-Allowed"] == "/courier/"
    assert response["Content-Type"].startswith("text/javascript")
    assert b'addEventListener("fetch"' in response.content
