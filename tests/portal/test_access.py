from __future__ import annotations

import pytest
from django.http import Http404

from portal import access
from portal.models import Customer, User

pytestmark = pytest.mark.django_db


def test_it_lists_only_represented_customers(
    alice: User, charlie: User, customer: Customer, other_customer: Customer
) -> None:
    assert list(access.customers_of(alice)) == [customer]
    assert list(access.customers_of(charlie)) == [other_customer]


def test_it_refuses_a_membership_of_another_customer(alice: User, other_customer: Customer) -> None:
    with pytest.raises(Http404):
        access.get_membership(alice, other_customer.public_id)


def test_it_treats_a_malformed_id_as_missing(alice: User) -> None:
    with pytest.raises(Http404):
        access.get_membership(alice, "not-a-uuid")


def test_it_finds_customers_by_number_name_phone_and_email(
    customer: Customer, other_customer: Customer
) -> None:
    for text in ["C0100001", "100001", "popes", "ana@exa", "0721 000 111", "bucu"]:
        assert list(Customer.objects.search(text)) == [customer], text
    assert list(Customer.objects.search("kowal krak")) == [other_customer]
    assert list(Customer.objects.search("nobody")) == []
    assert list(Customer.objects.search("&|!'")) == []


def test_it_finds_customers_by_postal_code_with_leading_zero(customer: Customer) -> None:
    assert list(Customer.objects.search("010101")) == [customer]
    assert list(Customer.objects.search("+40 721 000 111")) == [customer]
