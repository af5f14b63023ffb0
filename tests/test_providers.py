"""Providers turn a product reference into a classified result, through real HTTP, and never raise."""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest

from fakestore.server import FAULT_KINDS, FakeStore
from scraping.inputs import InvalidProductReference
from scraping.providers import Provider, UnknownProvider, get_provider, providers, register, unregister
from scraping.providers.amazon import AmazonProvider
from scraping.results import Availability, ErrorKind, ScrapeResult, ScrapeStatus

ASIN = "B0TESTPR01"
# A provider reads its store's row (base URL, language) before each fetch.
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quick_limits(settings):
    settings.SCRAPE_CONNECT_TIMEOUT_SECONDS = 1
    settings.SCRAPE_READ_TIMEOUT_SECONDS = 0.5
    settings.SCRAPE_TOTAL_TIMEOUT_SECONDS = 2
    settings.SCRAPE_MAX_BYTES = 1024 * 1024
    settings.SCRAPE_PROXY_URL = None


@pytest.fixture
def amazon() -> Provider:
    return get_provider("amazon.com")


# --- registry ----------------------------------------------------------------------------------


def test_amazon_is_registered_by_default(amazon):
    assert isinstance(amazon, AmazonProvider)
    assert isinstance(amazon, Provider)
    assert amazon.code == "amazon.com"
    assert amazon.display_name == "Amazon.com"
    assert amazon in providers()


def test_an_unknown_store_code_is_a_lookup_error():
    with pytest.raises(UnknownProvider, match=r"ebay\.com"):
        get_provider("ebay.com")
    assert issubclass(UnknownProvider, LookupError)


def test_another_provider_can_join_and_leave():
    class Other(AmazonProvider):
        code = "example.test"
        display_name = "Example"

    other = register(Other())
    try:
        assert get_provider("example.test") is other
        assert register(other) is other  # registering the same object again is harmless
        with pytest.raises(ValueError, match="already registered"):
            register(Other())
    finally:
        unregister("example.test")
    with pytest.raises(UnknownProvider):
        get_provider("example.test")


def test_amazon_normalises_input_and_shows_the_canonical_url(amazon):
    assert amazon.normalize("https://www.amazon.com/Some-Thing/dp/b0testpr01/ref=sr_1_1?th=1") == ASIN
    assert amazon.product_url(ASIN) == f"https://www.amazon.com/dp/{ASIN}"
    with pytest.raises(InvalidProductReference):
        amazon.normalize("https://www.amazon.de/dp/B0TESTPR01")


# --- scraping a product --------------------------------------------------------------------------


def test_a_product_page_is_a_success_with_the_price_that_was_set(amazon, fake_store):
    fake_store.set_product(ASIN, price="1249.99", list_price="1399.00", title="Espresso Machine")
    result = amazon.scrape(ASIN)
    assert result.status is ScrapeStatus.SUCCESS
    assert result.error_kind is ErrorKind.NONE
    assert result.price == Decimal("1249.99")
    assert result.list_price == Decimal("1399.00")
    assert result.currency == "USD"
    assert result.title == "Espresso Machine"
    assert result.asin == ASIN
    assert result.availability is Availability.IN_STOCK
    assert result.http_status == 200
    assert result.bytes_received > 0
    assert result.rule


def test_a_real_sized_page_is_parsed_too(amazon, fake_store, settings):
    settings.SCRAPE_MAX_BYTES = 8 * 1024 * 1024
    fake_store.configure(padding_kb=1500)
    fake_store.set_product(ASIN, price="19.99")
    result = amazon.scrape(ASIN)
    assert result.price == Decimal("19.99")
    assert result.bytes_received > 1500 * 1024


@pytest.mark.parametrize("availability", [Availability.OUT_OF_STOCK, Availability.UNAVAILABLE])
def test_an_item_that_cannot_be_bought_is_a_success_without_a_price(amazon, fake_store, availability):
    fake_store.set_product(ASIN, availability=availability.value)
    result = amazon.scrape(ASIN)
    assert result.status is ScrapeStatus.SUCCESS
    assert result.price is None
    assert result.availability is availability


def test_successive_scrapes_follow_the_price_script(amazon, fake_store):
    fake_store.set_product(ASIN, script=["20.00", "15.00"])
    assert [amazon.scrape(ASIN).price for _ in range(3)] == [Decimal("20.00"), Decimal("15.00"), Decimal("15.00")]


def test_the_page_is_fetched_from_the_configured_base_url_never_from_the_users_text(amazon, fake_store):
    result = amazon.scrape(f"https://www.amazon.com/Thing/dp/{ASIN}?tag=evil")
    assert result.status is ScrapeStatus.SUCCESS
    assert fake_store.counts() == {ASIN: 1}


def test_the_base_url_is_read_at_every_scrape(amazon, fake_store, settings):
    with FakeStore() as second:
        settings.AMAZON_BASE_URL = second.base_url
        amazon.scrape(ASIN)
    assert second.counts() == {ASIN: 1}
    assert fake_store.counts() == {}


def test_an_invalid_reference_is_a_programming_error_not_a_result(amazon, fake_store):
    with pytest.raises(InvalidProductReference):
        amazon.scrape("../../admin")
    assert fake_store.counts() == {}


# --- the fault matrix ----------------------------------------------------------------------------

FAULT_OUTCOMES = {
    "captcha": (ScrapeStatus.BLOCKED, ErrorKind.CAPTCHA),
    "soft_captcha": (ScrapeStatus.BLOCKED, ErrorKind.SOFT_CAPTCHA),
    "waf": (ScrapeStatus.BLOCKED, ErrorKind.WAF),
    "service_unavailable": (ScrapeStatus.BLOCKED, ErrorKind.SERVICE_UNAVAILABLE),
    "rate_limited": (ScrapeStatus.BLOCKED, ErrorKind.RATE_LIMITED),
    "not_found": (ScrapeStatus.FAILED, ErrorKind.NOT_FOUND),
    "server_error": (ScrapeStatus.FAILED, ErrorKind.HTTP_5XX),
    "slow": (ScrapeStatus.FAILED, ErrorKind.TIMEOUT),
    "drip": (ScrapeStatus.FAILED, ErrorKind.TIMEOUT),
    "oversized": (ScrapeStatus.FAILED, ErrorKind.OVERSIZED),
    "truncated": (ScrapeStatus.FAILED, ErrorKind.CONNECTION),
    "redirect_foreign": (ScrapeStatus.FAILED, ErrorKind.REDIRECT_REFUSED),
    "redirect_loop": (ScrapeStatus.FAILED, ErrorKind.REDIRECT_REFUSED),
    "redirect_same_host": (ScrapeStatus.SUCCESS, ErrorKind.NONE),
    "json": (ScrapeStatus.FAILED, ErrorKind.NOT_HTML),
    "image": (ScrapeStatus.FAILED, ErrorKind.NOT_HTML),
}


def test_the_fault_matrix_covers_every_fault_the_store_can_serve():
    assert set(FAULT_OUTCOMES) == set(FAULT_KINDS)


@pytest.mark.parametrize(("fault", "outcome"), FAULT_OUTCOMES.items(), ids=list(FAULT_OUTCOMES))
def test_each_fault_becomes_the_right_status_and_error_kind(amazon, fake_store, fault, outcome):
    fake_store.configure(slow_seconds=5, drip_interval_ms=100, oversized_bytes=4 * 1024 * 1024)
    fake_store.set_product(ASIN, price="42.00", fault=fault)
    result = amazon.scrape(ASIN)
    assert isinstance(result, ScrapeResult)
    assert (result.status, result.error_kind) == outcome, result.message
    assert result.message
    if result.status is not ScrapeStatus.SUCCESS:
        assert result.price is None  # a block or a broken page never yields a price
    else:
        assert result.price == Decimal("42.00")
        assert result.extra["final_url"].endswith("?redirected=1")


def test_a_connection_refused_is_a_failed_result(amazon, settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.AMAZON_BASE_URL = f"http://127.0.0.1:{port}"
    result = amazon.scrape(ASIN)
    assert (result.status, result.error_kind) == (ScrapeStatus.FAILED, ErrorKind.CONNECTION)
    assert result.asin == ASIN
    assert result.http_status is None


def test_under_a_random_fault_mix_the_provider_never_raises_or_prices_a_block(amazon, fake_store):
    fake_store.set_faults(rate=0.5, kinds=["captcha", "waf", "rate_limited", "not_found", "json"], seed=3)
    results = [amazon.scrape(f"B0TESTPR{index:02d}") for index in range(40)]
    statuses = {result.status for result in results}
    assert statuses == {ScrapeStatus.SUCCESS, ScrapeStatus.BLOCKED, ScrapeStatus.FAILED}
    for result in results:
        assert (result.price is not None) == (result.status is ScrapeStatus.SUCCESS)
