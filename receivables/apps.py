from typing import Any

from django.apps import AppConfig


class ReceivablesConfig(AppConfig):
    name = "receivables"
    verbose_name = "Receivables"

    def ready(self) -> None:
        from receivables import dunning, ledger

        ledger.connect_signals()
        dunning.connect()
        self._register_payment_pages()

    def _register_payment_pages(self) -> None:
        """Payments: credit applied to new documents, the portal balance, office pages."""
        from django.utils.translation import gettext_lazy as _

        from portal import extensions, office
        from receivables import payments

        # After the ledger's receiver: the document is entered before credit pays it.
        payments.connect_signals()

        # The loaders import the views only when a page needs them.
        def dashboard_card_data(request: Any, customer: Any) -> Any:
            from receivables import views

            return views.dashboard_card_data(request, customer)

        def office_section_data(request: Any, customer: Any) -> Any:
            from receivables import office as receivables_office

            return receivables_office.office_section_data(request, customer)

        extensions.add_customer_nav(
            extensions.NavItem(_("Balance"), "receivables:balance", order=58)
        )
        extensions.add_dashboard_card(
            extensions.DashboardCard(
                "receivables/_dashboard_card.html", load=dashboard_card_data, order=35
            )
        )
        extensions.add_office_nav(
            extensions.NavItem(
                _("Payment files"),
                "receivables-office:files",
                order=78,
                permission="receivables.view_paymentimport",
            )
        )
        extensions.add_office_nav(
            extensions.NavItem(
                _("Unmatched payments"),
                "receivables-office:suspense",
                order=80,
                permission="receivables.view_payment",
            )
        )
        extensions.add_office_nav(
            extensions.NavItem(
                _("Record a payment"),
                "receivables-office:payment-create",
                order=82,
                permission="receivables.add_payment",
            )
        )
        office.add_customer_section(
            office.CustomerSection(
                title=_("Account and payments"),  # type: ignore[arg-type]  # lazy
                template="receivables/office/_customer_section.html",
                load=office_section_data,
                permission="receivables.view_ledgerentry",
                order=65,
            )
        )
