"""Dunning set-up shared by the dunning tests (plain functions; fixtures live in the tests).

The default policy "Standard" has four levels:

1  Courtesy reminder   3 days before the due date   SMS      automatic
2  First reminder      7 days after                 e-mail   automatic
3  Second reminder     21 days after                e-mail   approval; fee 5.00, B2B interest,
                                                             40.00 compensation (companies)
4  Final notice        35 days after                registered letter, approval; fee 10.00,
                                                             B2B interest, 40.00 compensation

Statutory B2B interest: 12.00 % until 31 Oct 2026, 11.50 % from 1 Nov 2026.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from portal.models import Customer, CustomerKind
from receivables.dunning_models import (
    DunningChannel,
    DunningLevel,
    DunningPolicy,
    InterestRate,
)
from tests.conftest import make_customer

D = Decimal
DUE = date(2026, 10, 15)


def make_policy() -> DunningPolicy:
    policy = DunningPolicy.objects.create(name="Standard", is_default=True)
    create = DunningLevel.objects.create
    create(policy=policy, sequence=1, name="Courtesy reminder", days_after_due=-3,
           channel=DunningChannel.SMS)
    create(policy=policy, sequence=2, name="First reminder", days_after_due=7,
           channel=DunningChannel.EMAIL)
    create(policy=policy, sequence=3, name="Second reminder", days_after_due=21,
           channel=DunningChannel.EMAIL, fee=D("5.00"), charge_interest=True,
           interest_kind="b2b_statutory", compensation=D("40.00"), needs_approval=True)
    create(policy=policy, sequence=4, name="Final notice", days_after_due=35,
           channel=DunningChannel.REGISTERED_LETTER, fee=D("10.00"), charge_interest=True,
           interest_kind="b2b_statutory", compensation=D("40.00"), needs_approval=True)
    InterestRate.objects.create(kind="b2b_statutory", rate=D("12.00"),
                                valid_from=date(2026, 7, 1), valid_to=date(2026, 10, 31))
    InterestRate.objects.create(kind="b2b_statutory", rate=D("11.50"),
                                valid_from=date(2026, 11, 1))
    return policy


def make_company(number: str = "C0300003") -> Customer:
    return make_customer(
        number, kind=CustomerKind.COMPANY, company_name="Acme Energie SRL", first_name="",
        last_name="", email="plati@acme.example", mobile="", tax_id="",
    )


def level(policy: DunningPolicy, sequence: int) -> DunningLevel:
    return policy.levels.get(sequence=sequence)
