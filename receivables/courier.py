"""The courier's cash-collection page (/courier/cash/): cash taken from a supply point's
customer against a numbered paper receipt.

The form carries an id made when it is shown (``client_id``): sent twice (a
double tap, a resend after a dropped connection) it is stored once. Without
network the page's script (static/receivables/cash.js) keeps entries on the
phone, each with its own id, and sends them when the network returns.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods
from django_htmx.middleware import HtmxDetails

from meters.courier import DEVICE_KEY_HEADER, device_key
from portal.services import ServiceError
from portal.staff import StaffRequest, courier_view
from receivables import ledger, payments
from receivables.forms import CourierCashForm
from receivables.models import ZERO, Payment


class CourierRequest(StaffRequest):
    htmx: HtmxDetails


def _today_collected(request: CourierRequest) -> dict[str, Any]:
    """What this courier entered today (to hand over at the office), newest first."""
    rows = list(
        Payment.objects.filter(
            source=payments.COURIER_SOURCE,
            created_by=request.user,
            booking_date=timezone.localdate(),
        )
        .select_related("customer")
        .order_by("-id")
    )
    totals: dict[str, Decimal] = {}
    for row in rows:
        totals[row.currency] = totals.get(row.currency, ZERO) + row.amount
    return {"collected": rows, "collected_totals": sorted(totals.items())}


def _still_open(payment: Payment) -> Decimal:
    assert payment.customer_id is not None
    items = ledger.open_items([payment.customer_id]).filter(currency=payment.currency)
    return sum((item.open_amount for item in items), ZERO)  # type: ignore[attr-defined]


@courier_view
@require_http_methods(["GET", "POST"])
def cash(request: CourierRequest) -> HttpResponse:
    notice = ""
    if request.method == "POST":
        form = CourierCashForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                posted = payments.record_courier_cash(
                    courier=request.user,
                    supply_point=data["supply_point"],
                    amount=data["amount"],
                    receipt_number=data["receipt_number"],
                    client_id=str(data["client_id"]),
                )
            except payments.DuplicateReceipt as error:
                form.add_error("receipt_number", str(error))
            except ServiceError as error:
                form.add_error(None, str(error))
            else:
                payment = posted.payment
                args = {
                    "amount": payment.amount,
                    "code": payment.currency,
                    "customer": data["supply_point"].customer.name,
                    "receipt": payment.reference,
                    "open": _still_open(payment),
                }
                if posted.created:
                    notice = _(
                        "Recorded: %(amount)s %(code)s from %(customer)s, receipt %(receipt)s. "
                        "Still open: %(open)s %(code)s."
                    ) % args
                else:
                    notice = _("Receipt %(receipt)s was already recorded.") % args
                if not request.htmx:
                    messages.success(request, notice)
                    return redirect("receivables-courier:cash")
                form = CourierCashForm()
    else:
        form = CourierCashForm(initial={"supply_point": request.GET.get("point", "")})
    ctx = {"form": form, "notice": notice, **_today_collected(request)}
    template = "receivables/courier/cash.html"
    partial = bool(request.htmx) and request.method == "POST"
    status = 422 if request.method == "POST" and form.errors and not partial else 200
    response = render(request, f"{template}#panel" if partial else template, ctx, status=status)
    # A shared phone: the browser's HTTP cache keeps nothing; the courier service worker
    # keeps the page for this courier only, so that it opens without network.
    response["Cache-Control"] = "private, no-store"
    response[DEVICE_KEY_HEADER] = device_key(request.user)
    return response


# Mounted at /courier/cash/ in portal/urls.py, before the courier app's own "courier/".
urls = ([path("", cash, name="cash")], "receivables-courier")
