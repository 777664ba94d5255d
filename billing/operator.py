"""Who issues the documents: the operator's identity, read from the settings.

One object for the invoice PDF's header, the payment codes, the Factur-X
seller and the e-mails, so that they can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from billing.codes import PaymentCodeSettings
from billing.references import ReferenceSettings


@dataclass(frozen=True)
class Operator:
    name: str
    street: str
    postal_code: str
    city: str
    country: str  # ISO 3166 alpha-2
    tax_id: str = ""  # national registration / fiscal code
    vat_id: str = ""  # with its country prefix
    registration: str = ""  # trade register entry
    email: str = ""
    phone: str = ""
    iban: str = ""
    bic: str = ""
    bank_name: str = ""
    reference_scheme: str = "rf"
    reference_settings: ReferenceSettings = field(default_factory=ReferenceSettings)
    pagopa_fiscal_code: str = ""

    @property
    def address_lines(self) -> list[str]:
        city = " ".join(part for part in (self.postal_code, self.city) if part)
        return [line for line in (self.street, city, self.country) if line]

    @property
    def iban_display(self) -> str:
        compact = self.iban.replace(" ", "")
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))

    def payment_code_settings(self) -> PaymentCodeSettings:
        return PaymentCodeSettings(
            country=self.country,
            beneficiary_name=self.name,
            iban=self.iban.replace(" ", ""),
            bic=self.bic,
            # The ZBP QR wants the Polish NIP: the VAT id without its prefix.
            tax_id=self.vat_id.removeprefix("PL") if self.country == "PL" else self.tax_id,
            pagopa_fiscal_code=self.pagopa_fiscal_code,
        )


def current_operator() -> Operator:
    """The operator as the settings describe it now (cheap: read on every call)."""
    return Operator(
        name=settings.OPERATOR_NAME,
        street=settings.OPERATOR_STREET,
        postal_code=settings.OPERATOR_POSTAL_CODE,
        city=settings.OPERATOR_CITY,
        country=settings.OPERATOR_COUNTRY.upper(),
        tax_id=settings.OPERATOR_TAX_ID,
        vat_id=settings.OPERATOR_VAT_ID,
        registration=settings.OPERATOR_REGISTRATION,
        email=settings.OPERATOR_EMAIL,
        phone=settings.OPERATOR_PHONE,
        iban=settings.OPERATOR_IBAN,
        bic=settings.OPERATOR_BIC,
        bank_name=settings.OPERATOR_BANK_NAME,
        reference_scheme=settings.OPERATOR_REFERENCE_SCHEME,
        reference_settings=ReferenceSettings.from_mapping(settings.OPERATOR_REFERENCE_SETTINGS),
        pagopa_fiscal_code=settings.OPERATOR_PAGOPA_FISCAL_CODE,
    )
