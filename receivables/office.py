"""Office pages of receivables (/office/receivables/…): a customer's ledger and statement,
payments (detail, reversal, refund), the suspense queue and manual payment entry.

Every view is guarded by ``@office_view(permission)``: people who are not
staff get 404, staff whose role lacks the permission get 403. The work is
done by receivables.payments; the views validate, call and answer.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Prefetch, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.models import Customer
from portal.office import OfficeRequest
from portal.services import ServiceError
from portal.staff import office_view
from receivables import ledger, payments
from receivables.forms import ManualPaymentForm, MatchForm, RefundForm, ReverseForm
from receivables.models import LedgerEntry, Payment, PaymentKind, Suggestion
from receivables.views import account, balance_rows, statement_form, statement_pdf_response

OFFICE_ITEMS = 20
OFFICE_PAYMENTS = 10
SUSPENSE_PER_PAGE = 50


def _customer(public_id: Any) -> Customer:
    return get_object_or_404(Customer, public_id=public_id)


def _payment(public_id: Any) -> Payment:
    return get_object_or_404(
        Payment.objects.select_related("customer", "created_by", "reverses", "payment_import"),
        public_id=public_id,
    )


def _detail_url(payment: Payment) -> str:
    return reverse("receivables-office:payment", args=[payment.public_id])


# --- Customer page section and ledger -----------------------------------------------------


def office_section_data(request: HttpRequest, customer: Customer) -> dict[str, Any]:
    """Balance, credit, open items and the latest payments of the customer (four queries)."""
    return {
        "account": account(
            customer, items_limit=OFFICE_ITEMS, payments_limit=OFFICE_PAYMENTS
        ),
        "customer": customer,
    }


@office_view("receivables.view_ledgerentry")
@require_GET
def customer_ledger(request: OfficeRequest, public_id: Any) -> HttpResponse:
    """The customer's whole account over a period, with the running balance."""
    customer = _customer(public_id)
    form = statement_form(request)
    stmt = ledger.statement(customer, *form.period()) if form.is_valid() else None
    ctx = {
        "customer": customer,
        "form": form,
        "statement": stmt,
        "query": request.GET.urlencode(),
        "balances": balance_rows(payments.balance_by_currency(customer)),
        "credit": payments.credit_of(customer),
    }
    template = "receivables/office/ledger.html"
    partial = request.htmx and not request.htmx.history_restore_request
    return render(request, f"{template}#results" if partial else template, ctx)


@office_view("receivables.view_ledgerentry")
@require_GET
def customer_statement_pdf(request: OfficeRequest, public_id: Any) -> HttpResponse:
    customer = _customer(public_id)
    form = statement_form(request)
    if not form.is_valid():
        messages.error(request, _("Correct the period first."))
        url = reverse("receivables-office:ledger", args=[customer.public_id])
        return redirect(f"{url}?{request.GET.urlencode()}")
    return statement_pdf_response(ledger.statement(customer, *form.period()))


# --- Payment detail, reversal, refund ----------------------------------------------------


def _detail_context(
    payment: Payment,
    *,
    reverse_form: ReverseForm | None = None,
    refund_form: RefundForm | None = None,
    match_form: MatchForm | None = None,
    notice: str = "",
) -> dict[str, Any]:
    reversals = list(payment.reversals.select_related("created_by").order_by("id"))
    unmatched = payment.customer_id is None
    open_payment = payment.kind == PaymentKind.PAYMENT and not reversals
    return {
        "payment": payment,
        "allocations": list(
            payment.allocations.select_related("invoice", "created_by").order_by("created_at", "id")
        ),
        "entries": list(
            LedgerEntry.objects.filter(
                Q(payment=payment) | Q(cause__startswith=f"refund:{payment.pk}:")
            ).order_by("entry_date", "id")
        ),
        "reversals": reversals,
        "suggestions": list(payment.suggestions.select_related("invoice__customer"))
        if unmatched else [],
        "can_reverse": open_payment,
        "can_refund": open_payment and not unmatched and payment.unallocated > 0,
        "can_match": open_payment and payment.unallocated > 0,
        "reverse_form": reverse_form or ReverseForm(),
        "refund_form": refund_form or RefundForm(initial={"amount": payment.unallocated}),
        "match_form": match_form or MatchForm(),
        "notice": notice,
    }


def _render_detail(request: OfficeRequest, payment: Payment, **extra: Any) -> HttpResponse:
    template = "receivables/office/payment_detail.html"
    posted = request.method == "POST"
    # A POST comes here with htmx (fragment), or without it only when a form has errors.
    partial = bool(request.htmx) and posted
    status = 422 if posted and not partial else 200
    return render(
        request, f"{template}#detail" if partial else template,
        _detail_context(payment, **extra), status=status,
    )


@office_view("receivables.view_payment")
@require_GET
def payment_detail(request: OfficeRequest, public_id: Any) -> HttpResponse:
    return _render_detail(request, _payment(public_id))


@office_view("receivables.change_payment")
@require_POST
def payment_reverse(request: OfficeRequest, public_id: Any) -> HttpResponse:
    payment = _payment(public_id)
    form = ReverseForm(request.POST)
    if form.is_valid():
        try:
            reversal = payments.reverse_payment(
                payment=payment, reason=form.cleaned_data["reason"], by=request.user
            )
        except ServiceError as error:
            form.add_error(None, str(error))
        else:
            notice = _("The payment is reversed by %(amount)s %(code)s.") % {
                "amount": reversal.amount, "code": reversal.currency,
            }
            if request.htmx:
                return _render_detail(request, _payment(public_id), notice=notice)
            messages.success(request, notice)
            return redirect(_detail_url(payment))
    return _render_detail(request, payment, reverse_form=form)


@office_view("receivables.change_payment")
@require_POST
def payment_refund(request: OfficeRequest, public_id: Any) -> HttpResponse:
    payment = _payment(public_id)
    form = RefundForm(request.POST)
    if form.is_valid():
        try:
            payments.refund(
                payment=payment, amount=form.cleaned_data["amount"], by=request.user,
                note=form.cleaned_data["note"],
            )
        except ServiceError as error:
            form.add_error("amount", str(error))
        else:
            notice = _("%(amount)s %(code)s of credit refunded.") % {
                "amount": form.cleaned_data["amount"], "code": payment.currency,
            }
            if request.htmx:
                return _render_detail(request, _payment(public_id), notice=notice)
            messages.success(request, notice)
            return redirect(_detail_url(payment))
    return _render_detail(request, payment, refund_form=form)


# --- Suspense queue -----------------------------------------------------------------------


@office_view("receivables.view_payment")
@require_GET
def suspense(request: OfficeRequest) -> HttpResponse:
    """Payments nobody could match, newest first, each with its suggested documents."""
    # Queries: the paginator's COUNT, one page of payments, their suggestions with
    # documents and customers.
    rows = payments.suspense_queue().select_related("payment_import").prefetch_related(
        Prefetch(
            "suggestions",
            queryset=Suggestion.objects.select_related("invoice__customer"),
        )
    )
    page = Paginator(rows, SUSPENSE_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request, "receivables/office/suspense.html", {"page": page, "match_form": MatchForm()}
    )


@office_view("receivables.change_payment")
@require_POST
def suspense_suggest(request: OfficeRequest) -> HttpResponse:
    """Look for documents the waiting payments may pay (amount and due date, payer name)."""
    found = payments.compute_all_suggestions()
    messages.success(
        request, _("Suggestions found for %(count)d payments.") % {"count": found}
    )
    return redirect("receivables-office:suspense")


@office_view("receivables.change_payment")
@require_POST
def payment_match(request: OfficeRequest, public_id: Any) -> HttpResponse:
    """Staff say what an unmatched payment pays: a document (suggested or typed) or a customer."""
    payment = _payment(public_id)
    form = MatchForm(request.POST)
    notice = ""
    if form.is_valid():
        document, customer = form.cleaned_data["document"], form.cleaned_data["customer"]
        try:
            if document is not None:
                payments.match_to_invoice(payment=payment, invoice=document, by=request.user)
                notice = _("Matched to %(number)s of %(customer)s.") % {
                    "number": document.document_number, "customer": document.customer.number,
                }
            else:
                payments.match_to_customer(payment=payment, customer=customer, by=request.user)
                notice = _("Matched to customer %(customer)s.") % {"customer": customer.number}
        except ServiceError as error:
            form.add_error("target", str(error))
    if request.htmx:
        payment = _payment(public_id)
        ctx = {
            "payment": payment,
            "suggestions": list(payment.suggestions.select_related("invoice__customer")),
            "match_form": form if form.errors else MatchForm(),
            "notice": notice,
            "matched": bool(notice),
        }
        return render(request, "receivables/office/suspense.html#row", ctx)
    if notice:
        messages.success(request, notice)
    else:
        messages.error(request, " ".join(str(e) for errs in form.errors.values() for e in errs))
    return redirect(_detail_url(payment))


# --- Manual payment entry -------------------------------------------------------------------


@office_view("receivables.add_payment")
@require_http_methods(["GET", "POST"])
def payment_create(request: OfficeRequest) -> HttpResponse:
    """A payment taken at the desk, allocated to the document named or oldest first."""
    if request.method == "POST":
        form = ManualPaymentForm(request.POST)
    else:
        form = ManualPaymentForm(
            initial={
                "customer": request.GET.get("customer", ""),
                "invoice": request.GET.get("invoice", ""),
            }
        )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            posted = payments.record_manual_payment(
                customer=data["customer"],
                amount=data["amount"],
                booking_date=data["booking_date"],
                currency=data["currency"],
                reference=data["reference"],
                text=data["text"],
                invoice=data["invoice"],
                receipt_number=data["receipt_number"],
                entry_id=data["entry_id"],
                by=request.user,
            )
        except payments.DuplicateReceipt as error:
            form.add_error("receipt_number", str(error))
        except ServiceError as error:
            form.add_error(None, str(error))
        else:
            payment = posted.payment
            if posted.created:
                messages.success(
                    request,
                    _("Payment of %(amount)s %(code)s recorded for %(customer)s.")
                    % {"amount": payment.amount, "code": payment.currency,
                       "customer": data["customer"].number},
                )
            else:
                messages.info(request, _("This payment was already recorded."))
            return redirect(_detail_url(payment))
    # Here after a POST only when something was wrong: the form says what, next to the field.
    status = 422 if request.method == "POST" else 200
    return render(request, "receivables/office/payment_create.html", {"form": form}, status=status)
