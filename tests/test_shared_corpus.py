"""Every real saved page in ../shared/amazon against its ground truth (MANIFEST.json).

The pages belong to the shared corpus, not to this project: they are read in place, never copied.
When the corpus is absent (a fresh clone, CI) the whole module is skipped.

Expectations per kind:
- ``captcha`` pages: BLOCKED/captcha, no price.
- ``error`` pages: the "Sorry! Something went wrong" dogs pages, 503 and 500 variants alike, are
  BLOCKED/service_unavailable (Amazon's shedding page; see scraping/classify.py), no price.
- ``product`` pages: SUCCESS with the manifest's ASIN, title, price (None on no-price pages),
  currency, availability and list price, for amazon.com and the other marketplaces alike.
Saved pages carry no HTTP status, so each is analysed as HTTP 200 text/html, as
``manage.py scrape --from-file`` does.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from scraping.pages import analyse
from scraping.results import Availability, ErrorKind, ScrapeStatus

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "amazon"
MANIFEST = CORPUS / "MANIFEST.json"

if not MANIFEST.is_file():
    pytest.skip(f"shared Amazon corpus not found at {CORPUS}", allow_module_level=True)

pytestmark = pytest.mark.shared_corpus

ENTRIES: list[dict[str, Any]] = json.loads(MANIFEST.read_text(encoding="utf-8"))
AVAILABILITY = {
    "in stock": Availability.IN_STOCK,
    "out of stock": Availability.OUT_OF_STOCK,
    "unavailable": Availability.UNAVAILABLE,
    "unknown": Availability.UNKNOWN,
}


def entries(kind: str) -> list[Any]:
    return [pytest.param(entry, id=entry["id"]) for entry in ENTRIES if entry["kind"] == kind]


def analyse_saved(entry: dict[str, Any]):
    body = (CORPUS / "pages" / f"{entry['id']}.html").read_bytes()
    assert len(body) == entry["bytes"], "the saved page does not match its manifest entry"
    return analyse(200, "text/html", body)


def money(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


@pytest.mark.parametrize("entry", entries("captcha"))
def test_every_captcha_page_is_blocked_as_a_captcha(entry):
    result = analyse_saved(entry)
    assert (result.status, result.error_kind) == (ScrapeStatus.BLOCKED, ErrorKind.CAPTCHA)
    assert result.price is None


@pytest.mark.parametrize("entry", entries("error"))
def test_every_dogs_error_page_is_blocked_as_service_unavailable(entry):
    result = analyse_saved(entry)
    assert (result.status, result.error_kind) == (ScrapeStatus.BLOCKED, ErrorKind.SERVICE_UNAVAILABLE)
    assert result.price is None


@pytest.mark.parametrize("entry", entries("product"))
def test_every_product_page_matches_its_ground_truth(entry):
    result = analyse_saved(entry)
    got = {
        "status": result.status,
        "asin": result.asin,
        "title": result.title,
        "price": result.price,
        "currency": result.currency,
        "availability": result.availability,
        "list_price": result.list_price,
    }
    expected = {
        "status": ScrapeStatus.SUCCESS,
        "asin": entry["asin"],
        "title": entry["title"],
        "price": money(entry["price"]),
        "currency": entry["currency"],
        "availability": AVAILABILITY[entry["availability"]],
        "list_price": money(entry["list_price"]),
    }
    assert got == expected, f"rule {result.rule!r}; layout: {entry['layout_notes']}"
    assert result.rule, "every product page is explained by a named rule"
