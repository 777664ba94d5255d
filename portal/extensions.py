"""Places other apps plug into the core's pages without the core importing them.

Apps register from their ``AppConfig.ready()``; the context processor hands
the entries to the layouts (navigation) and the portal dashboard (cards).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest


@dataclass(frozen=True)
class NavItem:
    label: Any  # a lazy translation
    url_name: str
    order: int = 100
    permission: str = ""  # office items: shown only to staff with it


@dataclass(frozen=True)
class DashboardCard:
    """A card on the customer dashboard: ``template`` gets ``customer`` and ``data``."""

    template: str
    load: Callable[[HttpRequest, Any], Any] = field(default=lambda request, customer: None)
    order: int = 100


CUSTOMER_NAV: list[NavItem] = []
OFFICE_NAV: list[NavItem] = []
DASHBOARD_CARDS: list[DashboardCard] = []


def _add(registry: list[Any], item: Any, key: Callable[[Any], Any]) -> None:
    if all(key(existing) != key(item) for existing in registry):
        registry.append(item)
        registry.sort(key=lambda entry: entry.order)


def add_customer_nav(item: NavItem) -> None:
    _add(CUSTOMER_NAV, item, lambda entry: entry.url_name)


def add_office_nav(item: NavItem) -> None:
    _add(OFFICE_NAV, item, lambda entry: entry.url_name)


def add_dashboard_card(card: DashboardCard) -> None:
    _add(DASHBOARD_CARDS, card, lambda entry: entry.template)


def dashboard_cards(request: HttpRequest, customer: Any) -> list[dict[str, Any]]:
    return [
        {"template": card.template, "data": card.load(request, customer)}
        for card in DASHBOARD_CARDS
    ]


def office_nav(user: Any) -> list[NavItem]:
    return [item for item in OFFICE_NAV if not item.permission or user.has_perm(item.permission)]
