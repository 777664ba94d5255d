"""Customer portal URLs of billing: /invoices/… (app "billing") and /price-lists/…"""

from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("", views.invoice_list, name="invoice-list"),
    path("balance/", views.balance, name="balance"),
    path("advances/", views.advances, name="advances"),
    path("<uuid:public_id>/", views.invoice_detail, name="invoice"),
    path("<uuid:public_id>/pdf/", views.invoice_pdf, name="invoice-pdf"),
]

# Mounted at /price-lists/ under its own namespace ("billing-prices") so that
# one include line each keeps the URL prefixes in portal/urls.py.
price_list_urls = (
    [
        path("", views.price_list_list, name="price-lists"),
        path("<str:code>/", views.price_list_detail, name="price-list"),
        path("<str:code>/pdf/", views.price_list_pdf, name="price-list-pdf"),
    ],
    "billing-prices",
)
