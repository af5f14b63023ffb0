"""Short links (a.co, amzn.to, amzn.eu, amzn.asia) resolved against a local redirect server.

``SHORT_LINK_BASE_URLS`` sends the requests for the shorteners' hosts to loopback servers the
tests start, while every hop is still checked against the real host names. A host the
resolver must refuse (evil.example) is also mapped to a counting server, so a test can prove it
was never asked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scraping.inputs import ProductReference
from scraping.shortlinks import MAX_HOPS, ShortLinkError, resolve_short_link
from tests.tracking_factories import make_product
from tracking.models import Product, Tracker

ASIN = "B0SHORTLK1"


@dataclass
class Route:
    status: int = 301
    location: str | None = None
    delay: float = 0.0
    body_bytes: int = 0


@dataclass
class RedirectServer:
    """A loopback server answering scripted redirects per path; it records what it was asked."""

    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    # The server standing in for a host the resolver must never ask (tests read its requests).
    foreign: RedirectServer | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> RedirectServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append(self.path)
                route = owner.routes.get(self.path.split("?", 1)[0], Route(status=404))
                if route.delay:
                    time.sleep(route.delay)
                self.send_response(route.status)
                if route.location is not None:
                    self.send_header("Location", route.location)
                self.send_header("Content-Length", str(route.body_bytes))
                self.end_headers()
                chunk = b"x" * 65536
                sent = 0
                try:
                    while sent < route.body_bytes:
                        part = chunk[: route.body_bytes - sent]
                        self.wfile.write(part)
                        sent += len(part)
                except OSError:
                    pass  # the client stopped reading: what the cap is for

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def shortener(settings, clear_cache) -> Iterator[RedirectServer]:
    """One server standing in for every short-link host, plus a counting server for evil.example."""
    server = RedirectServer().start()
    foreign = RedirectServer().start()
    settings.SHORT_LINK_BASE_URLS = {
        "a.co": server.base_url,
        "amzn.to": server.base_url,
        "amzn.eu": server.base_url,
        "amzn.asia": server.base_url,
        "www.amazon.com": server.base_url,
        "evil.example": foreign.base_url,
    }
    settings.SHORT_LINK_TIMEOUT_SECONDS = 5
    server.foreign = foreign
    yield server
    server.stop()
    foreign.stop()


pytestmark = pytest.mark.django_db


def test_a_short_link_resolves_to_the_product_it_redirects_to_without_fetching_the_product(shortener):
    shortener.routes["/d/abc"] = Route(location=f"https://www.amazon.de/dp/{ASIN}?ref_=cm_sw_r_cp")
    assert resolve_short_link("https://a.co/d/abc") == ProductReference(ASIN, "amazon.de")
    assert shortener.requests == ["/d/abc"]  # one round trip: the product page itself is not requested


@pytest.mark.parametrize(
    ("link", "path", "location", "store"),
    [
        ("https://amzn.to/3xYz", "/3xYz", f"https://www.amazon.co.uk/gp/product/{ASIN}", "amazon.co.uk"),
        ("https://amzn.eu/d/0Ab", "/d/0Ab", f"https://www.amazon.fr/Some-Thing/dp/{ASIN}/ref=x", "amazon.fr"),
        ("https://amzn.asia/d/0Ab", "/d/0Ab", f"https://www.amazon.co.jp/dp/{ASIN}", "amazon.co.jp"),
        ("https://a.co/d/rel", "/d/rel", f"http://amazon.com.au/dp/{ASIN}", "amazon.com.au"),
    ],
)
def test_each_shortener_leads_to_its_marketplace(shortener, link, path, location, store):
    shortener.routes[path] = Route(status=302, location=location)
    assert resolve_short_link(link) == ProductReference(ASIN, store)


def test_a_chain_through_another_shortener_and_an_amazon_interstitial_is_followed(shortener):
    shortener.routes["/d/one"] = Route(location="https://amzn.to/two")
    shortener.routes["/two"] = Route(location="https://www.amazon.com/ap/signin?openid.return_to=x")
    shortener.routes["/ap/signin"] = Route(status=303, location=f"/dp/{ASIN}")
    assert resolve_short_link("https://a.co/d/one") == ProductReference(ASIN, "amazon.com")
    assert shortener.requests == ["/d/one", "/two", "/ap/signin?openid.return_to=x"]


@pytest.mark.parametrize(
    "location",
    [
        f"https://evil.example/dp/{ASIN}",
        f"http://evil.example/{ASIN}",
        f"https://www.amazon.com@evil.example/dp/{ASIN}",
        f"https://www.amazon.com.evil.example/dp/{ASIN}",
        f"https://127.0.0.1/dp/{ASIN}",
        f"https://[::1]/dp/{ASIN}",
        f"https://www.amazon.com:8443/dp/{ASIN}",
        f"https://www.amazon.cn/dp/{ASIN}",
        "javascript:alert(1)",
        f"ftp://www.amazon.com/dp/{ASIN}",
    ],
)
def test_a_redirect_off_amazon_is_refused_before_it_is_requested(shortener, location):
    shortener.routes["/d/bad"] = Route(location=location)
    with pytest.raises(ShortLinkError):
        resolve_short_link("https://a.co/d/bad")
    assert shortener.requests == ["/d/bad"]
    assert shortener.foreign.requests == []


def test_a_redirect_to_an_amazon_page_that_is_not_a_product_and_goes_nowhere_is_refused(shortener):
    shortener.routes["/d/search"] = Route(location="https://www.amazon.com/s?k=coffee")
    shortener.routes["/s"] = Route(status=200)
    with pytest.raises(ShortLinkError, match="did not lead to a product"):
        resolve_short_link("https://a.co/d/search")


def test_a_redirect_loop_stops_after_five_hops(shortener):
    shortener.routes["/d/loop"] = Route(location="https://a.co/d/loop")
    with pytest.raises(ShortLinkError, match="more than 5"):
        resolve_short_link("https://a.co/d/loop")
    assert len(shortener.requests) == MAX_HOPS == 5


def test_a_slow_hop_ends_at_the_deadline(shortener, settings):
    settings.SHORT_LINK_TIMEOUT_SECONDS = 1
    shortener.routes["/d/slow"] = Route(location=f"https://www.amazon.com/dp/{ASIN}", delay=3)
    with pytest.raises(ShortLinkError, match="could not be followed"):
        resolve_short_link("https://a.co/d/slow")


def test_a_dead_link_or_an_answer_without_a_redirect_is_refused(shortener):
    with pytest.raises(ShortLinkError, match="HTTP 404"):
        resolve_short_link("https://a.co/d/missing")
    shortener.routes["/d/page"] = Route(status=200, body_bytes=100)
    with pytest.raises(ShortLinkError, match="HTTP 200"):
        resolve_short_link("https://a.co/d/page")


def test_a_huge_redirect_body_is_not_read(shortener):
    shortener.routes["/d/big"] = Route(location=f"https://www.amazon.com/dp/{ASIN}", body_bytes=50 * 1024 * 1024)
    assert resolve_short_link("https://a.co/d/big") == ProductReference(ASIN, "amazon.com")


def test_a_resolution_is_cached(shortener):
    shortener.routes["/d/once"] = Route(location=f"https://www.amazon.it/dp/{ASIN}")
    assert resolve_short_link("https://a.co/d/once") == ProductReference(ASIN, "amazon.it")
    assert resolve_short_link("https://a.co/d/once") == ProductReference(ASIN, "amazon.it")
    assert shortener.requests == ["/d/once"]


# --- through the API -------------------------------------------------------------------------------


def test_a_tracker_can_be_created_from_a_short_link(alice_client, shortener, provider):
    shortener.routes["/d/share"] = Route(location=f"https://www.amazon.de/-/en/dp/{ASIN}/ref=cm_sw_r")
    response = alice_client.post(
        "/api/trackers/", {"url": "https://a.co/d/share", "target_price": "20.00"}, format="json"
    )
    assert response.status_code == 201, response.json()
    product = response.json()["product"]
    assert (product["asin"], product["store"], product["url"]) == (
        ASIN,
        "amazon.de",
        f"https://www.amazon.de/dp/{ASIN}",
    )


def test_an_unresolvable_short_link_is_a_clear_400_and_stores_nothing(alice_client, shortener, provider):
    shortener.routes["/d/evil"] = Route(location=f"https://evil.example/dp/{ASIN}")
    response = alice_client.post(
        "/api/trackers/", {"url": "https://a.co/d/evil", "target_price": "20.00"}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "short_link_unresolved"
    assert "url" in body["errors"] and "paste the product page" in body["message"]
    assert (Tracker.objects.count(), Product.objects.count()) == (0, 0)
    assert shortener.foreign.requests == []


def test_a_scrape_never_resolves_a_link(store, provider, shortener):
    """Products are keyed by store and ASIN: the worker has nothing to resolve."""
    from tracking import services

    product = make_product(store, ASIN)
    provider.queue(ASIN, "12.00")
    token = services.product_claim(product_id=product.pk)
    services.product_scrape(product_id=product.pk, claim_token=token, trigger="manual")
    assert shortener.requests == []
    assert Product.objects.get(pk=product.pk).current_price == Decimal("12.00")
