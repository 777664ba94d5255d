"""Message catalogs: every language complete, and in step with the source.

The tests use GNU gettext (msgfmt, msgcat, xgettext), which `make setup`
installs and `compilemessages` needs anyway.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = [code for code, _name in settings.LANGUAGES if code != settings.LANGUAGE_CODE]
PLURALS = {"ro": 3, "pl": 3, "it": 2, "sk": 3}
# Top-level entries that are not sources of messages (cf. `make messages`).
NOT_SOURCE = {".venv", "var", ".git", "tests", "bench", "locale", "staticfiles"}
NOT_SOURCE |= {".mypy_cache", ".ruff_cache", ".pytest_cache", "test-results", "node_modules"}


def catalog(language: str) -> Path:
    return ROOT / "locale" / language / "LC_MESSAGES" / "django.po"


def msgids(po: Path) -> set[str]:
    """The msgids (with any context) of a .po file, obsolete ones left out."""
    # msgcat --no-wrap puts each string on one line, escaped the same way
    # whichever file it comes from.
    result = subprocess.run(
        ["msgcat", "--no-wrap", "--no-location", "--sort-output", str(po)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    ids: set[str] = set()
    for block in result.stdout.split("\n\n"):
        if block.lstrip().startswith("#~"):
            continue  # obsolete
        context = re.search(r'^msgctxt "(.*)"$', block, re.M)
        msgid = re.search(r'^msgid "(.*)"$', block, re.M)
        if msgid and msgid.group(1):
            ids.add(f"{context.group(1)}\x04{msgid.group(1)}" if context else msgid.group(1))
    return ids


def test_it_has_a_catalog_for_every_language() -> None:
    assert sorted(LANGUAGES) == sorted(PLURALS)
    for language in LANGUAGES:
        assert catalog(language).is_file(), f"run `make messages` to create {catalog(language)}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_it_translates_every_message(language: str) -> None:
    result = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", os.devnull, str(catalog(language))],
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "translated message" in report, report
    assert "untranslated" not in report, report
    assert "fuzzy" not in report, report
    header = catalog(language).read_text(encoding="utf-8").split("\n\n", 1)[0]
    assert f'"Language: {language}\\n"' in header
    assert f"nplurals={PLURALS[language]};" in header
    assert "charset=UTF-8" in header


def test_it_has_every_message_of_the_source_in_the_catalogs(tmp_path: Path) -> None:
    # makemessages on a copy of the sources, so the real catalogs stay as they are.
    source = tmp_path / "src"
    shutil.copytree(
        ROOT, source, ignore=lambda d, names: NOT_SOURCE & set(names) if Path(d) == ROOT else set()
    )
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", LANGUAGES[0], "-v", "0"]
        + [f"--ignore={pattern}" for pattern in ("tests/*", "bench/*", "var", ".venv")],
        cwd=source,
        check=True,
        capture_output=True,
        env={**os.environ, "LC_ALL": "C.UTF-8", "DJANGO_SETTINGS_MODULE": "portal.settings"},
    )
    expected = msgids(source / "locale" / LANGUAGES[0] / "LC_MESSAGES" / "django.po")
    assert len(expected) > 100
    for language in LANGUAGES:
        present = msgids(catalog(language))
        missing, stale = sorted(expected - present), sorted(present - expected)
        assert not missing, f"{language}: run `make messages` and translate {missing}"
        assert not stale, f"{language}: run `make messages` to drop {stale}"
