"""Customer portal pages of receivables: /balance/ and /balance/statement/ (HTML and PDF).

Every page goes through ``@customer_view`` and reads only the ledger,
documents and payments of ``request.customer``, the customer portal.access
chose for the session; no page takes an id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET
from django_htmx.middleware import HtmxDetails

from billing.models import Invoice
from portal.access import CustomerRequest, customer_view
from portal.documents import render_pdf
from portal.models import Customer
from receivables import ledger, payments
from receivables.forms import StatementForm, statement_defaults
from receivables.models import Payment

PAYMENTS_SHOWN = 10


class ReceivablesRequest(CustomerRequest):
    htmx: HtmxDetails


@dataclass(frozen=True)
class BalanceRow:
    currency: str
    amount: Decimal  # positive: owed; negative: credit

    @property
    def state(self) -> str:
        return "owed" if self.amount > 0 else "credit" if self.amount < 0 else "settled"

    @property
    def shown(self) -> Decimal:
        return abs(self.amount)


def balance_rows(balances: list[tuple[str, Decimal]]) -> list[BalanceRow]:
    return [BalanceRow(currency, amount) for currency, amount in balances]


@dataclass(frozen=True)
class Account:
    """What a customer's account page shows (portal, dashboard card, office section)."""

    # Per currency, from the ledger.
    balances: list[BalanceRow]
    # Open items oldest first, each with ``open_amount``.
    items: list[Invoice]
    payments: list[Payment]
    # (currency, amount) of payment money not allocated yet.
    credit: list[tuple[str, Decimal]]
    today: date
    more_items: bool = False

    @property
    def overdue(self) -> list[Invoice]:
        return [i for i in self.items if i.due_date is not None and i.due_date < self.today]


def account(
    customer: Customer, *, items_limit: int | None = None, payments_limit: int = PAYMENTS_SHOWN
) -> Account:
    """The account of ``customer`` in four queries, whatever its size: balance per currency,
    open items with their supply points, the latest payments, credit per currency."""
    items_qs = payments.oldest_first(ledger.open_items(customer)).select_related("supply_point")
    if items_limit is not None:
        items = list(items_qs[: items_limit + 1])
        more = len(items) > items_limit
        items = items[:items_limit]
    else:
        items, more = list(items_qs), False
    recent = list(
        Payment.objects.filter(customer=customer).order_by("-booking_date", "-id")[
            :payments_limit
        ]
    )
    return Account(
        balances=balance_rows(payments.balance_by_currency(customer)),
        items=items,
        payments=recent,
        credit=payments.credit_of(customer),
        today=timezone.localdate(),
        more_items=more,
    )


@customer_view()
@require_GET
def balance(request: ReceivablesRequest) -> HttpResponse:
    ctx = {"account": account(request.customer)}
    return render(request, "receivables/portal/balance.html", ctx)


def statement_form(request: HttpRequest) -> StatementForm:
    """The period form bound to the query string, an empty field meaning its default."""
    today = timezone.localdate()
    start, end = statement_defaults(today)
    data = QueryDict(mutable=True)
    data["from"] = request.GET.get("from") or start.isoformat()
    data["to"] = request.GET.get("to") or end.isoformat()
    return StatementForm(data, today=today)


def statement_filename(customer: Customer, start: date, end: date) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in customer.number)
    return f"statement-{safe}-{start.isoformat()}-{end.isoformat()}.pdf"


def statement_pdf_response(statement: ledger.Statement) -> HttpResponse:
    """The statement as a PDF, in the language of the page it was asked from (the active one)."""
    content = render_pdf(
        "receivables/statement_pdf.html",
        {
            "statement": statement,
            "customer": statement.customer,
            "operator_name": settings.OPERATOR_NAME,
            "operator_address": settings.OPERATOR_ADDRESS,
            "printed_on": timezone.localdate(),
        },
    )
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = content_disposition_header(
        True, statement_filename(statement.customer, statement.start, statement.end)
    ) or "attachment"
    return response


def _statement_page(
    request: ReceivablesRequest, form: StatementForm, *, status: int = 200
) -> HttpResponse:
    stmt = ledger.statement(request.customer, *form.period()) if form.is_valid() else None
    ctx: dict[str, Any] = {"form": form, "statement": stmt, "query": request.GET.urlencode()}
    partial = request.htmx and not request.htmx.history_restore_request
    template = "receivables/portal/statement.html"
    response = render(request, f"{template}#results" if partial else template, ctx, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


@customer_view()
@require_GET
def statement(request: ReceivablesRequest) -> HttpResponse:
    """The account over a period: opening balance, every entry with the running balance."""
    return _statement_page(request, statement_form(request))


@customer_view()
@require_GET
def statement_pdf(request: ReceivablesRequest) -> HttpResponse:
    form = statement_form(request)
    if not form.is_valid():
        # The page says what is wrong with the period, next to the field.
        return _statement_page(request, form, status=400)
    stmt = ledger.statement(request.customer, *form.period())
    return statement_pdf_response(stmt)


# --- Extension points (registered in ReceivablesConfig.ready) ---------------------------


def dashboard_card_data(request: HttpRequest, customer: Customer) -> dict[str, Any]:
    """Balance per currency and how many items are overdue (two queries)."""
    today = timezone.localdate()
    overdue = ledger.open_items(customer).filter(due_date__lt=today).count()
    return {"balances": balance_rows(payments.balance_by_currency(customer)), "overdue": overdue}
