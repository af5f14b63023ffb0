"""One fake store standing in for every marketplace, and three marketplaces scraped at once.

The fake store picks the marketplace from a path prefix (``/amazon.de/dp/...``) or the Host
header, and dresses its pages for it (language, currency format, host). The pipeline test runs
the real dispatcher, providers, fetcher and parser against it for amazon.com, amazon.de and
amazon.co.jp, each with its own rate, while amazon.com answers only captchas.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from fakestore.markets import MARKETS
from fakestore.server import FakeStore
from scraping.marketplaces import MARKETPLACES
from scraping.models import Store, get_store
from scraping.pages import analyse
from scraping.results import Availability, ErrorKind, ScrapeStatus
from tests.tracking_factories import make_product, make_tracker
from tracking import services
from tracking.models import Product, ScrapeRun

ASIN = "B0FAKEMKT1"


def fetch(store: FakeStore, marketplace: str, asin: str = ASIN, **kwargs) -> requests.Response:
    return requests.get(store.url(asin, marketplace), timeout=10, allow_redirects=False, **kwargs)


def test_the_fake_store_knows_every_marketplace_we_track():
    assert set(MARKETS) == {marketplace.code for marketplace in MARKETPLACES}
    for marketplace in MARKETPLACES:
        shop = MARKETS[marketplace.code]
        assert (shop.currency, shop.language) == (marketplace.currency, marketplace.language)


@pytest.mark.parametrize("marketplace", sorted(MARKETS))
def test_each_marketplaces_page_shows_its_currency_and_language_and_parses_back(fake_store, marketplace):
    fake_store.set_product(ASIN, marketplace, price="1234.56", list_price="2000.00")
    response = fetch(fake_store, marketplace)
    assert response.status_code == 200
    shop = MARKETS[marketplace]
    assert f'lang="{shop.html_lang}"'.encode() in response.content
    assert f"https://www.{marketplace}/".encode() in response.content
    assert shop.texts.in_stock.encode() in response.content
    result = analyse(200, response.headers["Content-Type"], response.content)
    # Currencies without minor units (yen) show whole amounts: 1234.56 is shown as 1235.
    expected = Decimal("1235") if shop.currency == "JPY" else Decimal("1234.56")
    assert (result.status, result.price, result.currency) == (ScrapeStatus.SUCCESS, expected, shop.currency)
    assert result.list_price == Decimal("2000.00")
    assert result.availability is Availability.IN_STOCK


@pytest.mark.parametrize("marketplace", ["amazon.de", "amazon.fr", "amazon.it", "amazon.es", "amazon.com.br",
                                         "amazon.nl", "amazon.se", "amazon.pl", "amazon.com.tr", "amazon.sa",
                                         "amazon.co.jp"])  # fmt: skip
@pytest.mark.parametrize(
    ("availability", "expected"),
    [("out_of_stock", Availability.OUT_OF_STOCK), ("unavailable", Availability.UNAVAILABLE)],
)
def test_stock_states_read_in_each_language(fake_store, marketplace, availability, expected):
    fake_store.set_product(ASIN, marketplace, availability=availability)
    result = analyse(200, "text/html", fetch(fake_store, marketplace).content)
    assert (result.status, result.price, result.availability) == (ScrapeStatus.SUCCESS, None, expected)


@pytest.mark.parametrize("marketplace", ["amazon.de", "amazon.co.jp", "amazon.com.tr", "amazon.sa", "amazon.pl"])
@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("captcha", ErrorKind.CAPTCHA),
        ("soft_captcha", ErrorKind.SOFT_CAPTCHA),
        ("service_unavailable", ErrorKind.SERVICE_UNAVAILABLE),
    ],
)
def test_block_pages_in_each_language_are_blocks(fake_store, marketplace, fault, kind):
    fake_store.set_product(ASIN, marketplace, fault=fault)
    response = fetch(fake_store, marketplace)
    result = analyse(response.status_code, response.headers["Content-Type"], response.content)
    assert (result.status, result.error_kind) == (ScrapeStatus.BLOCKED, kind)


def test_the_same_asin_on_two_marketplaces_is_two_products_with_their_own_counts(fake_store):
    fake_store.set_product(ASIN, "amazon.com", price="10.00")
    fake_store.set_product(ASIN, "amazon.de", price="20.00")
    assert analyse(200, "text/html", fetch(fake_store, "amazon.com").content).price == Decimal("10.00")
    assert analyse(200, "text/html", fetch(fake_store, "amazon.de").content).price == Decimal("20.00")
    fetch(fake_store, "amazon.de")
    assert fake_store.counts("amazon.de") == {ASIN: 2}
    assert fake_store.counts("amazon.com") == {ASIN: 1}
    assert fake_store.counts() == {ASIN: 3}
    assert fake_store.market_counts() == {"amazon.com": 1, "amazon.de": 2}


def test_the_host_header_chooses_the_marketplace_without_a_prefix(fake_store):
    fake_store.set_product(ASIN, "amazon.co.jp", price="980")
    response = requests.get(fake_store.url(ASIN), headers={"Host": "www.amazon.co.jp"}, timeout=10)
    assert analyse(200, "text/html", response.content).currency == "JPY"
    assert fake_store.market_counts() == {"amazon.co.jp": 1}


def test_a_fault_mix_can_block_one_marketplace_while_the_others_serve(fake_store):
    fake_store.set_faults(rate=1.0, kinds=["captcha"], marketplace="amazon.de")
    assert b"validateCaptcha" in fetch(fake_store, "amazon.de").content
    assert b"validateCaptcha" not in fetch(fake_store, "amazon.com").content
    # The same over the control API, scoped by the path prefix.
    control = f"{fake_store.market_url('amazon.fr')}/_control/faults"
    assert requests.post(control, json={"rate": 1.0, "kinds": ["rate_limited"]}, timeout=10).status_code == 200
    assert fetch(fake_store, "amazon.fr").status_code == 429
    assert fetch(fake_store, "amazon.it").status_code == 200


def test_a_same_host_redirect_keeps_the_marketplace_prefix(fake_store):
    fake_store.set_product(ASIN, "amazon.de", fault="redirect_same_host")
    response = fetch(fake_store, "amazon.de")
    assert response.status_code == 301
    assert response.headers["Location"] == f"/amazon.de/dp/{ASIN}?redirected=1"


# --- three marketplaces through the whole pipeline ------------------------------------------------

RATES = {"amazon.com": 2, "amazon.de": 3, "amazon.co.jp": 4}
PRICES = {"amazon.com": "19.99", "amazon.de": "1234.56", "amazon.co.jp": "12980"}


@pytest.fixture
def three_stores(fake_store, settings, alice):
    """amazon.com, .de and .co.jp on one fake store, five tracked products each."""
    settings.STORE_BASE_URLS = {code: fake_store.market_url(code) for code in RATES}
    stores = {}
    for code, rate in RATES.items():
        store = get_store(code)
        Store.objects.filter(pk=store.pk).update(
            requests_per_minute=rate, min_interval_minutes=1, concurrency=10, breaker_threshold=2
        )
        stores[code] = store
        for index in range(5):
            asin = f"B0MKT{index:05d}"
            fake_store.set_product(asin, code, price=PRICES[code])
            make_tracker(alice, make_product(store, asin))
    return stores


@pytest.fixture
def claims(monkeypatch):
    """Capture the dispatcher's claims instead of running them at once."""
    captured: list[tuple[int, object, str]] = []

    def enqueue(*, product_id, claim_token, trigger, requested_by_id=None, not_before=None):
        captured.append((product_id, claim_token, trigger))

    monkeypatch.setattr(services.queue, "enqueue_scrape", enqueue)
    return captured


def run_claims(claims: list) -> None:
    for product_id, token, trigger in claims:
        services.product_scrape(product_id=product_id, claim_token=token, trigger=trigger)
    claims.clear()


def claimed_per_store(claims: list) -> dict[str, int]:
    codes = dict(Product.objects.values_list("pk", "store__code"))
    counts: dict[str, int] = {}
    for product_id, _, _ in claims:
        counts[codes[product_id]] = counts.get(codes[product_id], 0) + 1
    return counts


def test_three_marketplaces_run_at_their_own_rates_and_one_blocked_pauses_only_itself(fake_store, three_stores, claims):
    fake_store.set_faults(rate=1.0, kinds=["captcha"], marketplace="amazon.com")

    # One tick: each store's budget is its own rate.
    services.dispatch_due_products()
    assert claimed_per_store(claims) == RATES

    # The fetches themselves: request slots are taken per store (each store has its own row);
    # raise the rates so the test does not wait tens of seconds for slots.
    Store.objects.filter(code__in=RATES).update(requests_per_minute=60_000)
    run_claims(claims)

    stores = {store.code: store for store in Store.objects.filter(code__in=RATES)}
    assert stores["amazon.com"].breaker_state == Store.BreakerState.OPEN
    assert stores["amazon.de"].breaker_state == Store.BreakerState.CLOSED
    assert stores["amazon.co.jp"].breaker_state == Store.BreakerState.CLOSED
    # amazon.com: two captchas opened its breaker; its third claim was handed back unfetched.
    assert fake_store.market_counts() == {"amazon.com": 2, "amazon.de": 3, "amazon.co.jp": 4}
    blocked = ScrapeRun.objects.filter(product__store__code="amazon.com", status="BLOCKED")
    assert set(blocked.values_list("error_kind", flat=True)) == {ErrorKind.CAPTCHA}

    # Each marketplace's prices in its own currency and conventions.
    observed = set(
        Product.objects.filter(current_price__isnull=False).values_list("store__code", "current_price", "currency")
    )
    assert observed == {("amazon.de", Decimal("1234.56"), "EUR"), ("amazon.co.jp", Decimal("12980.00"), "JPY")}

    # Next tick: the blocked store gets nothing, the others carry on with what is left.
    services.dispatch_due_products()
    assert claimed_per_store(claims) == {"amazon.de": 2, "amazon.co.jp": 1}
    run_claims(claims)
    assert fake_store.market_counts() == {"amazon.com": 2, "amazon.de": 5, "amazon.co.jp": 5}
    assert Product.objects.filter(store__code="amazon.com", current_price__isnull=False).count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args",
    [("https://www.amazon.de/dp/B0FAKEMKT1",), ("B0FAKEMKT1", "--store", "amazon.de")],
)
def test_the_scrape_command_fetches_any_marketplace(fake_store, settings, args):
    import json
    from io import StringIO

    from django.core.management import call_command

    settings.STORE_BASE_URLS = {"amazon.de": fake_store.market_url("amazon.de")}
    fake_store.set_product(ASIN, "amazon.de", price="49.90")
    out = StringIO()
    call_command("scrape", *args, "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert (result["status"], result["price"], result["currency"]) == ("SUCCESS", "49.90", "EUR")
    assert fake_store.market_counts() == {"amazon.de": 1}
