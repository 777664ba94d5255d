from typing import Any

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MetersConfig(AppConfig):
    name = "meters"
    verbose_name = "Meters"

    def ready(self) -> None:
        from portal import extensions, office

        # The loaders import meters.views only when a page needs them.
        def dashboard_card_data(request: Any, customer: Any) -> Any:
            from meters import views

            return views.dashboard_card_data(request, customer)

        def office_section_data(request: Any, customer: Any) -> Any:
            from meters import views

            return views.office_section_data(request, customer)

        extensions.add_customer_nav(
            extensions.NavItem(_("Supply points"), "meters:supply-points", order=50)
        )
        extensions.add_customer_nav(
            extensions.NavItem(_("Export readings"), "meters:readings-export", order=55)
        )
        extensions.add_office_nav(
            extensions.NavItem(
                _("Reading imports"),
                "meters-office:import-list",
                order=60,
                permission="meters.view_readingimport",
            )
        )
        extensions.add_dashboard_card(
            extensions.DashboardCard(
                "meters/_dashboard_card.html", load=dashboard_card_data, order=50
            )
        )
        extensions.add_office_nav(
            extensions.NavItem(
                _("Reading rounds"),
                "meters-office:round-list",
                order=50,
                permission="meters.view_readinground",
            )
        )
        office.add_customer_section(
            office.CustomerSection(
                title=_("Supply points"),  # type: ignore[arg-type]  # lazy: translated per page
                template="meters/office/_customer_supply_points.html",
                load=office_section_data,
                permission="meters.view_supplypoint",
                order=50,
            )
        )
