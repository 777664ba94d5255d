"""What dunning notices say: default texts per kind of level, and filling in the placeholders.

The texts are data (DunningText, edited in the admin). A level without a
text in a language gets the default below, translated into that language,
the first time a notice of it needs one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from django.utils import translation
from django.utils.formats import date_format, get_format
from django.utils.translation import gettext as _

from receivables.dunning_models import (
    TEXT_PLACEHOLDERS,
    DunningChannel,
    DunningLevel,
    DunningText,
)


class _Missing(dict[str, str]):
    """Unknown placeholders stay as they were typed instead of failing the whole run."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, values: dict[str, str]) -> str:
    try:
        return template.format_map(_Missing(values))
    except (ValueError, IndexError):
        # A stray brace in an edited text: send it as written rather than nothing.
        return template


def level_kind(level: DunningLevel) -> str:
    """Which default text fits a level."""
    if level.is_disconnection_warning:
        return "disconnection"
    if level.days_after_due < 0:
        return "courtesy"
    if level.channel == DunningChannel.REGISTERED_LETTER:
        return "final"
    if level.fee > 0 or level.charge_interest or level.compensation > 0:
        return "second"
    return "first"


def default_text(level: DunningLevel) -> tuple[str, str]:
    """(subject, body) in the active language. SMS texts have no subject."""
    kind = level_kind(level)
    if level.channel == DunningChannel.SMS:
        return "", _sms_default(kind)
    subjects = {
        "courtesy": _("Reminder: payment due soon ({documents})"),
        "first": _("Payment reminder ({documents})"),
        "second": _("Second payment reminder ({documents})"),
        "final": _("Final notice before further steps ({documents})"),
        "disconnection": _("Warning: your supply will be disconnected ({documents})"),
    }
    greeting = _("Dear {customer_name},")
    how_to_pay = _(
        "Please pay {total} {currency} by {deadline}, quoting the payment reference "
        "{references}. You can see your account and pay at {portal_url}."
    )
    closing = _(
        "If you have paid in the meantime, thank you, and please ignore this message. "
        "If you disagree with the amount, tell us: we do not pursue an amount under dispute."
    )
    bodies = {
        "courtesy": _(
            "This is a friendly reminder that the following will soon be due:\n{items}"
        ),
        "first": _("We have not yet received payment of the following:\n{items}"),
        "second": _(
            "Despite our reminder, the following is still unpaid:\n{items}\n\n{charges}"
        ),
        "final": _(
            "Despite our reminders, the following is still unpaid:\n{items}\n\n{charges}\n\n"
            "This is our final notice. If the amount is not paid by {deadline}, we will take "
            "further steps to recover it, which may cause you further costs."
        ),
        "disconnection": _(
            "The following is still unpaid despite our reminders:\n{items}\n\n{charges}\n\n"
            "If the amount is not paid by {deadline}, we will have to disconnect your supply. "
            "To avoid this, pay the amount or contact us to agree a payment plan."
        ),
    }
    body = "\n\n".join(
        [greeting, bodies[kind], how_to_pay, closing, _("Kind regards,") + "\n{operator_name}"]
    )
    return subjects[kind], body


def _sms_default(kind: str) -> str:
    texts = {
        "courtesy": _(
            "{operator_name}: {documents} is due soon, {amount} {currency}. Payment reference "
            "{references}. {portal_url}"
        ),
        "first": _(
            "{operator_name}: {documents} is overdue, {amount} {currency}. Please pay with "
            "reference {references}. {portal_url}"
        ),
        "second": _(
            "{operator_name}: second reminder, {documents} is still unpaid: {total} {currency}. "
            "Reference {references}. {portal_url}"
        ),
        "final": _(
            "{operator_name}: final notice, please pay {total} {currency} by {deadline}. "
            "Reference {references}. {portal_url}"
        ),
        "disconnection": _(
            "{operator_name}: your supply will be disconnected unless {total} {currency} is paid "
            "by {deadline}. Reference {references}. {portal_url}"
        ),
    }
    return texts[kind]


def texts_for(pairs: Iterable[tuple[int, str]]) -> dict[tuple[int, str], DunningText]:
    """The text of each (level id, language), creating the missing ones from the defaults."""
    wanted = set(pairs)
    if not wanted:
        return {}
    level_ids = {level_id for level_id, _language in wanted}
    found = {
        (text.level_id, text.language): text
        for text in DunningText.objects.filter(level_id__in=level_ids)
    }
    missing = wanted - set(found)
    if missing:
        levels = DunningLevel.objects.in_bulk({level_id for level_id, _language in missing})
        new = []
        for level_id, language in sorted(missing):
            with translation.override(language):
                subject, body = default_text(levels[level_id])
            new.append(DunningText(level_id=level_id, language=language, subject=subject,
                                   body=body))
        # Another run may create the same texts at the same time: the first one wins.
        DunningText.objects.bulk_create(new, ignore_conflicts=True)
        found = {
            (text.level_id, text.language): text
            for text in DunningText.objects.filter(level_id__in=level_ids)
        }
    return {pair: found[pair] for pair in wanted if pair in found}


# --- formatting in the reader's language ------------------------------------------------


def money_formatter(language: str) -> Callable[[Decimal], str]:
    """A fast formatter of amounts as ``language`` writes them (grouped, two decimals).

    number_format() looks the separators up on every call; a night's notices
    format hundreds of thousands of amounts, so they are looked up once.
    """
    with translation.override(language):
        decimal_sep = str(get_format("DECIMAL_SEPARATOR"))
        thousand_sep = str(get_format("THOUSAND_SEPARATOR"))
    separators = str.maketrans({",": thousand_sep, ".": decimal_sep})

    def format_money(value: Decimal) -> str:
        return f"{value:,.2f}".translate(separators)

    return format_money


def date_formatter(language: str) -> Callable[[date], str]:
    """Short dates as ``language`` writes them; a night has few distinct dates, so cached."""
    with translation.override(language):
        pattern = str(get_format("SHORT_DATE_FORMAT"))
    known: dict[date, str] = {}

    def format_date(day: date) -> str:
        text = known.get(day)
        if text is None:
            with translation.override(language):
                text = known[day] = date_format(day, pattern)
        return text

    return format_date


class ItemFacts(NamedTuple):
    document_number: str
    due_date: date | None
    open_amount: Decimal
    reference: str


class NoticeFacts(NamedTuple):
    customer_name: str
    customer_number: str
    currency: str
    open_total: Decimal
    fee: Decimal
    interest: Decimal
    compensation: Decimal
    items: list[ItemFacts]

    @property
    def total(self) -> Decimal:
        return self.open_total + self.fee + self.interest + self.compensation


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def placeholders(*templates: str) -> frozenset[str]:
    """The placeholder names the templates use."""
    return frozenset(name for text in templates for name in _PLACEHOLDER.findall(text))


class Renderer:
    """Fills the placeholders of notices in one language (labels translated once).

    values() computes only the placeholders asked for: a night's run fills
    tens of thousands of texts, most of which use a few of them.
    """

    def __init__(
        self, language: str, *, deadline: date, portal_url: str, operator_name: str
    ) -> None:
        self.money = money_formatter(language)
        self.date = date_formatter(language)
        with translation.override(language):
            self.labels: dict[str, str] = {
                "due": _("due %(date)s"),
                "open": _("Open amount"),
                "fee": _("Reminder fee"),
                "interest": _("Late-payment interest"),
                "compensation": _("Compensation for recovery costs"),
                "total": _("Total to pay"),
                "and_more": _("and %(count)d more"),
            }
        self.fixed = {
            "deadline": self.date(deadline),
            "portal_url": portal_url,
            "operator_name": operator_name,
        }

    def values(
        self, facts: NoticeFacts, needed: frozenset[str] = frozenset(TEXT_PLACEHOLDERS)
    ) -> dict[str, str]:
        money, currency = self.money, facts.currency
        values = {key: value for key, value in self.fixed.items() if key in needed}
        simple = {
            "customer_name": lambda: facts.customer_name,
            "customer_number": lambda: facts.customer_number,
            "currency": lambda: currency,
            "amount": lambda: money(facts.open_total),
            "fee": lambda: money(facts.fee),
            "interest": lambda: money(facts.interest),
            "compensation": lambda: money(facts.compensation),
            "total": lambda: money(facts.total),
            "items": lambda: self._items(facts),
            "charges": lambda: self._charges(facts),
            "documents": lambda: self._short_list([i.document_number for i in facts.items]),
            "references": lambda: self._short_list(
                [i.reference or i.document_number for i in facts.items]
            ),
        }
        for key in needed:
            make = simple.get(key)
            if make is not None:
                values[key] = make()
        return values

    def _items(self, facts: NoticeFacts) -> str:
        money, currency, due_label = self.money, facts.currency, self.labels["due"]
        return "\n".join(
            f"- {item.document_number} "
            f"({due_label % {'date': self.date(item.due_date)} if item.due_date else ''}): "
            f"{money(item.open_amount)} {currency}"
            for item in facts.items
        )

    def _charges(self, facts: NoticeFacts) -> str:
        money, currency, labels = self.money, facts.currency, self.labels
        lines = [f"{labels['open']}: {money(facts.open_total)} {currency}"]
        for key, value in (("fee", facts.fee), ("interest", facts.interest),
                           ("compensation", facts.compensation)):
            if value:
                lines.append(f"{labels[key]}: {money(value)} {currency}")
        lines.append(f"{labels['total']}: {money(facts.total)} {currency}")
        return "\n".join(lines)

    def _short_list(self, values: list[str], limit: int = 3) -> str:
        shown = ", ".join(values[:limit])
        if len(values) > limit:
            shown += " " + self.labels["and_more"] % {"count": len(values) - limit}
        return shown


def customer_display_name(
    kind: str, first_name: str, last_name: str, company_name: str
) -> str:
    if kind == "company":
        return company_name
    return f"{first_name} {last_name}".strip()
