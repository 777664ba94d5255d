from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from billing.urls import price_list_urls
from portal import activation, health
from portal.i18n import set_language
from receivables import courier as receivables_courier

# The admin signs in through allauth, so it gets the same rate limits and MFA.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]
admin.site.site_header = "Guichet"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/activate/", activation.activate, name="activate"),
    path("accounts/", include("allauth.urls")),
    path("i18n/setlang/", set_language, name="set_language"),
    path("office/", include("portal.office_urls")),
    path("office/meters/", include("meters.office_urls")),
    path("office/billing/", include("billing.office_urls")),
    path("office/dunning/", include("receivables.dunning_urls")),
    path("office/receivables/", include("receivables.office_urls")),
    path("courier/cash/", include(receivables_courier.urls)),
    path("courier/", include("meters.courier_urls")),
    path("supply-points/", include("meters.urls")),
    path("invoices/", include("billing.urls")),
    path("price-lists/", include(price_list_urls)),
    path("health/", health.health, name="health"),
    path("balance/", include("receivables.urls")),
    path("", include("portal.customer_urls")),
]
