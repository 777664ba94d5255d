from typing import Any

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from portal import extensions, office

        # The loaders import billing.views only when a page needs them.
        def dashboard_card_data(request: Any, customer: Any) -> Any:
            from billing import views

            return views.dashboard_card_data(request, customer)

        def office_section_data(request: Any, customer: Any) -> Any:
            from billing import views

            return views.office_section_data(request, customer)

        extensions.add_customer_nav(
            extensions.NavItem(_("Invoices"), "billing:invoice-list", order=60)
        )
        extensions.add_customer_nav(
            extensions.NavItem(_("Advance payments"), "billing:advances", order=62)
        )
        extensions.add_customer_nav(
            extensions.NavItem(_("Price lists"), "billing-prices:price-lists", order=64)
        )
        extensions.add_office_nav(
            extensions.NavItem(
                _("Billing runs"),
                "billing-office:run-list",
                order=70,
                permission="billing.view_billingrun",
            )
        )
        extensions.add_dashboard_card(
            extensions.DashboardCard(
                "billing/_dashboard_card.html", load=dashboard_card_data, order=40
            )
        )
        office.add_customer_section(
            office.CustomerSection(
                title=_("Invoices"),  # type: ignore[arg-type]  # lazy: translated per page
                template="billing/_office_customer_invoices.html",
                load=office_section_data,
                permission="billing.view_invoice",
                order=60,
            )
        )
