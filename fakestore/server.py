"""A fake Amazon of our own, on loopback, for tests, demos and benchmarks: the HTTP server
and its JSON control API (state in :mod:`fakestore.control`, markup in :mod:`fakestore.pages`).

One server stands in for every marketplace (:mod:`fakestore.markets`): a request is for the
marketplace its path prefix names (``/amazon.de/dp/ASIN``, and likewise ``/amazon.de/_control/...``)
or, without one, its ``Host`` header (``www.amazon.de``), else amazon.com. Pages then speak the
marketplace's language and print its currency; products, counts and faults are per marketplace
(the same ASIN on amazon.com and amazon.de are two products), and a fault mix can be set for one
marketplace alone (``POST /amazon.de/_control/faults``), so one store can be blocked while the
others run. Point a store at it with ``STORE_BASE_URLS=amazon.de=http://127.0.0.1:<port>/amazon.de``.

It serves ``GET /dp/<ASIN>`` as product pages modelled on the 2024+ desktop layout (our own
markup, not copies of Amazon's): ``#productTitle``, ``#corePriceDisplay_desktop_feature_div`` with
``.priceToPay`` (empty ``.a-offscreen``, price in ``.a-price-whole`` + ``.a-price-fraction``, as on
current pages) and a struck-through ``.basisPrice`` list price, ``#availability``, the buy box with
``#add-to-cart-button``, and decoy prices further down (other sellers, related items) like the
real thing. Out-of-stock and unavailable variants show no price.

Everything is scriptable, from Python (:class:`FakeStore`) or over JSON on the same port:

``POST /_control/products/<ASIN>``
    ``{"price": "12.34", "list_price": "19.99", "title": "...", "availability": "in_stock" |
    "out_of_stock" | "unavailable", "script": ["20.00", "15.00", null], "advance": "request" |
    "time", "step_seconds": 60, "fault": "captcha", "fault_times": 2, "latency_ms": 500,
    "exists": false}``; ``GET`` the same path reads it back.
``POST /_control/faults``
    ``{"rate": 0.2, "kinds": ["captcha", "rate_limited"], "seed": 7}``: a global, seeded fault mix.
``POST /_control/config``
    ``{"latency_ms": 100, "padding_kb": 1024, "slow_seconds": 30, "drip_interval_ms": 200,
    "oversized_bytes": 33554432, "foreign_url": "http://evil.example"}``.
``GET /_control/counts``  ``{"total": N, "products": {"B0...": n}}``;  ``POST /_control/reset``.

Faults (:data:`FAULT_KINDS`): ``captcha``, ``soft_captcha``, ``waf`` (HTTP 202),
``service_unavailable`` (503 dogs page), ``rate_limited`` (429), ``not_found`` (404 dogs page),
``server_error`` (plain 500), ``slow`` (answers after ``slow_seconds``), ``drip`` (a few bytes per
``drip_interval_ms``), ``oversized`` (streams ``oversized_bytes``, chunked), ``truncated``
(declares the full length, sends half and hangs up), ``redirect_foreign`` (302 to ``foreign_url``),
``redirect_same_host`` (301 to ``/dp/ASIN?redirected=1``, served normally), ``redirect_loop``,
``json`` and ``image`` (non-HTML 200s).

Prices: a product without a price set gets a deterministic one derived from its ASIN. A
``script`` of prices advances per product page served (``advance="request"``, staying on the last
entry) or per ``step_seconds`` of wall-clock time (``advance="time"``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fakestore import control
from fakestore.control import (
    DEFAULT_FAULT_MIX,
    FAULT_KINDS,
    FakeProduct,
    apply_changes,
    default_price,
)
from fakestore.markets import DEFAULT_MARKET, market, market_of_request
from fakestore.pages import (
    FAKE_JPEG,
    HTML_TYPE,
    Plan,
    captcha_page,
    dogs_503_page,
    filler_block,
    not_found_page,
    product_page,
    rate_limited_page,
    soft_captcha_page,
    waf_page,
)

logger = logging.getLogger(__name__)

_DP_PATH = re.compile(r"/dp/([A-Za-z0-9]{10})/?")
_PRODUCT_PATH = re.compile(r"/_control/products/([A-Za-z0-9]{10})")
_STREAM_CHUNK = 64 * 1024
_DRIP_BYTES = 64
# Idle keep-alive connections are closed after this long, so handler threads do not pile up.
_IDLE_TIMEOUT_SECONDS = 60


class FakeStore:
    """A threaded HTTP server pretending to be amazon.com; use as a context manager.

    ``FakeStore(latency_ms=50).start().base_url`` -> ``"http://127.0.0.1:<port>"``. All state is
    guarded by one lock, so tests may change products while hundreds of requests are in flight.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency_ms: int = 0,
        padding_kb: int = 0,
        fault_rate: float = 0.0,
        fault_kinds: tuple[str, ...] | list[str] = DEFAULT_FAULT_MIX,
        seed: int = 0,
        slow_seconds: float = 30.0,
        drip_interval_ms: int = 200,
        oversized_bytes: int = 32 * 1024 * 1024,
        foreign_url: str = "http://evil.example",
    ) -> None:
        self.host = host
        self.port = port
        self._defaults: dict[str, int | float | str] = {
            "latency_ms": latency_ms,
            "padding_kb": padding_kb,
            "slow_seconds": slow_seconds,
            "drip_interval_ms": drip_interval_ms,
            "oversized_bytes": oversized_bytes,
            "foreign_url": foreign_url,
        }
        self._fault_defaults = (fault_rate, tuple(fault_kinds), seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._reset_state()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeStore:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, self.port), _Handler)
        server.store = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"fakestore:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut every open connection (sleeping handlers wake up and end)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_all_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeStore:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, asin: str, marketplace: str | None = None) -> str:
        """``{base_url}/dp/{asin}``, or ``{base_url}/amazon.de/dp/{asin}`` for a marketplace."""
        return f"{self.market_url(marketplace)}/dp/{asin}" if marketplace else f"{self.base_url}/dp/{asin}"

    def market_url(self, marketplace: str | None) -> str:
        """The base URL that serves ``marketplace`` (``{base_url}/amazon.de``), for STORE_BASE_URLS."""
        return f"{self.base_url}/{market(marketplace).code}"

    # --- control -------------------------------------------------------------------------------

    def _reset_state(self) -> None:
        with self._lock:
            # Keyed by (marketplace, ASIN): the same ASIN on two marketplaces is two products.
            self._products: dict[tuple[str, str], FakeProduct] = {}
            self._counts: dict[tuple[str, str], int] = {}
            self._config: dict[str, Any] = dict(self._defaults)
            # Fault mixes: None is every marketplace's, a code overrides it for that marketplace.
            self._faults: dict[str | None, tuple[float, tuple[str, ...], random.Random]] = {}
            rate, kinds, seed = self._fault_defaults
            self._set_faults_locked(rate, kinds, seed, None)

    def reset(self) -> None:
        """Forget products, counts and faults; back to the constructor's configuration."""
        self._reset_state()

    def _product_locked(self, asin: str, marketplace: str | None = None) -> FakeProduct:
        asin = asin.upper()
        key = (market(marketplace).code, asin)
        product = self._products.get(key)
        if product is None:
            product = FakeProduct(
                asin=asin, title=f"FakeBrand Widget {asin}, Stainless Steel, 2-Pack", price=default_price(asin)
            )
            self._products[key] = product
        return product

    def set_product(self, asin: str, marketplace: str | None = None, /, **changes: Any) -> dict[str, Any]:
        """Change what ``asin`` serves on ``marketplace`` (default amazon.com; keys as in the
        control API); returns its new state. Raises ValueError for an unknown key or a bad value.
        """
        with self._lock:
            product = self._product_locked(asin, marketplace)
            apply_changes(product, changes)
            return product.as_json()

    def product(self, asin: str, marketplace: str | None = None) -> dict[str, Any]:
        """The current state of ``asin`` on ``marketplace`` (created with defaults if never seen)."""
        with self._lock:
            return self._product_locked(asin, marketplace).as_json()

    def set_faults(
        self,
        rate: float = 0.0,
        kinds: list[str] | tuple[str, ...] | None = None,
        seed: int = 0,
        marketplace: str | None = None,
    ) -> None:
        """Serve a random fault from ``kinds`` to a ``rate`` fraction of requests (seeded); with
        ``marketplace``, to that marketplace's requests only (the others keep the global mix)."""
        code = market(marketplace).code if marketplace else None
        with self._lock:
            self._set_faults_locked(rate, tuple(kinds) if kinds else DEFAULT_FAULT_MIX, seed, code)

    def _set_faults_locked(self, rate: float, kinds: tuple[str, ...], seed: int, marketplace: str | None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if not kinds or any(kind not in FAULT_KINDS for kind in kinds):
            raise ValueError(f"kinds must be a non-empty list from {', '.join(FAULT_KINDS)}")
        rng = random.Random(seed)  # noqa: S311 - reproducible fault draws, not security
        self._faults[marketplace] = (rate, kinds, rng)

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change store-wide settings: latency_ms, padding_kb, slow_seconds, drip_interval_ms,
        oversized_bytes, foreign_url. Returns the configuration."""
        unknown = set(changes) - set(self._defaults)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        with self._lock:
            for key, value in changes.items():
                default = self._defaults[key]
                # Each setting keeps its default's type; numbers are never negative.
                self._config[key] = str(value) if isinstance(default, str) else max(0, type(default)(value))
            return dict(self._config)

    def counts(self, marketplace: str | None = None) -> dict[str, int]:
        """Requests received per ASIN on ``/dp/`` (faulted ones included): on ``marketplace``, or
        on all marketplaces together when None."""
        code = market(marketplace).code if marketplace else None
        totals: dict[str, int] = {}
        with self._lock:
            for (shop, asin), count in self._counts.items():
                if code is None or shop == code:
                    totals[asin] = totals.get(asin, 0) + count
        return totals

    def market_counts(self) -> dict[str, int]:
        """Requests received on ``/dp/`` per marketplace."""
        totals: dict[str, int] = {}
        with self._lock:
            for (shop, _), count in self._counts.items():
                totals[shop] = totals.get(shop, 0) + count
        return totals

    # --- serving -------------------------------------------------------------------------------

    def _plan(self, asin: str, *, bypass_faults: bool, hop: int, marketplace: str = DEFAULT_MARKET) -> Plan:
        with self._lock:
            product = self._product_locked(asin, marketplace)
            key = (marketplace, product.asin)
            self._counts[key] = self._counts.get(key, 0) + 1
            fault = None
            if not bypass_faults:
                rate, kinds, rng = self._faults.get(marketplace) or self._faults[None]
                if product.fault is not None:
                    fault = product.fault
                    if product.fault_times is not None:
                        product.fault_times -= 1
                        if product.fault_times <= 0:
                            product.fault, product.fault_times = None, None
                elif rate and rng.random() < rate:
                    fault = rng.choice(kinds)
            price = product.current_price(control.clock())
            if fault is None and product.exists:
                product.served += 1
            return Plan(
                asin=product.asin,
                fault=fault,
                exists=product.exists,
                title=product.title,
                price=price,
                list_price=product.list_price,
                availability=product.availability,
                latency_seconds=(self._config["latency_ms"] + product.latency_ms) / 1000,
                padding_kb=self._config["padding_kb"],
                hop=hop,
                market=marketplace,
            )

    def _setting(self, key: str) -> Any:
        with self._lock:
            return self._config[key]

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless the store stops first; returns False when stopping."""
        return not self._stopping.wait(seconds) if seconds > 0 else not self._stopping.is_set()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Hundreds of clients connect at once in load tests; the default backlog of 5 drops them.
    request_queue_size = 1024
    store: FakeStore

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def track(self, conn: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_all_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    _prefix = ""  # the request's "/amazon.de" path prefix, kept in the redirects it serves
    timeout = _IDLE_TIMEOUT_SECONDS
    server: _Server

    def version_string(self) -> str:
        return "Server"  # what amazon.com sends

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; with Nagle's algorithm on, the second (small)
        # write waits for the client's delayed ACK, which added ~40 ms to every request on a
        # reused connection (issue 19). Amazon's servers answer without that stall.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.track(self.connection, open_=False)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fakestore %s " + format, self.address_string(), *args)

    @property
    def store(self) -> FakeStore:
        return self.server.store

    # --- routing -------------------------------------------------------------------------------

    def _route(self) -> tuple[str, str]:
        """The marketplace this request is for (path prefix, else Host) and the path without prefix."""
        parts = urlsplit(self.path)
        shop, path, self._prefix = market_of_request(self.headers.get("Host"), parts.path)
        return shop.code, path

    def do_GET(self) -> None:
        marketplace, path = self._route()
        query = parse_qs(urlsplit(self.path).query)
        if match := _DP_PATH.fullmatch(path):
            hop = query.get("hop", ["0"])[0]
            self._serve_product(
                match.group(1),
                bypass_faults="redirected" in query,
                hop=int(hop) if hop.isdigit() else 0,
                marketplace=marketplace,
            )
        elif path == "/_control/counts":
            counts = self.store.counts()
            self._send_json(
                200, {"total": sum(counts.values()), "products": counts, "marketplaces": self.store.market_counts()}
            )
        elif match := _PRODUCT_PATH.fullmatch(path):
            self._send_json(200, self.store.product(match.group(1), marketplace))
        else:
            self._send(404, not_found_page(), HTML_TYPE)

    def do_POST(self) -> None:
        try:
            marketplace, path = self._route()
            # A prefix (or a Host) naming a marketplace scopes a fault mix to it; plain is global.
            scoped = bool(self._prefix) or marketplace != DEFAULT_MARKET
            payload = self._read_json()
            if match := _PRODUCT_PATH.fullmatch(path):
                self._send_json(200, self.store.set_product(match.group(1), marketplace, **payload))
            elif path == "/_control/faults":
                self.store.set_faults(
                    float(payload.get("rate", 0.0)),
                    payload.get("kinds"),
                    int(payload.get("seed", 0)),
                    marketplace=marketplace if scoped else None,
                )
                self._send_json(200, {"ok": True})
            elif path == "/_control/config":
                self._send_json(200, self.store.configure(**payload))
            elif path == "/_control/reset":
                self.store.reset()
                self._send_json(200, {"ok": True})
            else:
                self._send_json(404, {"error": f"no control endpoint {path}"})
        except (ValueError, TypeError) as exc:
            self._send_json(400, {"error": str(exc)})

    def _read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 1024 * 1024:
            raise ValueError("control payload too large")
        raw = self.rfile.read(length) if length else b"{}"
        data = json.loads(raw or b"{}")
        if not isinstance(data, dict):
            raise ValueError("the payload must be a JSON object")
        return data

    # --- responses -----------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str | None, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(OSError):  # the client may have given up (timeouts in tests)
            self.wfile.write(body)

    def _send_json(self, status: int, data: object) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _serve_product(self, asin: str, *, bypass_faults: bool, hop: int, marketplace: str) -> None:
        plan = self.store._plan(asin, bypass_faults=bypass_faults, hop=hop, marketplace=marketplace)
        if not self.store._sleep(plan.latency_seconds):
            self.close_connection = True
            return
        if plan.fault is not None:
            self._serve_fault(plan)
        elif not plan.exists:
            self._send(404, not_found_page(), HTML_TYPE)
        else:
            self._send(200, product_page(plan), HTML_TYPE)

    def _serve_fault(self, plan: Plan) -> None:
        fault, asin = plan.fault, plan.asin
        if fault == "captcha":
            self._send(200, captcha_page(asin, plan.market), HTML_TYPE)
        elif fault == "soft_captcha":
            self._send(200, soft_captcha_page(asin, plan.market), HTML_TYPE)
        elif fault == "waf":
            self._send(202, waf_page(), "text/html; charset=UTF-8", {"x-amzn-waf-action": "challenge"})
        elif fault == "service_unavailable":
            self._send(503, dogs_503_page(plan.market), HTML_TYPE)
        elif fault == "rate_limited":
            self._send(429, rate_limited_page(), HTML_TYPE, {"Retry-After": "60"})
        elif fault == "not_found":
            self._send(404, not_found_page(), HTML_TYPE)
        elif fault == "server_error":
            self._send(500, b"<html><body><h1>500 Internal Server Error</h1></body></html>", HTML_TYPE)
        elif fault == "slow":
            if self.store._sleep(float(self.store._setting("slow_seconds"))):
                self._send(200, product_page(plan), HTML_TYPE)
            self.close_connection = True
        elif fault == "drip":
            self._drip(product_page(plan))
        elif fault == "oversized":
            self._stream_oversized(plan)
        elif fault == "truncated":
            self._send_truncated(product_page(plan))
        elif fault == "redirect_foreign":
            target = f"{str(self.store._setting('foreign_url')).rstrip('/')}/dp/{asin}"
            self._send(302, b"", HTML_TYPE, {"Location": target})
        elif fault == "redirect_same_host":
            self._send(301, b"", HTML_TYPE, {"Location": f"{self._prefix}/dp/{asin}?redirected=1"})
        elif fault == "redirect_loop":
            self._send(302, b"", HTML_TYPE, {"Location": f"{self._prefix}/dp/{asin}?hop={plan.hop + 1}"})
        elif fault == "json":
            self._send(200, json.dumps({"asin": asin, "message": "not a page"}).encode(), "application/json")
        elif fault == "image":
            self._send(200, FAKE_JPEG, "image/jpeg")

    def _drip(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", HTML_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        interval = int(self.store._setting("drip_interval_ms")) / 1000
        self.close_connection = True
        try:
            for start in range(0, len(body), _DRIP_BYTES):
                self.wfile.write(body[start : start + _DRIP_BYTES])
                if not self.store._sleep(interval):
                    return
        except OSError:
            return

    def _stream_oversized(self, plan: Plan) -> None:
        total = int(self.store._setting("oversized_bytes"))
        self.send_response(200)
        self.send_header("Content-Type", HTML_TYPE)
        self.send_header("Transfer-Encoding", "chunked")  # no length to check up front
        self.end_headers()
        self.close_connection = True
        start = product_page(plan)[:4096]
        filler = filler_block(_STREAM_CHUNK)
        sent = 0
        try:
            for chunk in _chunks(start, filler, total):
                if self.store._stopping.is_set():
                    return
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client stopped reading at its cap: expected
            logger.debug("fakestore: client left after %d oversized bytes", sent)

    def _send_truncated(self, body: bytes) -> None:
        # Cut before the price block, so nothing that looks like a price arrives.
        cut = body.find(b'id="corePriceDisplay_desktop_feature_div"')
        cut = cut if cut > 0 else len(body) // 2
        self.send_response(200)
        self.send_header("Content-Type", HTML_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body[:cut])
        self.close_connection = True


def _chunks(start: bytes, filler: bytes, total: int):
    yield start
    sent = len(start)
    while sent < total:
        chunk = filler[: min(len(filler), total - sent)]
        yield chunk
        sent += len(chunk)
