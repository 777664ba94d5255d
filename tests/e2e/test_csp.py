"""The csp_violations fixture (tests/e2e/conftest.py) really notices a violation."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from tests.e2e.conftest import CspViolations

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_it_reports_an_inline_script_the_policy_blocks(
    page: Page, live_server: Any, csp_violations: CspViolations
) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
        page.evaluate("""() => {
            const script = document.createElement("script");
            script.textContent = "document.body.dataset.ran = 'yes'";
            document.body.append(script);
        }""")
    assert page.evaluate("() => document.body.dataset.ran") is None
    assert any("Content Security Policy" in v for v in csp_violations)
    csp_violations.clear()  # seen on purpose: the fixture must not fail this test
