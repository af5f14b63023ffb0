"""The fake amazon.com behaves as scripted: prices, stock, faults, counts, and load."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
import requests

import fakestore.control
from fakestore.server import FAULT_KINDS, FakeStore, default_price

ASIN = "B0TESTFS01"
ROOT = Path(__file__).resolve().parent.parent


def shown_price(page: bytes) -> Decimal | None:
    """The buy-box price as a shopper reads it (whole + fraction of .priceToPay)."""
    match = re.search(
        rb'priceToPay.*?a-price-whole">([\d,]+)<span class="a-price-decimal">.</span></span>'
        rb'<span class="a-price-fraction">(\d\d)<',
        page,
    )
    return Decimal(match.group(1).decode().replace(",", "") + "." + match.group(2).decode()) if match else None


def get(store: FakeStore, asin: str = ASIN, **kwargs) -> requests.Response:
    return requests.get(store.url(asin), timeout=10, allow_redirects=False, **kwargs)


def control(store: FakeStore, path: str, payload: object | None = None) -> requests.Response:
    if payload is None:
        return requests.get(f"{store.base_url}/_control/{path}", timeout=10)
    return requests.post(f"{store.base_url}/_control/{path}", data=json.dumps(payload), timeout=10)


# --- pages -----------------------------------------------------------------------------------


def test_a_new_product_gets_a_stable_price_from_its_asin(fake_store):
    page = get(fake_store)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html;charset=UTF-8"
    assert shown_price(page.content) == default_price(ASIN)
    assert default_price(ASIN) == default_price(ASIN.lower())
    assert Decimal("4.99") <= default_price(ASIN) <= Decimal("499.99")


def test_a_product_page_has_the_2024_desktop_landmarks(fake_store):
    fake_store.set_product(ASIN, price="1299.99", list_price="1499.00", title="Poker Chips & Case")
    page = get(fake_store).content
    for landmark in (
        b'id="productTitle"',
        b'id="corePriceDisplay_desktop_feature_div"',
        b"priceToPay",
        b'class="a-price a-text-price"',
        b"List Price:",
        b'id="availability"',
        b'id="add-to-cart-button"',
        b'id="ASIN" name="ASIN" value="B0TESTFS01"',
    ):
        assert landmark in page
    assert b"Poker Chips &amp; Case" in page
    assert shown_price(page) == Decimal("1299.99")
    assert b'a-price-whole">1,299<' in page


@pytest.mark.parametrize(
    ("availability", "text"),
    [("out_of_stock", b"Temporarily out of stock."), ("unavailable", b"Currently unavailable.")],
)
def test_an_item_that_cannot_be_bought_shows_no_price_and_no_cart_button(fake_store, availability, text):
    fake_store.set_product(ASIN, availability=availability)
    page = get(fake_store).content
    assert text in page
    assert shown_price(page) is None
    assert b"add-to-cart-button" not in page


def test_padding_inflates_pages_to_real_sizes(fake_store):
    fake_store.configure(padding_kb=1024)
    page = get(fake_store).content
    assert len(page) > 1024 * 1024
    assert shown_price(page) == default_price(ASIN)


def test_an_unknown_path_or_a_missing_product_gets_the_404_dogs_page(fake_store):
    assert requests.get(f"{fake_store.base_url}/gp/bestsellers", timeout=10).status_code == 404
    fake_store.set_product(ASIN, exists=False)
    missing = get(fake_store)
    assert missing.status_code == 404
    assert b"dogsofamazon" in missing.content


# --- prices over time ------------------------------------------------------------------------


def test_a_price_script_advances_with_each_page_and_stays_on_the_last(fake_store):
    fake_store.set_product(ASIN, script=["20.00", "15.00", None])
    prices = [shown_price(get(fake_store).content) for _ in range(4)]
    assert prices == [Decimal("20.00"), Decimal("15.00"), None, None]


def test_faulted_requests_do_not_advance_the_price_script(fake_store):
    fake_store.set_product(ASIN, script=["20.00", "15.00"], fault="captcha", fault_times=1)
    assert b"validateCaptcha" in get(fake_store).content
    assert shown_price(get(fake_store).content) == Decimal("20.00")


def test_a_time_driven_script_advances_per_step(fake_store, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(fakestore.control, "clock", lambda: now[0])
    fake_store.set_product(ASIN, script=["30.00", "25.00", "20.00"], advance="time", step_seconds=60)
    first = shown_price(get(fake_store).content)
    second = shown_price(get(fake_store).content)
    now[0] += 61
    later = shown_price(get(fake_store).content)
    now[0] += 3600
    last = shown_price(get(fake_store).content)
    assert (first, second, later, last) == (Decimal("30.00"), Decimal("30.00"), Decimal("25.00"), Decimal("20.00"))


# --- control API -----------------------------------------------------------------------------


def test_the_control_api_sets_and_reads_a_product(fake_store):
    response = control(fake_store, f"products/{ASIN}", {"price": "12.34", "availability": "in_stock"})
    assert response.status_code == 200
    assert response.json()["price"] == "12.34"
    assert control(fake_store, f"products/{ASIN}").json()["current_price"] == "12.34"
    assert shown_price(get(fake_store).content) == Decimal("12.34")


@pytest.mark.parametrize(
    "payload",
    [{"price": "twelve"}, {"availability": "maybe"}, {"fault": "meteor"}, {"colour": "red"}, {"script": "1.00"}],
)
def test_the_control_api_refuses_bad_values_with_a_message(fake_store, payload):
    response = control(fake_store, f"products/{ASIN}", payload)
    assert response.status_code == 400
    assert response.json()["error"]


def test_counts_are_kept_per_asin_and_reset_clears_everything(fake_store):
    fake_store.set_product(ASIN, price="1.00")
    for _ in range(3):
        get(fake_store)
    get(fake_store, "B0TESTFS02")
    assert fake_store.counts() == {ASIN: 3, "B0TESTFS02": 1}
    assert control(fake_store, "counts").json() == {
        "total": 4,
        "products": {ASIN: 3, "B0TESTFS02": 1},
        "marketplaces": {"amazon.com": 4},
    }

    assert control(fake_store, "reset", {}).status_code == 200
    assert fake_store.counts() == {}
    assert shown_price(get(fake_store).content) == default_price(ASIN)


def test_a_product_fault_can_be_limited_to_a_number_of_requests(fake_store):
    fake_store.set_product(ASIN, fault="service_unavailable", fault_times=2)
    assert [get(fake_store).status_code for _ in range(3)] == [503, 503, 200]


def test_a_global_fault_mix_is_reproducible_with_a_seed(fake_store):
    def outcome() -> str:
        page = get(fake_store)
        return "captcha" if b"validateCaptcha" in page.content else str(page.status_code)

    def run() -> list[str]:
        fake_store.reset()
        control(fake_store, "faults", {"rate": 0.5, "kinds": ["captcha", "rate_limited"], "seed": 7})
        return [outcome() for _ in range(30)]

    first, second = run(), run()
    assert first == second
    assert set(first) == {"200", "429", "captcha"}


def test_every_fault_kind_is_served(fake_store):
    fake_store.configure(slow_seconds=0, oversized_bytes=256 * 1024, drip_interval_ms=0)
    expected_status = {
        "captcha": 200,
        "soft_captcha": 200,
        "waf": 202,
        "service_unavailable": 503,
        "rate_limited": 429,
        "not_found": 404,
        "server_error": 500,
        "slow": 200,
        "drip": 200,
        "oversized": 200,
        "redirect_foreign": 302,
        "redirect_same_host": 301,
        "redirect_loop": 302,
        "json": 200,
        "image": 200,
    }
    assert set(expected_status) | {"truncated"} == set(FAULT_KINDS)
    for fault, status in expected_status.items():
        fake_store.set_product(ASIN, fault=fault)
        assert get(fake_store).status_code == status, fault
    fake_store.set_product(ASIN, fault="truncated")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(fake_store)


# --- load and lifecycle ------------------------------------------------------------------------


def test_three_hundred_concurrent_requests_all_succeed(fake_store):
    fake_store.configure(latency_ms=50)  # keeps every connection open at the same time
    asins = [f"B0LOAD{index:04d}" for index in range(300)]
    with ThreadPoolExecutor(max_workers=300) as pool:
        statuses = list(pool.map(lambda asin: requests.get(fake_store.url(asin), timeout=30).status_code, asins))
    assert statuses == [200] * 300
    assert sum(fake_store.counts().values()) == 300


def test_a_stopped_store_refuses_connections():
    with FakeStore() as store:
        url = store.url(ASIN)
        assert requests.get(url, timeout=10).status_code == 200
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, timeout=2)


def test_stopping_does_not_wait_for_a_slow_response():
    store = FakeStore(slow_seconds=600).start()
    store.set_product(ASIN, fault="slow")
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(requests.get, store.url(ASIN), timeout=30)
        while not store.counts():
            pass
        store.stop()
        with pytest.raises(requests.exceptions.ConnectionError):
            pending.result()


def test_the_management_command_serves_until_interrupted():
    process = subprocess.Popen(
        [sys.executable, "manage.py", "fakestore", "--port", "0", "--latency-ms", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        first_line = process.stdout.readline()
        base_url = re.search(r"http://127\.0\.0\.1:\d+", first_line).group(0)
        assert requests.get(f"{base_url}/dp/{ASIN}", timeout=10).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "stopped" in output


def test_responses_are_not_held_back_by_nagle_on_a_reused_connection():
    """Headers and body are two writes: without TCP_NODELAY the second waited for the client's
    delayed ACK (~40 ms a request on a kept-alive connection), a latency Amazon does not have."""
    import socket

    with FakeStore() as store, requests.Session() as session:
        assert session.get(f"{store.base_url}/dp/{ASIN}", timeout=10).status_code == 200
        connections = list(store._server._connections)
        assert connections
        assert all(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for conn in connections)
