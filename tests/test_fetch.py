"""The one outbound HTTP module: bounded time and size, careful redirects, no leaked secrets.

Every server here is on loopback: the fake store, or a tiny server written for one behaviour.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scraping.fetch import BROWSER_HEADERS, FetchError, _redirect_allowed, fetch
from scraping.results import ErrorKind

ASIN = "B0TESTFE01"


@pytest.fixture(autouse=True)
def quick_limits(settings):
    settings.SCRAPE_CONNECT_TIMEOUT_SECONDS = 1
    settings.SCRAPE_READ_TIMEOUT_SECONDS = 1
    settings.SCRAPE_MAX_BYTES = 8 * 1024 * 1024
    settings.SCRAPE_PROXY_URL = None
    if hasattr(settings, "SCRAPE_TOTAL_TIMEOUT_SECONDS"):
        del settings.SCRAPE_TOTAL_TIMEOUT_SECONDS


class Loopback:
    """A one-route HTTP server: ``respond(handler)`` writes the response; requests are recorded."""

    def __init__(self, respond: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.requests: list[dict[str, str]] = []
        loopback = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                loopback.requests.append({"path": self.path, **dict(self.headers)})
                respond(self)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def loopback(respond: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[Loopback]:
    server = Loopback(respond)
    try:
        yield server
    finally:
        server.close()


def reply(status: int, body: bytes = b"<html>ok</html>", **headers: str) -> Callable[[BaseHTTPRequestHandler], None]:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", headers.pop("content_type", "text/html"))
        handler.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.write(body)

    return respond


def fetch_error(url: str, **kwargs) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetch(url, **kwargs)
    return caught.value


# --- what we send ----------------------------------------------------------------------------


def test_it_sends_one_consistent_desktop_browser_identity():
    with loopback(reply(200)) as server:
        fetch(server.url + "/dp/" + ASIN)
        fetch(server.url + "/dp/" + ASIN)
    first, second = server.requests
    for name in ("User-Agent", "Accept", "Accept-Language", "Accept-Encoding"):
        assert first[name] == second[name] == BROWSER_HEADERS[name]
    assert "Firefox/" in first["User-Agent"]
    assert first["Accept-Language"].startswith("en-US")
    # Only encodings we can decode are advertised.
    assert set(first["Accept-Encoding"].replace(" ", "").split(",")) <= {"gzip", "deflate", "br", "zstd"}


def test_it_returns_the_body_status_and_content_type_of_a_page(fake_store):
    fake_store.set_product(ASIN, price="12.34")
    response = fetch(fake_store.url(ASIN))
    assert response.status == 200
    assert response.content_type == "text/html;charset=UTF-8"
    assert b'id="productTitle"' in response.body
    assert response.final_url == fake_store.url(ASIN)
    assert not response.truncated


def test_it_returns_error_statuses_instead_of_raising(fake_store):
    fake_store.set_product(ASIN, fault="not_found")
    assert fetch(fake_store.url(ASIN)).status == 404


def test_it_decompresses_gzip_bodies():
    page = b"<html>" + b"price " * 1000 + b"</html>"
    with loopback(reply(200, gzip.compress(page), Content_Encoding="gzip")) as server:
        response = fetch(server.url + "/dp/" + ASIN)
    assert response.body == page


# --- redirects -------------------------------------------------------------------------------


def test_a_redirect_to_a_foreign_host_is_refused_and_never_followed(fake_store):
    with loopback(reply(200)) as foreign:
        fake_store.configure(foreign_url=foreign.url.replace("127.0.0.1", "localhost"))
        fake_store.set_product(ASIN, fault="redirect_foreign")
        error = fetch_error(fake_store.url(ASIN))
    assert error.kind is ErrorKind.REDIRECT_REFUSED
    assert error.http_status == 302
    assert "localhost" in error.message
    assert foreign.requests == []


def test_a_redirect_to_another_port_of_the_same_host_is_refused(fake_store):
    with loopback(reply(200)) as other_port:
        fake_store.configure(foreign_url=other_port.url)
        fake_store.set_product(ASIN, fault="redirect_foreign")
        error = fetch_error(fake_store.url(ASIN))
    assert error.kind is ErrorKind.REDIRECT_REFUSED
    assert other_port.requests == []


def test_a_redirect_within_the_same_origin_is_followed(fake_store):
    fake_store.set_product(ASIN, fault="redirect_same_host", price="9.99")
    response = fetch(fake_store.url(ASIN))
    assert response.status == 200
    assert response.final_url == f"{fake_store.url(ASIN)}?redirected=1"
    assert b"9<span" in response.body
    assert fake_store.counts()[ASIN] == 2


def test_it_gives_up_after_five_redirects(fake_store):
    fake_store.set_product(ASIN, fault="redirect_loop")
    error = fetch_error(fake_store.url(ASIN))
    assert error.kind is ErrorKind.REDIRECT_REFUSED
    assert "more than 5 redirects" in error.message
    assert fake_store.counts()[ASIN] == 6  # the first request and five hops, not one more


def test_a_malformed_redirect_location_is_refused():
    with loopback(reply(302, b"", Location="http://[::1/dp/B0TESTFE01")) as server:
        error = fetch_error(server.url + "/dp/" + ASIN)
    assert error.kind is ErrorKind.REDIRECT_REFUSED


def test_the_body_of_a_refused_redirect_is_never_read():
    def endless_redirect(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", "http://evil.example/")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = b"x" * 65536
        try:
            while True:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            return

    with loopback(endless_redirect) as server:
        error = fetch_error(server.url + "/dp/" + ASIN)
    # Not a timeout or an oversized body: refused as soon as the headers arrived.
    assert error.kind is ErrorKind.REDIRECT_REFUSED


ORIGIN = ("http", "127.0.0.1", 8001)
AMAZON = frozenset({"www.amazon.com", "amazon.com"})


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("http://127.0.0.1:8001/dp/B0TESTFE01?th=1", True),
        ("https://www.amazon.com/dp/B0TESTFE01", True),
        ("https://amazon.com:443/dp/B0TESTFE01", True),
        ("http://www.amazon.com/dp/B0TESTFE01", False),  # downgrade to plain http
        ("https://www.amazon.com:8443/dp/B0TESTFE01", False),
        ("https://smile.amazon.com/dp/B0TESTFE01", False),  # not in this caller's list
        ("http://127.0.0.1:8002/dp/B0TESTFE01", False),
        ("http://localhost:8001/dp/B0TESTFE01", False),
        ("https://127.0.0.1:8001/dp/B0TESTFE01", False),
        ("https://www.amazon.com@evil.example/", False),
        ("https://user@www.amazon.com/dp/B0TESTFE01", False),
        ("https://www.amazon.com.evil.example/", False),
        ("ftp://www.amazon.com/", False),
        ("file:///etc/passwd", False),
        ("http://169.254.169.254/latest/meta-data/", False),
        ("http://127.0.0.1:notaport/", False),
    ],
)
def test_redirects_may_only_go_to_the_origin_or_allowed_https_hosts(target, allowed):
    assert _redirect_allowed(target, ORIGIN, AMAZON) is allowed


# --- size ------------------------------------------------------------------------------------


def test_a_body_over_the_cap_is_cut_off_while_streaming(fake_store, settings):
    settings.SCRAPE_MAX_BYTES = 256 * 1024
    fake_store.configure(oversized_bytes=16 * 1024 * 1024)  # chunked: no length to check up front
    fake_store.set_product(ASIN, fault="oversized")
    error = fetch_error(fake_store.url(ASIN))
    assert error.kind is ErrorKind.OVERSIZED
    assert "262144" in error.message


def test_a_declared_length_over_the_cap_is_refused_before_reading(fake_store, settings):
    settings.SCRAPE_MAX_BYTES = 256 * 1024
    fake_store.configure(padding_kb=512)
    assert fetch_error(fake_store.url(ASIN)).kind is ErrorKind.OVERSIZED


def test_the_cap_counts_decompressed_bytes_so_a_gzip_bomb_is_refused(settings):
    settings.SCRAPE_MAX_BYTES = 256 * 1024
    bomb = gzip.compress(b"\0" * (20 * 1024 * 1024))
    with loopback(reply(200, bomb, Content_Encoding="gzip")) as server:
        error = fetch_error(server.url + "/dp/" + ASIN)
    assert len(bomb) < 256 * 1024
    assert error.kind is ErrorKind.OVERSIZED


def test_a_body_cut_short_is_returned_marked_truncated(fake_store):
    fake_store.set_product(ASIN, fault="truncated")
    response = fetch(fake_store.url(ASIN))
    assert response.truncated
    assert b"corePriceDisplay_desktop_feature_div" not in response.body


# --- time ------------------------------------------------------------------------------------


def test_a_server_that_does_not_answer_times_out(fake_store, settings):
    settings.SCRAPE_READ_TIMEOUT_SECONDS = 0.3
    fake_store.configure(slow_seconds=10)
    fake_store.set_product(ASIN, fault="slow")
    error = fetch_error(fake_store.url(ASIN))
    assert error.kind is ErrorKind.TIMEOUT
    assert "read timeout" in error.message


def test_a_slow_drip_body_is_cut_at_the_total_deadline(fake_store, settings):
    # Each read gets bytes well within the read timeout; only the total deadline can stop it.
    settings.SCRAPE_READ_TIMEOUT_SECONDS = 5
    settings.SCRAPE_TOTAL_TIMEOUT_SECONDS = 0.5
    fake_store.configure(drip_interval_ms=20)
    fake_store.set_product(ASIN, fault="drip")
    error = fetch_error(fake_store.url(ASIN))
    assert error.kind is ErrorKind.TIMEOUT
    assert "total deadline" in error.message


def test_slowly_dripped_headers_are_cut_at_the_total_deadline(settings):
    settings.SCRAPE_READ_TIMEOUT_SECONDS = 5
    settings.SCRAPE_TOTAL_TIMEOUT_SECONDS = 0.5
    stop = threading.Event()

    def drip_headers(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        while not stop.is_set():
            try:
                handler.wfile.write(b"X")
            except OSError:
                return
            stop.wait(0.02)

    with loopback(drip_headers) as server:
        try:
            error = fetch_error(server.url + "/dp/" + ASIN)
        finally:
            stop.set()
    assert error.kind is ErrorKind.TIMEOUT


def test_the_deadline_does_not_cut_later_requests_on_a_reused_connection(fake_store, settings):
    settings.SCRAPE_TOTAL_TIMEOUT_SECONDS = 0.3
    for _ in range(3):
        assert fetch(fake_store.url(ASIN)).status == 200
    time.sleep(0.4)  # past every earlier deadline: a stale watchdog would cut the pooled socket
    assert fetch(fake_store.url(ASIN)).status == 200


# --- connections -----------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_refused_connection_is_a_connection_error():
    error = fetch_error(f"http://127.0.0.1:{_closed_port()}/dp/{ASIN}")
    assert error.kind is ErrorKind.CONNECTION
    assert "refused" in error.message.lower()


def test_proxy_credentials_never_appear_in_error_messages(settings):
    settings.SCRAPE_PROXY_URL = f"http://scraper:s3cr%21t-pass@127.0.0.1:{_closed_port()}"
    error = fetch_error(f"http://127.0.0.1:{_closed_port()}/dp/{ASIN}")
    assert error.kind is ErrorKind.CONNECTION
    assert "s3cr" not in error.message
    assert "scraper" not in error.message


def test_requests_go_through_the_configured_proxy(settings):
    with loopback(reply(200, b"<html>via proxy</html>")) as proxy:
        settings.SCRAPE_PROXY_URL = proxy.url
        response = fetch(f"http://www.amazon.com/dp/{ASIN}")
    assert response.body == b"<html>via proxy</html>"
    # A plain-http request through a proxy carries the absolute URL.
    assert proxy.requests[0]["path"] == f"http://www.amazon.com/dp/{ASIN}"


def test_it_works_from_many_threads_at_once(fake_store):
    results: list[int] = []

    def worker() -> None:
        for _ in range(5):
            results.append(fetch(fake_store.url(ASIN)).status)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 40
