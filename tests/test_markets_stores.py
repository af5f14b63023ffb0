"""Each marketplace is a Store row: created by a data migration, with its own currency, language
and base URL, and a provider that fetches from that base URL in that language."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.apps import apps as django_apps

from scraping.marketplaces import MARKETPLACES, PLAUSIBLE_MAXIMUM, accept_language
from scraping.models import Store, get_store
from scraping.providers import get_provider
from scraping.results import ScrapeStatus

pytestmark = pytest.mark.django_db
ASIN = "B0STOREROW"
MIGRATION = importlib.import_module("scraping.migrations.0004_marketplace_stores")


def test_the_data_migration_creates_one_store_per_marketplace_and_keeps_existing_limits(settings):
    Store.objects.all().delete()
    Store.objects.create(code="amazon.com", name="Amazon.com", requests_per_minute=7)
    settings.SCRAPE_RATE_PER_MINUTE = 13
    MIGRATION.create_marketplace_stores(django_apps, None)
    MIGRATION.create_marketplace_stores(django_apps, None)  # idempotent
    rows = {store.code: store for store in Store.objects.all()}
    assert set(rows) == {marketplace.code for marketplace in MARKETPLACES}
    for marketplace in MARKETPLACES:
        row = rows[marketplace.code]
        assert (row.name, row.currency, row.language, row.base_url) == (
            marketplace.name,
            marketplace.currency,
            marketplace.language,
            "",
        )
    assert rows["amazon.com"].requests_per_minute == 7  # an existing row keeps its policy
    assert rows["amazon.de"].requests_per_minute == 13  # new rows are seeded from the settings
    # A 1,500,000 yen camera is a real price; a million-euro widget is not.
    assert rows["amazon.co.jp"].max_plausible_price == Decimal("200000000")
    assert rows["amazon.de"].max_plausible_price == Decimal("1000000")


def test_a_store_created_on_first_use_gets_the_same_seeds_as_the_migration():
    Store.objects.filter(code="amazon.in").delete()
    store = get_store("amazon.in")
    assert (store.currency, store.language, store.max_plausible_price) == ("INR", "en-IN", Decimal("100000000"))
    assert MIGRATION.PLAUSIBLE_MAXIMUM == PLAUSIBLE_MAXIMUM


def test_the_migrations_table_is_the_marketplaces_table():
    assert [row[0:4] for row in MIGRATION.MARKETPLACES] == [
        (m.code, m.name, m.currency, m.language) for m in MARKETPLACES
    ]


def test_where_a_store_is_fetched_from(settings):
    settings.AMAZON_BASE_URL = "http://127.0.0.1:9000"
    settings.STORE_BASE_URLS = {"amazon.de": "http://127.0.0.1:9001/amazon.de"}
    com, de, jp = get_store("amazon.com"), get_store("amazon.de"), get_store("amazon.co.jp")
    assert com.fetch_base_url() == "http://127.0.0.1:9000"
    assert de.fetch_base_url() == "http://127.0.0.1:9001/amazon.de"
    assert jp.fetch_base_url() == "https://www.amazon.co.jp"
    # STORE_BASE_URLS names amazon.com too; an admin's base URL on the row wins over both.
    settings.STORE_BASE_URLS = {"amazon.com": "http://127.0.0.1:9002/amazon.com"}
    assert com.fetch_base_url() == "http://127.0.0.1:9002/amazon.com"
    jp.base_url = "http://127.0.0.1:9003"
    assert jp.fetch_base_url() == "http://127.0.0.1:9003"


def test_store_base_urls_is_read_strictly():
    from django.core.exceptions import ImproperlyConfigured

    from pricetracker.env import env_http_url_map

    environ = {"STORE_BASE_URLS": " amazon.de=http://127.0.0.1:9001/amazon.de , Amazon.CO.UK=https://x.test/ "}
    assert env_http_url_map("STORE_BASE_URLS", environ=environ) == {
        "amazon.de": "http://127.0.0.1:9001/amazon.de",
        "amazon.co.uk": "https://x.test",
    }
    assert env_http_url_map("STORE_BASE_URLS", environ={}) == {}
    for bad in ("amazon.de", "amazon.de=ftp://x", "amazon.de=http://a,amazon.de=http://b", "a b=http://x"):
        with pytest.raises(ImproperlyConfigured, match="STORE_BASE_URLS"):
            env_http_url_map("STORE_BASE_URLS", environ={"STORE_BASE_URLS": bad})


@pytest.mark.parametrize(
    ("language", "header"), [("en-US", "en-US,en;q=0.5"), ("de-DE", "de-DE,de;q=0.5"), ("ja", "ja")]
)
def test_accept_language_is_shaped_like_firefoxs(language, header):
    assert accept_language(language) == header


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str]]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("Accept-Language", "")))
        body = b"<html><body><div id='availability'>Auf Lager</div><div id='unqualifiedBuyBox'></div></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    handler: type[_Recorder] = type("Recorder", (_Recorder,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.seen
    server.shutdown()
    server.server_close()


def test_the_provider_fetches_from_the_rows_base_url_in_the_rows_language(recorder):
    base, seen = recorder
    Store.objects.filter(code="amazon.de").delete()
    store = get_store("amazon.de")
    store.base_url = f"{base}/shop"
    store.save()
    result = get_provider("amazon.de").scrape(ASIN)
    assert result.status is ScrapeStatus.SUCCESS
    assert result.currency == "EUR"  # the page names no marketplace: the store's currency
    assert seen == [(f"/shop/dp/{ASIN}", "de-DE,de;q=0.5")]
    # An admin's change applies to the next fetch.
    Store.objects.filter(pk=store.pk).update(language="en-GB")
    get_provider("amazon.de").scrape(ASIN)
    assert seen[-1] == (f"/shop/dp/{ASIN}", "en-GB,en;q=0.5")


def test_a_provider_follows_redirects_only_to_its_own_marketplace():
    assert get_provider("amazon.de").marketplace.hosts == {
        "amazon.de",
        "www.amazon.de",
        "m.amazon.de",
        "smile.amazon.de",
    }
    assert get_provider("amazon.de").product_url(ASIN) == f"https://www.amazon.de/dp/{ASIN}"


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("root@example.com", is_staff=True, is_superuser=True))
    return client


def test_an_admin_edits_a_marketplaces_currency_language_and_base_url(admin_client):
    store = get_store("amazon.pl")
    url = f"/admin/scraping/store/{store.pk}/change/"
    page = admin_client.get(url)
    fields = page.context["adminform"].form.fields
    data = {name: page.context["adminform"].form.initial.get(name) for name in fields}
    data = {name: value for name, value in data.items() if value is not None}
    data.update(currency="pln", language="pl-PL", base_url="http://127.0.0.1:9009/pl", enabled="on")
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    store.refresh_from_db()
    assert (store.currency, store.language, store.base_url) == ("PLN", "pl-PL", "http://127.0.0.1:9009/pl")

    data.update(currency="ZZZ", base_url="file:///etc/passwd", language="Polish!")
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {"currency", "base_url", "language"}
