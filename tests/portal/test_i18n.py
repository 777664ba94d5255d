from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from portal.models import User

pytestmark = pytest.mark.django_db


def test_it_remembers_the_language_chosen_by_a_user(
    alice: User, client_for: Callable[[User], Client]
) -> None:
    client = client_for(alice)
    response = client.post("/i18n/setlang/", {"language": "ro", "next": "/"})
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.language == "ro"


def test_it_ignores_an_unknown_language(alice: User, client_for: Callable[[User], Client]) -> None:
    client_for(alice).post("/i18n/setlang/", {"language": "xx", "next": "/"})
    alice.refresh_from_db()
    assert alice.language == "en"


def test_it_serves_each_user_in_their_language(
    alice: User, client_for: Callable[[User], Client]
) -> None:
    for language, word in [
        ("ro", "Deconectare"),
        ("pl", "Wyloguj"),
        ("it", "Esci"),
        ("sk", "Odhlásiť"),
    ]:
        alice.language = language
        alice.save(update_fields=["language"])
        response = client_for(alice).get("/courier/login/", follow=True)
        assert word in response.content.decode(), language
