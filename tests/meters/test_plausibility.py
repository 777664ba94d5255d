"""Plausibility rules: each rule with its edge cases, and set-wise loading of contexts."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import TOTP
from django.test import Client

from meters.models import Meter, PlausibilityRule, Reading, ReadingStatus, Register
from meters.plausibility import (
    DEFAULT_RULES,
    ReadingContext,
    Rule,
    RuleSet,
    active_rules,
    check,
    estimate,
    expected_range,
    fresh_context,
    load_contexts,
)
from portal.models import User
from tests.conftest import TOTP_SECRET

TODAY = date(2026, 6, 1)
MARCH_3 = date(2026, 3, 3)
APRIL_2 = date(2026, 4, 2)  # 30 days after 3 March
RULES = RuleSet()


def ctx(**changes: Any) -> ReadingContext:
    """A 6-digit kWh register read 12,500 on 3 March, moving about 10 a day."""
    base = ReadingContext(
        register_id=1, integer_digits=6, decimals=0, multiplier=Decimal(1),
        previous_value=Decimal(12500), previous_on=MARCH_3, expected_daily=Decimal(10),
        zero_days=0, last_on=MARCH_3,
    )
    return replace(base, **changes)


def water_ctx(**changes: Any) -> ReadingContext:
    """A 5-digit, 2-decimal m3 register read 123.45 on 3 March, moving 0.5 a day."""
    water: dict[str, Any] = {"integer_digits": 5, "decimals": 2,
                             "previous_value": Decimal("123.45"), "expected_daily": Decimal("0.5")}
    return ctx(**{**water, **changes})


def rules_with(code: str, severity: str | None = None, **parameters: Any) -> RuleSet:
    rules = dict(DEFAULT_RULES)
    default = DEFAULT_RULES[code]
    rules[code] = Rule(severity or default.severity, {**default.parameters, **parameters})
    return RuleSet(rules)


def codes(verdict: Any) -> list[str]:
    return [f.rule for f in verdict.findings]


# Within the band ----------------------------------------------------------------------------


def test_it_accepts_a_reading_in_the_expected_band_and_computes_consumption() -> None:
    verdict = check(ctx(), Decimal(12800), APRIL_2, today=TODAY, rules=RULES)

    assert verdict.status == "accepted"
    assert verdict.findings == []
    assert verdict.consumption == Decimal(300)


def test_it_accepts_the_first_reading_of_a_register_without_consumption() -> None:
    verdict = check(fresh_context(ctx()), Decimal(42), APRIL_2, today=TODAY, rules=RULES)

    assert verdict.status == "accepted"
    assert verdict.consumption is None


# Monotonic index -----------------------------------------------------------------------------


def test_it_rejects_an_index_lower_than_the_previous_with_a_specific_message() -> None:
    verdict = check(ctx(), Decimal(12340), APRIL_2, today=TODAY, rules=RULES)

    assert verdict.status == "rejected"
    assert codes(verdict) == ["monotonic"]
    assert verdict.findings[0].message == (
        "The index 12,340 is lower than the previous reading 12,500 of 3 March 2026."
    )
    assert verdict.consumption is None


def test_it_accepts_an_unchanged_index_over_a_short_period_without_history() -> None:
    verdict = check(ctx(expected_daily=None), Decimal(12500), APRIL_2, today=TODAY, rules=RULES)

    assert verdict.status == "accepted"
    assert verdict.consumption == 0


# Rollover ------------------------------------------------------------------------------------


def test_it_accepts_and_flags_a_wrap_at_the_exact_maximum() -> None:
    # 999999 → 000000 is one unit; expected 1 over 10 days.
    context = ctx(previous_value=Decimal(999999), expected_daily=Decimal("0.1"))

    verdict = check(context, Decimal(0), MARCH_3 + timedelta(days=10), today=TODAY, rules=RULES)

    assert verdict.status == "flagged"
    assert codes(verdict) == ["rollover"]
    assert verdict.consumption == Decimal(1)
    assert "999,999" in verdict.findings[0].message


def test_it_accepts_a_wrap_whose_consumption_is_in_the_band() -> None:
    verdict = check(ctx(previous_value=Decimal(999990)), Decimal(250), APRIL_2, today=TODAY,
                    rules=RULES)

    assert verdict.status == "flagged"
    assert verdict.consumption == Decimal(260)


def test_it_rejects_a_drop_whose_wrapped_consumption_is_outside_the_band() -> None:
    verdict = check(ctx(previous_value=Decimal(999990)), Decimal(5000), APRIL_2, today=TODAY,
                    rules=RULES)

    assert verdict.status == "rejected"
    assert codes(verdict) == ["monotonic"]


def test_it_accepts_a_wrap_from_near_the_top_to_near_zero_without_history() -> None:
    context = ctx(previous_value=Decimal(999950), expected_daily=None)

    assert check(context, Decimal(30), APRIL_2, today=TODAY, rules=RULES).status == "flagged"
    far = ctx(previous_value=Decimal(600000), expected_daily=None)
    assert check(far, Decimal(30), APRIL_2, today=TODAY, rules=RULES).status == "rejected"


def test_it_wraps_a_register_with_decimals_at_its_own_maximum() -> None:
    # 5 digits, 2 decimals: 99,999.99 → 00,000.49 is 0.50 m3, expected 0.5 a day × 1 day.
    context = water_ctx(previous_value=Decimal("99999.99"))

    verdict = check(context, Decimal("0.49"), MARCH_3 + timedelta(days=1), today=TODAY,
                    rules=RULES)

    assert verdict.status == "flagged"
    assert verdict.consumption == Decimal("0.50")


def test_it_rejects_every_drop_when_the_rollover_rule_is_off() -> None:
    context = ctx(previous_value=Decimal(999990))

    verdict = check(context, Decimal(250), APRIL_2, today=TODAY,
                    rules=rules_with("rollover", "off"))

    assert verdict.status == "rejected"


# High / low band -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "status"),
    [
        (12500 + 900, "accepted"),  # exactly expected × 3
        (12500 + 901, "flagged"),
        (12500 + 60, "accepted"),  # exactly expected × 0.2
        (12500 + 59, "flagged"),
    ],
)
def test_it_flags_consumption_outside_the_band_edges(value: int, status: str) -> None:
    verdict = check(ctx(), Decimal(value), APRIL_2, today=TODAY, rules=RULES)

    assert verdict.status == status
    assert codes(verdict) == ([] if status == "accepted" else ["high_low"])


def test_it_says_how_high_the_consumption_is_against_the_expected() -> None:
    verdict = check(ctx(), Decimal(14000), APRIL_2, today=TODAY, rules=RULES)

    assert verdict.findings[0].message == (
        "A consumption of 1,500 since 3 March 2026 is higher than expected (at most about 900)."
    )


def test_it_uses_the_configured_factors() -> None:
    rules = rules_with("high_low", high_factor="5")

    assert check(ctx(), Decimal(14000), APRIL_2, today=TODAY, rules=rules).status == "accepted"


def test_it_rejects_out_of_band_when_the_rule_is_configured_to_reject() -> None:
    verdict = check(ctx(), Decimal(14000), APRIL_2, today=TODAY,
                    rules=rules_with("high_low", "reject"))

    assert verdict.status == "rejected"


def test_it_flags_no_consumption_where_some_was_expected() -> None:
    verdict = check(ctx(), Decimal(12500), APRIL_2, today=TODAY, rules=RULES)

    assert codes(verdict) == ["high_low"]


def test_it_applies_the_multiplier_to_consumption_and_messages() -> None:
    context = ctx(multiplier=Decimal(40), previous_value=Decimal(1000))

    ok = check(context, Decimal(1300), APRIL_2, today=TODAY, rules=RULES)
    high = check(context, Decimal(2500), APRIL_2, today=TODAY, rules=RULES)

    assert ok.consumption == Decimal(12000)
    assert "60,000" in high.findings[0].message  # 1,500 on the dial × 40
    assert high.consumption == Decimal(60000)


# Dates ----------------------------------------------------------------------------------------


def test_it_rejects_a_date_in_the_future_and_accepts_today() -> None:
    assert check(ctx(), Decimal(12800), TODAY + timedelta(days=1), today=TODAY,
                 rules=RULES).status == "rejected"
    assert check(ctx(expected_daily=None), Decimal(12800), TODAY, today=TODAY,
                 rules=RULES).status == "accepted"


def test_it_rejects_a_date_before_the_last_reading_with_its_date() -> None:
    verdict = check(ctx(), Decimal(12800), date(2026, 3, 1), today=TODAY, rules=RULES)

    assert verdict.status == "rejected"
    assert "date_order" in codes(verdict)
    assert "before the last reading of 3 March 2026" in verdict.findings[0].message


def test_it_rejects_a_second_reading_the_same_day() -> None:
    verdict = check(ctx(), Decimal(12500), MARCH_3, today=TODAY, rules=RULES)

    assert verdict.status == "rejected"
    assert "date_duplicate" in codes(verdict)


def test_it_rejects_readings_outside_the_meters_installation() -> None:
    context = ctx(installed_on=date(2025, 1, 1), removed_on=date(2026, 3, 31))

    assert check(context, Decimal(12800), APRIL_2, today=TODAY,
                 rules=RULES).status == "rejected"
    assert check(context, Decimal(12800), date(2026, 3, 31), today=TODAY,
                 rules=RULES).status == "accepted"
    new = fresh_context(ctx(installed_on=APRIL_2))
    assert check(new, Decimal(5), APRIL_2 - timedelta(days=1), today=TODAY,
                 rules=RULES).status == "rejected"


# Long zero consumption -------------------------------------------------------------------------


def test_it_flags_an_index_that_has_not_moved_for_90_days() -> None:
    # Still for 80 days before 3 March, and 10 more days to 13 March.
    context = ctx(zero_days=80, expected_daily=None)

    verdict = check(context, Decimal(12500), MARCH_3 + timedelta(days=10), today=TODAY,
                    rules=RULES)

    assert verdict.status == "flagged"
    assert codes(verdict) == ["zero_consumption"]
    assert "90 days" in verdict.findings[0].message


def test_it_does_not_flag_89_days_without_movement() -> None:
    context = ctx(zero_days=79, expected_daily=None)

    verdict = check(context, Decimal(12500), MARCH_3 + timedelta(days=10), today=TODAY,
                    rules=RULES)

    assert verdict.status == "accepted"


# Decimal slips and the dial ---------------------------------------------------------------------


def test_it_flags_an_index_ten_times_the_previous() -> None:
    verdict = check(ctx(), Decimal(125300), APRIL_2, today=TODAY, rules=RULES)

    assert verdict.status == "flagged"
    assert codes(verdict) == ["decimal_slip"]
    assert "about 10 times" in verdict.findings[0].message


def test_it_rejects_an_index_a_tenth_of_the_previous_and_asks_for_a_missing_digit() -> None:
    verdict = check(ctx(), Decimal(1250), APRIL_2, today=TODAY, rules=RULES)

    assert verdict.status == "rejected"
    assert verdict.findings[0].message.endswith("Is a digit missing?")


def test_it_rejects_decimals_on_a_whole_number_register_but_not_trailing_zeros() -> None:
    rejected = check(ctx(), Decimal("12800.5"), APRIL_2, today=TODAY, rules=RULES)
    accepted = check(ctx(), Decimal("12800.000"), APRIL_2, today=TODAY, rules=RULES)

    assert codes(rejected) == ["too_many_decimals"]
    assert rejected.status == "rejected"
    assert accepted.status == "accepted"


def test_it_accepts_two_decimals_on_a_water_register_and_rejects_three() -> None:
    two = check(water_ctx(), Decimal("138.45"), APRIL_2, today=TODAY, rules=RULES)
    three = check(water_ctx(), Decimal("138.456"), APRIL_2, today=TODAY, rules=RULES)

    assert two.status == "accepted"
    assert two.consumption == Decimal("15.00")
    assert three.status == "rejected"
    assert "more than 2 decimals" in three.findings[0].message


def test_it_rejects_more_integer_digits_than_the_dial_has() -> None:
    first = fresh_context(ctx())

    assert check(first, Decimal(999999), APRIL_2, today=TODAY, rules=RULES).status == "accepted"
    verdict = check(first, Decimal(1000000), APRIL_2, today=TODAY, rules=RULES)
    assert codes(verdict) == ["digits_overflow"]
    water = check(fresh_context(water_ctx()), Decimal("100000.00"), APRIL_2, today=TODAY,
                  rules=RULES)
    assert water.status == "rejected"


def test_it_rejects_a_negative_index() -> None:
    verdict = check(fresh_context(ctx()), Decimal(-1), APRIL_2, today=TODAY, rules=RULES)

    assert codes(verdict) == ["negative"]


# Expected range and estimation -------------------------------------------------------------------


def test_it_shows_the_expected_index_range() -> None:
    assert expected_range(ctx(), APRIL_2, RULES) == (Decimal(12560), Decimal(13400))
    assert expected_range(water_ctx(), APRIL_2, RULES) == (Decimal("126.45"), Decimal("168.45"))
    assert expected_range(ctx(expected_daily=None), APRIL_2, RULES) is None


def test_it_estimates_from_the_daily_expectation_rounded_to_the_dial() -> None:
    context = water_ctx(expected_daily=Decimal("0.333"))

    assert estimate(context, APRIL_2) == (Decimal("133.44"), Decimal("9.99"))
    assert estimate(ctx(previous_value=Decimal(999900)), APRIL_2) == (Decimal(200), Decimal(300))
    assert estimate(ctx(expected_daily=None), APRIL_2) is None


# Rule configuration -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_reads_rule_rows_over_the_defaults_in_one_query(
    django_assert_num_queries: Any,
) -> None:
    PlausibilityRule.objects.create(code="zero_consumption", severity="reject",
                                    parameters={"days": 30})
    PlausibilityRule.objects.create(code="high_low", severity="off")

    with django_assert_num_queries(1):  # the PlausibilityRule rows
        rules = active_rules()

    assert rules.severity("zero_consumption") == "reject"
    assert rules.integer("zero_consumption", "days") == 30
    assert not rules.is_on("high_low")
    assert rules.severity("monotonic") == "reject"
    verdict = check(ctx(), Decimal(20000), APRIL_2, today=TODAY, rules=rules)
    assert verdict.status == "accepted"


# Loading contexts from history ------------------------------------------------------------------


def every_ten_days(start: date, first: int, step: int, count: int) -> list[tuple[date, int]]:
    return [(start + timedelta(days=10 * i), first + step * i) for i in range(count)]


def test_it_loads_previous_reading_and_daily_expectation(
    register: Register, add_history: Any
) -> None:
    add_history(register, every_ten_days(date(2025, 11, 1), 1000, 100, 11))

    context = load_contexts([register.pk])[register.pk]

    assert context.previous_value == Decimal(2000)
    assert context.previous_on == context.last_on == date(2026, 2, 9)
    assert context.expected_daily == Decimal(10)
    assert context.zero_days == 0
    assert (context.integer_digits, context.decimals) == (6, 0)
    assert context.installed_on == date(2024, 1, 1)


def test_it_ignores_rejected_readings_and_readings_from_the_before_day(
    register: Register, add_history: Any
) -> None:
    readings = add_history(register, every_ten_days(date(2025, 11, 1), 1000, 100, 11))
    Reading.objects.filter(pk=readings[-1].pk).update(status=ReadingStatus.REJECTED)

    assert load_contexts([register.pk])[register.pk].previous_value == Decimal(1900)
    before = load_contexts([register.pk], before=date(2025, 11, 21))[register.pk]
    assert before.previous_value == Decimal(1100)


def test_it_counts_a_wrap_in_history_as_movement(register: Register, add_history: Any) -> None:
    add_history(register, [(date(2026, 1, 1), 999700), (date(2026, 1, 31), 0)])

    context = load_contexts([register.pk])[register.pk]

    assert context.expected_daily == Decimal(10)


def test_it_counts_the_days_the_index_has_not_moved(register: Register, add_history: Any) -> None:
    add_history(register, [(date(2026, 1, 1), 500), (date(2026, 1, 11), 600),
                           (date(2026, 2, 10), 600), (date(2026, 3, 12), 600)])

    context = load_contexts([register.pk])[register.pk]

    assert context.zero_days == 60  # unchanged since 11 January


def test_it_has_no_expectation_from_too_short_a_history(
    register: Register, water_register: Register, add_history: Any
) -> None:
    add_history(register, [(date(2026, 1, 1), 500), (date(2026, 1, 11), 600)])

    contexts = load_contexts([register.pk, water_register.pk])

    assert contexts[register.pk].expected_daily is None
    assert contexts[water_register.pk].previous_value is None
    assert contexts[water_register.pk].expected_daily is None


def test_it_starts_a_new_meters_register_fresh_after_an_exchange(
    register: Register, meter: Meter, add_history: Any
) -> None:
    add_history(register, every_ten_days(date(2025, 11, 1), 1000, 100, 11))
    Meter.objects.filter(pk=meter.pk).update(removed_on=date(2026, 2, 9))
    new_meter = Meter.objects.create(supply_point=meter.supply_point, serial_number="E-NEW",
                                     installed_on=date(2026, 2, 9))
    new_register = Register.objects.create(meter=new_meter, code="1.8.0", name="Total")

    contexts = load_contexts([register.pk, new_register.pk])

    assert contexts[register.pk].removed_on == date(2026, 2, 9)
    fresh = contexts[new_register.pk]
    assert fresh.previous_value is None
    verdict = check(fresh, Decimal(3), date(2026, 2, 9), today=TODAY, rules=RULES)
    assert verdict.status == "accepted"


@pytest.mark.parametrize("history", [10, 10_000])
def test_it_loads_contexts_in_one_query_whatever_the_history(
    history: int, register: Register, ct_register: Register, add_history: Any,
    django_assert_num_queries: Any,
) -> None:
    # A reading a week, 35 kWh each: 10 readings span 63 days, 10,000 span 190 years.
    start = date(2026, 5, 1) - timedelta(weeks=history)
    add_history(register, [(start + timedelta(weeks=i), (1000 + 35 * i) % 1_000_000)
                           for i in range(history)])

    with django_assert_num_queries(1):  # registers + latest reading + history stats, one SELECT
        contexts = load_contexts([register.pk, ct_register.pk])

    assert contexts[register.pk].expected_daily == Decimal(5)
    assert contexts[ct_register.pk].multiplier == Decimal(40)


# Configuration in the admin ----------------------------------------------------------------


@pytest.fixture
def superuser_client(db: None) -> Any:
    user = User.objects.create_superuser(email="root@example.com", password="x-long-passphrase")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    TOTP.activate(user, TOTP_SECRET)
    client = Client()
    client.force_login(user)
    return client


def test_it_configures_a_rule_in_the_admin_and_refuses_unknown_parameters(
    superuser_client: Any,
) -> None:
    url = "/admin/meters/plausibilityrule/add/"

    wrong = superuser_client.post(url, {"code": "zero_consumption", "severity": "flag",
                                        "parameters": '{"dayz": 30}', "description": ""})
    right = superuser_client.post(url, {"code": "zero_consumption", "severity": "flag",
                                        "parameters": '{"days": 30}', "description": ""})

    assert "Unknown parameters dayz" in wrong.content.decode()
    assert right.status_code == 302
    assert active_rules().integer("zero_consumption", "days") == 30


def test_it_shows_a_readings_findings_read_only_in_the_admin(
    superuser_client: Any, register: Register, add_history: Any
) -> None:
    (reading,) = add_history(register, [(MARCH_3, 12500)])
    Reading.objects.filter(pk=reading.pk).update(findings=[
        {"rule": "high_low", "severity": "flag", "message": "Higher than expected."}])

    page = superuser_client.get(f"/admin/meters/reading/{reading.pk}/change/").content.decode()

    assert "high_low (flag): Higher than expected." in page
    assert 'name="findings"' not in page
    assert superuser_client.get("/admin/meters/reading/add/").status_code == 403
