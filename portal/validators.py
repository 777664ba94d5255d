"""Checks and normalisation for identifiers customers type in."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from stdnum import exceptions as stdnum_exceptions
from stdnum.eu import vat as eu_vat
from stdnum.it import codicefiscale, iva
from stdnum.pl import nip, pesel
from stdnum.ro import cnp, cui
from stdnum.sk import rc as sk_rc

# Country → (person checker, company checker); where no checker exists the
# value is kept as typed.
_TAX_ID_CHECKERS = {
    "RO": (cnp, cui),
    "PL": (pesel, nip),
    "IT": (codicefiscale, iva),
    "SK": (sk_rc, None),  # IČO has no published check digit rule in stdnum
}


def normalise_phone(value: str) -> str:
    """Digits only, with a leading + kept: "+40 721-000 111" → "+40721000111"."""
    value = value.strip()
    digits = re.sub(r"\D", "", value)
    return f"+{digits}" if value.startswith("+") and digits else digits


def validate_tax_id(value: str, country: str, kind: str) -> str:
    value = value.strip()
    checkers = _TAX_ID_CHECKERS.get(country.upper())
    if not checkers:
        return value
    checker = checkers[1] if kind == "company" else checkers[0]
    if checker is None:
        return value
    try:
        return str(checker.validate(value))
    except stdnum_exceptions.InvalidChecksum:
        raise ValidationError(_("The check digit of this tax id is wrong.")) from None
    except stdnum_exceptions.InvalidLength:
        raise ValidationError(_("This tax id has the wrong number of characters.")) from None
    except stdnum_exceptions.ValidationError:
        raise ValidationError(_("This is not a valid tax id for the chosen country.")) from None


def validate_vat_id(value: str) -> str:
    try:
        return str(eu_vat.validate(value.strip()))
    except stdnum_exceptions.InvalidChecksum:
        raise ValidationError(_("The check digit of this VAT id is wrong.")) from None
    except stdnum_exceptions.ValidationError:
        raise ValidationError(
            _("Enter an EU VAT id with its country prefix, e.g. RO18547290.")
        ) from None


def validate_mobile(value: str) -> str:
    phone = normalise_phone(value)
    if not re.fullmatch(r"\+?\d{8,15}", phone):
        raise ValidationError(_("Enter a mobile number of 8 to 15 digits, e.g. +40 721 000 111."))
    return phone
