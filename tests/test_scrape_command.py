"""``manage.py scrape --from-file``: offline classification of saved pages, for people and scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from scraping.management.commands.scrape import Command

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "pages"
PRODUCT = FIXTURES / "product_new_layout.html"
CAPTCHA = FIXTURES / "captcha.html"
NO_OFFER = FIXTURES / "no_featured_offer.html"
JSON_KEYS = {"file", "status", "error_kind", "asin", "title", "price", "currency", "availability", "list_price", "rule"}


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("scrape", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_json_mode_prints_one_object_per_file_with_exactly_the_documented_keys():
    out, _ = run("--from-file", str(PRODUCT), str(CAPTCHA), str(NO_OFFER), "--json")
    lines = out.splitlines()
    assert len(lines) == 3
    objects = [json.loads(line) for line in lines]
    assert all(set(obj) == JSON_KEYS for obj in objects)
    assert [obj["file"] for obj in objects] == [str(PRODUCT), str(CAPTCHA), str(NO_OFFER)]


def test_json_mode_reports_price_as_a_string_and_the_rule_that_found_it():
    out, _ = run("--from-file", str(PRODUCT), "--json")
    assert json.loads(out) == {
        "file": str(PRODUCT),
        "status": "SUCCESS",
        "error_kind": "",
        "asin": "B000000001",
        "title": "Acme Widget, Blue",
        "price": "24.50",
        "currency": "USD",
        "availability": "in_stock",
        "list_price": "29.99",
        "rule": "core_price_display",
    }


def test_json_mode_reports_blocks_and_no_price_states_without_a_price():
    out, _ = run("--from-file", str(CAPTCHA), str(NO_OFFER), "--json")
    captcha, no_offer = (json.loads(line) for line in out.splitlines())
    assert (captcha["status"], captcha["error_kind"], captcha["price"]) == ("BLOCKED", "captcha", None)
    assert (no_offer["status"], no_offer["price"], no_offer["currency"]) == ("SUCCESS", None, "EUR")
    assert no_offer["rule"] == "no_price:no_featured_offer"


def test_a_missing_file_gets_an_error_line_and_the_others_are_still_parsed(tmp_path):
    missing = tmp_path / "nope.html"
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="1 of 2"):
        call_command("scrape", "--from-file", str(missing), str(PRODUCT), "--json", stdout=out, stderr=err)
    assert str(missing) in err.getvalue()
    assert [json.loads(line)["file"] for line in out.getvalue().splitlines()] == [str(PRODUCT)]


def test_the_readable_summary_shows_price_rule_and_block_reason():
    out, _ = run("--from-file", str(PRODUCT), str(CAPTCHA))
    assert "price: 24.50 USD" in out
    assert "rule: core_price_display" in out
    assert "status: BLOCKED (captcha)" in out


def test_it_needs_a_target_or_files_but_not_both():
    with pytest.raises(CommandError):
        run()
    with pytest.raises(CommandError):
        run("B000000001", "--from-file", str(PRODUCT))


# --- live mode: the outcome is the exit status ------------------------------------------------------


@pytest.fixture(autouse=True)
def _store_rows(request):
    """A live scrape reads its store's row (base URL, language): give those tests a database."""
    if "fake_store" in request.fixturenames:
        request.getfixturevalue("db")


def scrape_live(*args: str) -> tuple[str, int]:
    """stdout of a live ``scrape`` and its exit status."""
    out = StringIO()
    try:
        call_command("scrape", *args, stdout=out, stderr=StringIO())
    except CommandError as exc:
        return out.getvalue(), exc.returncode
    return out.getvalue(), 0


@pytest.mark.parametrize(
    ("fault", "status", "kind", "exit_status"),
    [
        (None, "SUCCESS", "", 0),
        ("captcha", "BLOCKED", "captcha", 4),
        ("rate_limited", "BLOCKED", "rate_limited", 4),
        ("not_found", "FAILED", "not_found", 3),
    ],
)
def test_a_live_scrape_exits_with_its_outcome_and_keeps_its_json_keys(fake_store, fault, status, kind, exit_status):
    fake_store.set_product("B000000001", fault=fault)

    out, code = scrape_live("B000000001", "--json")

    result = json.loads(out)
    assert code == exit_status
    assert (result["status"], result["error_kind"]) == (status, kind)
    assert set(result) >= JSON_KEYS - {"file"}


def test_a_blocked_live_scrape_fails_the_process_after_printing_the_result(fake_store):
    fake_store.set_product("B000000001", fault="captcha")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env["AMAZON_BASE_URL"] = fake_store.base_url

    result = subprocess.run(
        [sys.executable, "manage.py", "scrape", "B000000001"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 4
    assert "status: BLOCKED (captcha)" in result.stdout
    assert "B000000001: BLOCKED (captcha)" in result.stderr


def test_the_exit_statuses_are_documented_in_the_help():
    assert "0 SUCCESS" in Command.help and "3 FAILED" in Command.help and "4 BLOCKED" in Command.help
