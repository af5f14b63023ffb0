"""Trackers on every Amazon marketplace: URLs name theirs, a bare ASIN takes ``store`` or the
profile's default, and the same ASIN on two marketplaces is two products."""

from __future__ import annotations

import pytest

from scraping.marketplaces import MARKETPLACES
from scraping.models import Store
from tracking.models import Product, Tracker

ASIN = "B0MARKET01"


def create(client, **body):
    body.setdefault("target_price", "25.00")
    return client.post("/api/trackers/", body, format="json")


@pytest.mark.parametrize("marketplace", [marketplace.code for marketplace in MARKETPLACES])
def test_a_product_url_of_any_marketplace_makes_a_product_of_that_store(alice_client, provider, marketplace):
    response = create(alice_client, url=f"https://www.{marketplace}/Some-Thing/dp/{ASIN}/ref=sr_1_1")
    assert response.status_code == 201, response.json()
    product = response.json()["product"]
    assert (product["asin"], product["store"]) == (ASIN, marketplace)
    assert product["url"] == f"https://www.{marketplace}/dp/{ASIN}"
    stored = Product.objects.select_related("store").get()
    assert stored.store.code == marketplace
    assert stored.store.currency == next(m.currency for m in MARKETPLACES if m.code == marketplace)


def test_the_same_asin_on_two_marketplaces_is_two_products(alice_client, provider):
    assert create(alice_client, url=f"https://www.amazon.com/dp/{ASIN}").status_code == 201
    assert create(alice_client, url=f"https://www.amazon.de/dp/{ASIN}").status_code == 201
    assert sorted(Product.objects.values_list("store__code", "asin")) == [("amazon.com", ASIN), ("amazon.de", ASIN)]
    # ...and the same one twice is still a duplicate.
    again = create(alice_client, url=f"https://m.amazon.de/gp/aw/d/{ASIN}")
    assert again.status_code == 409 and again.json()["code"] == "duplicate_tracker"


def test_a_bare_asin_goes_to_the_store_asked_for(alice_client, provider):
    response = create(alice_client, asin=ASIN.lower(), store="amazon.co.jp")
    assert response.status_code == 201
    assert response.json()["product"]["store"] == "amazon.co.jp"


def test_a_bare_asin_without_store_goes_to_the_profiles_default_marketplace(alice, alice_client, provider):
    assert create(alice_client, asin=ASIN).json()["product"]["store"] == "amazon.com"
    assert alice_client.patch("/api/auth/me/", {"default_store": "Amazon.FR"}, format="json").status_code == 200
    alice.refresh_from_db()
    assert alice.default_store == "amazon.fr"
    assert create(alice_client, asin="B0MARKET02").json()["product"]["store"] == "amazon.fr"


def test_a_store_that_contradicts_the_url_is_refused(alice_client, provider):
    response = create(alice_client, url=f"https://www.amazon.de/dp/{ASIN}", store="amazon.com")
    assert response.status_code == 400 and "url" in response.json()["errors"]
    assert Product.objects.count() == 0


@pytest.mark.parametrize("store", ["amazon.cn", "ebay.com", "", "x" * 51])
def test_an_unknown_store_is_a_400_naming_the_field(alice_client, provider, store):
    response = create(alice_client, asin=ASIN, store=store)
    assert response.status_code == 400
    assert "store" in response.json()["errors"]
    assert (Tracker.objects.count(), Product.objects.count()) == (0, 0)


def test_a_store_row_missing_from_a_fresh_database_is_created_with_its_marketplace_defaults(alice_client, provider):
    Store.objects.filter(code="amazon.se").delete()
    assert create(alice_client, asin=ASIN, store="amazon.se").status_code == 201
    store = Store.objects.get(code="amazon.se")
    assert (store.name, store.currency, store.language) == ("Amazon.se", "SEK", "sv-SE")


# --- the profile ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("de-DE", "de-DE"), ("fr", "fr"), ("pt_BR", "pt-BR"), ("JA-jp", "ja-JP"), ("", "")],
)
def test_the_profile_language_is_a_tag_babel_knows(alice, alice_client, sent, stored):
    response = alice_client.patch("/api/auth/me/", {"language": sent}, format="json")
    assert response.status_code == 200
    assert response.json()["language"] == stored
    alice.refresh_from_db()
    assert alice.language == stored


@pytest.mark.parametrize("body", [{"language": "klingon-xx"}, {"default_store": "amazon.cn"}, {"default_store": ""}])
def test_a_bad_language_or_marketplace_is_refused_and_nothing_changes(alice, alice_client, body):
    response = alice_client.patch("/api/auth/me/", body, format="json")
    assert response.status_code == 400
    assert set(body) <= set(response.json()["errors"])
    alice.refresh_from_db()
    assert (alice.default_store, alice.language) == ("amazon.com", "")
