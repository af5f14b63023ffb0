"""A fake amazon.com of our own, on loopback, for tests, demos and benchmarks.

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
import hashlib
import html
import json
import logging
import random
import re
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger(__name__)

FAULT_KINDS = (
    "captcha",
    "soft_captcha",
    "waf",
    "service_unavailable",
    "rate_limited",
    "not_found",
    "server_error",
    "slow",
    "drip",
    "oversized",
    "truncated",
    "redirect_foreign",
    "redirect_same_host",
    "redirect_loop",
    "json",
    "image",
)
# What a global fault mix draws from when no kinds are given: the blocks Amazon really serves.
DEFAULT_FAULT_MIX = ("captcha", "soft_captcha", "service_unavailable", "rate_limited")
AVAILABILITIES = ("in_stock", "out_of_stock", "unavailable")
ADVANCE_MODES = ("request", "time")

HTML_TYPE = "text/html;charset=UTF-8"  # as Amazon writes it
_DP_PATH = re.compile(r"/dp/([A-Za-z0-9]{10})/?")
_PRODUCT_PATH = re.compile(r"/_control/products/([A-Za-z0-9]{10})")
_STREAM_CHUNK = 64 * 1024
_DRIP_BYTES = 64
# Idle keep-alive connections are closed after this long, so handler threads do not pile up.
_IDLE_TIMEOUT_SECONDS = 60


def _clock() -> float:
    """Monotonic seconds; tests replace it to step time-driven price scripts."""
    return time.monotonic()


def default_price(asin: str) -> Decimal:
    """A stable price for ``asin`` between 4.99 and 499.99, so a fresh store needs no setup."""
    digest = int.from_bytes(hashlib.sha256(asin.upper().encode()).digest()[:4], "big")
    return Decimal(499 + digest % 49_501) / 100


def _money(value: object, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{name} must be a decimal string such as '12.34', not {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{name} must be a non-negative amount, not {value!r}")
    return amount.quantize(Decimal("0.01"))


@dataclass
class FakeProduct:
    """What the store serves for one ASIN."""

    asin: str
    title: str
    price: Decimal | None
    list_price: Decimal | None = None
    availability: str = "in_stock"
    script: list[Decimal | None] = field(default_factory=list)
    advance: str = "request"
    step_seconds: float = 60.0
    fault: str | None = None
    fault_times: int | None = None  # faulted responses left; None = until cleared
    latency_ms: int = 0
    exists: bool = True
    # Script progress.
    served: int = 0
    script_started: float = field(default_factory=lambda: _clock())

    def current_price(self, now: float) -> Decimal | None:
        if not self.script:
            return self.price
        step = int((now - self.script_started) / self.step_seconds) if self.advance == "time" else self.served
        return self.script[min(step, len(self.script) - 1)]

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["price"] = None if self.price is None else str(self.price)
        data["list_price"] = None if self.list_price is None else str(self.list_price)
        data["script"] = [None if price is None else str(price) for price in self.script]
        data["current_price"] = _str_or_none(self.current_price(_clock()))
        del data["script_started"]
        return data


def _str_or_none(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _apply_changes(product: FakeProduct, changes: dict[str, Any]) -> None:
    """Validate and apply control changes; raises ValueError naming the bad field."""
    unknown = set(changes) - {
        "price",
        "list_price",
        "title",
        "availability",
        "script",
        "advance",
        "step_seconds",
        "fault",
        "fault_times",
        "latency_ms",
        "exists",
    }
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    if "price" in changes:
        product.price = _money(changes["price"], "price")
    if "list_price" in changes:
        product.list_price = _money(changes["list_price"], "list_price")
    if "title" in changes:
        product.title = str(changes["title"])[:500]
    if "availability" in changes:
        if changes["availability"] not in AVAILABILITIES:
            raise ValueError(f"availability must be one of {', '.join(AVAILABILITIES)}")
        product.availability = changes["availability"]
    if "script" in changes:
        script = changes["script"] or []
        if not isinstance(script, list):
            raise ValueError("script must be a list of prices")
        product.script = [_money(price, "script entry") for price in script]
        product.served = 0
        product.script_started = _clock()
    if "advance" in changes:
        if changes["advance"] not in ADVANCE_MODES:
            raise ValueError(f"advance must be one of {', '.join(ADVANCE_MODES)}")
        product.advance = changes["advance"]
    if "step_seconds" in changes:
        product.step_seconds = float(changes["step_seconds"])
        if product.step_seconds <= 0:
            raise ValueError("step_seconds must be positive")
    if "fault" in changes:
        if changes["fault"] is not None and changes["fault"] not in FAULT_KINDS:
            raise ValueError(f"fault must be null or one of {', '.join(FAULT_KINDS)}")
        product.fault = changes["fault"]
    if "fault_times" in changes:
        product.fault_times = None if changes["fault_times"] is None else int(changes["fault_times"])
    if "latency_ms" in changes:
        product.latency_ms = max(0, int(changes["latency_ms"]))
    if "exists" in changes:
        product.exists = bool(changes["exists"])


@dataclass(frozen=True)
class _Plan:
    """What one request gets: decided under the lock, served outside it."""

    asin: str
    fault: str | None
    exists: bool
    title: str
    price: Decimal | None
    list_price: Decimal | None
    availability: str
    latency_seconds: float
    padding_kb: int
    hop: int = 0


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
        self._defaults = {
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

    def url(self, asin: str) -> str:
        """``{base_url}/dp/{asin}``."""
        return f"{self.base_url}/dp/{asin}"

    # --- control -------------------------------------------------------------------------------

    def _reset_state(self) -> None:
        with self._lock:
            self._products: dict[str, FakeProduct] = {}
            self._counts: dict[str, int] = {}
            self._config: dict[str, Any] = dict(self._defaults)
            rate, kinds, seed = self._fault_defaults
            self._set_faults_locked(rate, kinds, seed)

    def reset(self) -> None:
        """Forget products, counts and faults; back to the constructor's configuration."""
        self._reset_state()

    def _product_locked(self, asin: str) -> FakeProduct:
        asin = asin.upper()
        product = self._products.get(asin)
        if product is None:
            product = FakeProduct(
                asin=asin, title=f"FakeBrand Widget {asin}, Stainless Steel, 2-Pack", price=default_price(asin)
            )
            self._products[asin] = product
        return product

    def set_product(self, asin: str, **changes: Any) -> dict[str, Any]:
        """Change what ``asin`` serves (keys as in the control API); returns its new state.

        Raises ValueError for an unknown key or a bad value.
        """
        with self._lock:
            product = self._product_locked(asin)
            _apply_changes(product, changes)
            return product.as_json()

    def product(self, asin: str) -> dict[str, Any]:
        """The current state of ``asin`` (created with defaults if never seen)."""
        with self._lock:
            return self._product_locked(asin).as_json()

    def set_faults(self, rate: float = 0.0, kinds: list[str] | tuple[str, ...] | None = None, seed: int = 0) -> None:
        """Serve a random fault from ``kinds`` to a ``rate`` fraction of requests (seeded)."""
        with self._lock:
            self._set_faults_locked(rate, tuple(kinds) if kinds else DEFAULT_FAULT_MIX, seed)

    def _set_faults_locked(self, rate: float, kinds: tuple[str, ...], seed: int) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if not kinds or any(kind not in FAULT_KINDS for kind in kinds):
            raise ValueError(f"kinds must be a non-empty list from {', '.join(FAULT_KINDS)}")
        self._fault_rate = rate
        self._fault_kinds = kinds
        self._rng = random.Random(seed)  # noqa: S311 - reproducible fault draws, not security

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change store-wide settings: latency_ms, padding_kb, slow_seconds, drip_interval_ms,
        oversized_bytes, foreign_url. Returns the configuration."""
        unknown = set(changes) - set(self._defaults)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        with self._lock:
            for key, value in changes.items():
                self._config[key] = str(value) if key == "foreign_url" else max(0, type(self._defaults[key])(value))
            return dict(self._config)

    def counts(self) -> dict[str, int]:
        """Requests received per ASIN on ``/dp/`` (faulted ones included)."""
        with self._lock:
            return dict(self._counts)

    # --- serving -------------------------------------------------------------------------------

    def _plan(self, asin: str, *, bypass_faults: bool, hop: int) -> _Plan:
        with self._lock:
            product = self._product_locked(asin)
            self._counts[product.asin] = self._counts.get(product.asin, 0) + 1
            fault = None
            if not bypass_faults:
                if product.fault is not None:
                    fault = product.fault
                    if product.fault_times is not None:
                        product.fault_times -= 1
                        if product.fault_times <= 0:
                            product.fault, product.fault_times = None, None
                elif self._fault_rate and self._rng.random() < self._fault_rate:
                    fault = self._rng.choice(self._fault_kinds)
            price = product.current_price(_clock())
            if fault is None and product.exists:
                product.served += 1
            return _Plan(
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
    timeout = _IDLE_TIMEOUT_SECONDS
    server: _Server

    def version_string(self) -> str:
        return "Server"  # what amazon.com sends

    def setup(self) -> None:
        super().setup()
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

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if match := _DP_PATH.fullmatch(parts.path):
            query = parse_qs(parts.query)
            hop = query.get("hop", ["0"])[0]
            self._serve_product(
                match.group(1), bypass_faults="redirected" in query, hop=int(hop) if hop.isdigit() else 0
            )
        elif parts.path == "/_control/counts":
            counts = self.store.counts()
            self._send_json(200, {"total": sum(counts.values()), "products": counts})
        elif match := _PRODUCT_PATH.fullmatch(parts.path):
            self._send_json(200, self.store.product(match.group(1)))
        else:
            self._send(404, _not_found_page(), HTML_TYPE)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        try:
            payload = self._read_json()
            if match := _PRODUCT_PATH.fullmatch(path):
                self._send_json(200, self.store.set_product(match.group(1), **payload))
            elif path == "/_control/faults":
                self.store.set_faults(
                    float(payload.get("rate", 0.0)), payload.get("kinds"), int(payload.get("seed", 0))
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

    def _serve_product(self, asin: str, *, bypass_faults: bool, hop: int) -> None:
        plan = self.store._plan(asin, bypass_faults=bypass_faults, hop=hop)
        if not self.store._sleep(plan.latency_seconds):
            self.close_connection = True
            return
        if plan.fault is not None:
            self._serve_fault(plan)
        elif not plan.exists:
            self._send(404, _not_found_page(), HTML_TYPE)
        else:
            self._send(200, _product_page(plan), HTML_TYPE)

    def _serve_fault(self, plan: _Plan) -> None:
        fault, asin = plan.fault, plan.asin
        if fault == "captcha":
            self._send(200, _captcha_page(asin), HTML_TYPE)
        elif fault == "soft_captcha":
            self._send(200, _soft_captcha_page(asin), HTML_TYPE)
        elif fault == "waf":
            self._send(202, _waf_page(), "text/html; charset=UTF-8", {"x-amzn-waf-action": "challenge"})
        elif fault == "service_unavailable":
            self._send(503, _dogs_503_page(), HTML_TYPE)
        elif fault == "rate_limited":
            self._send(429, _rate_limited_page(), HTML_TYPE, {"Retry-After": "60"})
        elif fault == "not_found":
            self._send(404, _not_found_page(), HTML_TYPE)
        elif fault == "server_error":
            self._send(500, b"<html><body><h1>500 Internal Server Error</h1></body></html>", HTML_TYPE)
        elif fault == "slow":
            if self.store._sleep(float(self.store._setting("slow_seconds"))):
                self._send(200, _product_page(plan), HTML_TYPE)
            self.close_connection = True
        elif fault == "drip":
            self._drip(_product_page(plan))
        elif fault == "oversized":
            self._stream_oversized(plan)
        elif fault == "truncated":
            self._send_truncated(_product_page(plan))
        elif fault == "redirect_foreign":
            target = f"{str(self.store._setting('foreign_url')).rstrip('/')}/dp/{asin}"
            self._send(302, b"", HTML_TYPE, {"Location": target})
        elif fault == "redirect_same_host":
            self._send(301, b"", HTML_TYPE, {"Location": f"/dp/{asin}?redirected=1"})
        elif fault == "redirect_loop":
            self._send(302, b"", HTML_TYPE, {"Location": f"/dp/{asin}?hop={plan.hop + 1}"})
        elif fault == "json":
            self._send(200, json.dumps({"asin": asin, "message": "not a page"}).encode(), "application/json")
        elif fault == "image":
            self._send(200, _FAKE_JPEG, "image/jpeg")

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

    def _stream_oversized(self, plan: _Plan) -> None:
        total = int(self.store._setting("oversized_bytes"))
        self.send_response(200)
        self.send_header("Content-Type", HTML_TYPE)
        self.send_header("Transfer-Encoding", "chunked")  # no length to check up front
        self.end_headers()
        self.close_connection = True
        start = _product_page(plan)[:4096]
        filler = _filler_block(_STREAM_CHUNK)
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


# --- pages (our own markup, modelled on amazon.com's 2024+ desktop layout) ------------------------

_FAKE_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 512 + b"\xff\xd9"


def _usd(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def _slug(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-")[:60] or "product"


def _price_to_pay(price: Decimal) -> str:
    whole, fraction = f"{price:,.2f}".split(".")
    return (
        f'<span id="apex-pricetopay-accessibility-label" class="aok-offscreen"> {_usd(price)} </span>'
        '<span class="a-price aok-align-center reinventPricePriceToPayMargin priceToPay apex-pricetopay-value" '
        'data-a-size="xl" data-a-color="base"><span class="a-offscreen"> </span><span aria-hidden="true">'
        f'<span class="a-price-symbol">$</span><span class="a-price-whole">{whole}<span class="a-price-decimal">.'
        f'</span></span><span class="a-price-fraction">{fraction}</span></span></span>'
    )


def _core_price(plan: _Plan) -> str:
    if plan.price is None or plan.availability != "in_stock":
        return (
            '<div id="corePriceDisplay_desktop_feature_div" class="celwidget" '
            f'data-feature-name="corePriceDisplay_desktop" data-csa-c-asin="{plan.asin}"></div>'
        )
    savings = basis = ""
    if plan.list_price is not None and plan.list_price > plan.price:
        percent = round((1 - plan.price / plan.list_price) * 100)
        savings = (
            '<span aria-hidden="true" class="a-size-large a-color-price savingPriceOverride aok-align-center '
            f'reinventPriceSavingsPercentageMargin savingsPercentage">-{percent}%</span>'
        )
        basis = (
            '<div class="a-section a-spacing-small aok-align-center"><span><span class="aok-relative">'
            '<span class="a-size-small a-color-secondary aok-align-center basisPrice">List Price: '
            '<span class="a-price a-text-price" data-a-size="s" data-a-strike="true" data-a-color="secondary">'
            f'<span class="a-offscreen">{_usd(plan.list_price)}</span><span aria-hidden="true">'
            f"{_usd(plan.list_price)}</span></span></span></span></span></div>"
        )
    return (
        '<div id="corePriceDisplay_desktop_feature_div" class="celwidget" data-feature-name="corePriceDisplay_desktop" '
        f'data-csa-c-type="widget" data-csa-c-asin="{plan.asin}">'
        '<style type="text/css">.savingPriceOverride { color:#CC0C39!important; font-weight: 300!important; }</style>'
        '<div class="a-section a-spacing-none aok-align-center aok-relative apex-core-price-identifier">'
        f"{savings}{_price_to_pay(plan.price)}"
        '<span id="taxInclusiveMessage" class="a-size-mini a-color-base aok-align-center aok-nowrap"></span></div>'
        f"{basis}</div>"
    )


def _availability(plan: _Plan) -> str:
    if plan.availability == "unavailable":
        message = "Currently unavailable."
        return (
            '<div id="outOfStock" class="a-box"><div class="a-box-inner"><div class="a-section a-spacing-small">'
            f'<span class="a-color-price a-text-bold">{message}</span><br>'
            "We don't know when or if this item will be back in stock.</div></div></div>"
            '<div id="availability" class="a-section a-spacing-base">'
            f'<span class="a-size-medium a-color-price">{message}</span></div>'
        )
    if plan.availability == "out_of_stock":
        return (
            '<div id="availability" class="a-section a-spacing-base"><span class="a-size-medium a-color-price">'
            "Temporarily out of stock.</span><br>We are working hard to be back in stock as soon as possible.</div>"
        )
    return (
        '<div id="availability" class="a-section a-spacing-base a-spacing-top-micro">'
        '<span class="a-size-medium a-color-success primary-availability-message"> In Stock </span></div>'
    )


_QUANTITY = (
    '<div class="a-row"><label for="quantity">Quantity:</label><select name="quantity" id="quantity">'
    '<option value="1" selected>1</option><option value="2">2</option><option value="3">3</option></select></div>'
)


def _buy_box(plan: _Plan) -> str:
    buyable = plan.availability == "in_stock" and plan.price is not None
    buttons = (
        '<span id="submit.add-to-cart" class="a-button a-button-primary a-button-icon"><span class="a-button-inner">'
        '<input id="add-to-cart-button" name="submit.add-to-cart" title="Add to Shopping Cart" '
        'class="a-button-input" type="submit" value="Add to Cart" aria-labelledby="submit.add-to-cart-announce">'
        '<span id="submit.add-to-cart-announce" class="a-button-text" aria-hidden="true">Add to Cart</span>'
        "</span></span>"
        '<span id="submit.buy-now" class="a-button a-button-oneclick"><span class="a-button-inner">'
        '<input id="buy-now-button" name="submit.buy-now" class="a-button-input" type="submit" value="Buy Now">'
        '<span class="a-button-text" aria-hidden="true">Buy Now</span></span></span>'
        if buyable
        else ""
    )
    offers = (
        '<div id="olpLinkWidget_feature_div" class="celwidget"><a class="a-link-normal" '
        f'href="/gp/offer-listing/{plan.asin}/ref=dp_olp_NEW_mbc">Other sellers on Amazon: New (4) from '
        f'<span class="a-price" data-a-size="s"><span class="a-offscreen">{_usd(plan.price * Decimal("0.93"))}'
        "</span></span></a></div>"
        if buyable and plan.price
        else ""
    )
    return (
        '<div id="desktop_buybox" class="celwidget"><div id="buybox" class="a-section">'
        f"{_availability(plan)}"
        '<form method="post" id="addToCart" action="/cart/add-to-cart/ref=dp_start-bbf_1_glance" '
        'class="a-content" autocomplete="off">'
        f'<input type="hidden" id="ASIN" name="ASIN" value="{plan.asin}">'
        '<input type="hidden" id="session-id" name="session-id" value="000-0000000-0000000">'
        f"{_QUANTITY}{buttons}</form>"
        '<div id="merchantInfoFeature_feature_div" class="celwidget"><span class="a-size-small">Ships from '
        'Amazon.com</span> <span class="a-size-small">Sold by Amazon.com</span></div>'
        f"{offers}</div></div>"
    )


def _related(plan: _Plan) -> str:
    # Decoy prices of other products, below the fold, as on every real page.
    cards = []
    for index in range(1, 5):
        other = f"B0FAKE{index:04d}"
        cards.append(
            '<li class="a-carousel-card"><div class="a-section sims-fbt-image-box">'
            f'<a class="a-link-normal" href="/dp/{other}/ref=sims_dp_d_dex_popular_subs_t3_v6_d_sccl_2_{index}">'
            f"FakeBrand Accessory {index}</a>"
            f'<span class="a-price" data-a-size="m" data-a-color="base"><span class="a-offscreen">'
            f'{_usd(default_price(other))}</span><span aria-hidden="true">{_usd(default_price(other))}</span>'
            "</span></div></li>"
        )
    return (
        '<div id="sims-consolidated-2_feature_div" class="celwidget"><h2 class="a-carousel-heading">'
        'Products related to this item</h2><ol class="a-carousel" role="list">'
        f"{''.join(cards)}</ol></div>"
    )


def _product_page(plan: _Plan) -> bytes:
    title = html.escape(plan.title)
    head_padding, tail_padding = _padding(plan.padding_kb)
    return (
        '<!doctype html><html lang="en-us" class="a-no-js" data-19ax5a9jf="dingo"><head>'
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Amazon.com: {title} : Everything Else</title>"
        f'<link rel="canonical" href="https://www.amazon.com/{_slug(plan.title)}/dp/{plan.asin}">'
        f'<meta name="description" content="{title}">'
        "<script>var ue_t0=ue_t0||+new Date();var ue_sn='www.amazon.com';</script>"
        "</head>"
        '<body class="a-m-us a-aui_72554-c a-aui_killswitch_csa_logger_372963-c dp"><div id="a-page">'
        '<header id="navbar-main" class="nav-opt-sprite"><div id="nav-belt">'
        '<a href="/ref=nav_logo" class="nav-logo-link" aria-label="Amazon">Amazon</a>'
        '<form id="nav-search-bar-form" accept-charset="utf-8" action="/s/ref=nav_bb_sb" method="GET" role="search">'
        '<input type="text" id="twotabsearchtextbox" name="field-keywords" placeholder="Search Amazon"></form>'
        '<a href="/gp/cart/view.html?ref_=nav_cart" id="nav-cart"><span id="nav-cart-count">0</span> Cart</a>'
        "</div></header>"
        f"{head_padding}"
        '<div id="dp" class="fakestore en_US"><div id="dp-container" class="a-container" role="main"><div id="ppd">'
        '<div id="leftCol"><div id="imageBlock"><img id="landingImage" '
        f'alt="{title}" src="/images/I/{plan.asin}.jpg"></div></div>'
        '<div id="centerCol" class="centerColAlign">'
        f'<div id="title_feature_div" class="celwidget" data-feature-name="title" data-csa-c-asin="{plan.asin}">'
        '<div id="titleSection" class="a-section a-spacing-none"><h1 id="title" class="a-size-large a-spacing-none">'
        f'<span id="productTitle" class="a-size-large product-title-word-break">        {title}       </span>'
        "</h1></div></div>"
        '<div id="bylineInfo_feature_div" class="celwidget"><a id="bylineInfo" class="a-link-normal" '
        'href="/stores/FakeBrand/page/00000000-0000-0000-0000-000000000000">Visit the FakeBrand Store</a></div>'
        '<div id="averageCustomerReviews_feature_div" class="celwidget">'
        '<span id="acrPopover" class="reviewCountTextLinkedHistogram" '
        'title="4.6 out of 5 stars"><span class="a-size-base a-color-base">4.6</span></span> '
        '<span id="acrCustomerReviewText" class="a-size-base">1,234 ratings</span></div>'
        f"{_core_price(plan)}"
        '<div id="feature-bullets" class="a-section a-spacing-medium a-spacing-top-small">'
        '<ul class="a-unordered-list a-vertical a-spacing-mini">'
        '<li><span class="a-list-item"> Made of brushed stainless steel; dishwasher safe. </span></li>'
        '<li><span class="a-list-item"> Two in the box; fits every standard fake fixture. </span></li>'
        "</ul></div></div>"
        f'<div id="rightCol">{_buy_box(plan)}</div></div>'
        f"{_related(plan)}{tail_padding}"
        "</div></div></div></body></html>"
    ).encode()


def _captcha_page(asin: str) -> bytes:
    return (
        '<!doctype html><html lang="en-us" class="a-no-js"><head><meta charset="utf-8">'
        '<title dir="ltr">Amazon.com</title>'
        '<script>var ue_sn = "opfcaptcha.amazon.com", ue_id = "FAKESTORE0000000000";</script></head><body>'
        "<!-- To discuss automated access to Amazon data please contact api-services-support@amazon.com. -->"
        '<div class="a-container a-padding-double-large"><div class="a-row a-spacing-double-large">'
        '<div class="a-box a-alert a-alert-info a-spacing-base"><div class="a-box-inner">'
        '<h4>Enter the characters you see below</h4><p class="a-last">Sorry, we just need to make sure you\'re not '
        "a robot. For best results, please make sure your browser is accepting cookies.</p></div></div>"
        '<form method="get" action="/errors/validateCaptcha" name="">'
        '<input type="hidden" name="amzn" value="ZmFrZXN0b3JlLWNhcHRjaGE=">'
        f'<input type="hidden" name="amzn-r" value="/dp/{asin}">'
        "<h4>Type the characters you see in this image:</h4>"
        '<div class="a-row a-text-center"><img src="/captcha/fakestore/Captcha_fake.jpg"></div>'
        '<input autocomplete="off" spellcheck="false" placeholder="Type characters" id="captchacharacters" '
        'name="field-keywords" autocapitalize="off" type="text">'
        '<span class="a-button a-button-primary a-span12"><span class="a-button-inner">'
        '<button type="submit" class="a-button-text">Continue shopping</button></span></span></form>'
        "</div></div></body></html>"
    ).encode()


def _soft_captcha_page(asin: str) -> bytes:
    return (
        '<!doctype html><html lang="en-us" class="a-no-js"><head><meta charset="utf-8">'
        '<title dir="ltr">Amazon.com</title></head><body>'
        '<div class="a-container a-padding-double-large"><div class="a-row a-spacing-double-large">'
        '<div class="a-section"><div class="a-box a-color-offset-background"><div class="a-box-inner">'
        "<h4>Click the button below to continue shopping</h4>"
        '<form method="get" action="/errors/validateCaptcha" name="">'
        '<input type="hidden" name="amzn" value="ZmFrZXN0b3JlLXNvZnQ=">'
        f'<input type="hidden" name="amzn-r" value="/dp/{asin}">'
        '<input type="hidden" name="field-keywords" value="FAKEWD">'
        '<span class="a-button a-button-primary a-span12"><span class="a-button-inner">'
        '<button type="submit" class="a-button-text" alt="Continue shopping">Continue shopping</button>'
        "</span></span></form></div></div></div>"
        '<div class="a-divider a-divider-section"><div class="a-divider-inner"></div></div>'
        '<div class="a-text-center a-spacing-small a-size-mini"><a href="/gp/help/customer/display.html/'
        '?nodeId=508088">Conditions of Use</a></div></div></div></body></html>'
    ).encode()


def _waf_page() -> bytes:
    return (
        b'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title></title>'
        b"<script>window.awsWafCookieDomainList = ['.amazon.com'];"
        b'window.gokuProps = {"key": "RkFLRVNUT1JF", "iv": "RkFLRQ==", "context": "ZmFrZXN0b3Jl"};</script>'
        b'<script src="/fake-waf/challenge.js"></script></head><body><div id="challenge-container"></div>'
        b"<script>AwsWafIntegration.saveReferrer(); AwsWafIntegration.checkForceRefresh().then(function (r) "
        b"{ if (r) { window.location.reload(true); } });</script>"
        b"<noscript><h1>JavaScript is disabled</h1>Enable JavaScript to continue.</noscript></body></html>"
    )


def _dogs_page(title: str, message: str, ref: str, image: str) -> bytes:
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title>'
        "<style>body { margin: 0; font-family: Arial, sans-serif } #g { text-align: center; margin: 30px 0 }</style>"
        f'</head><body><a href="/ref={ref}_logo"><img src="/images/G/01/error/logo.png" alt="Amazon.com"></a>'
        f'<form action="/s" method="GET" role="search"><input name="field-keywords" placeholder="Search">'
        f'<input name="ref" type="hidden" value="{ref}_search"></form>'
        f'<div id="g"><div><a href="/ref={ref}_link"><img src="/images/G/01/error/{image}" alt="{message}"></a></div>'
        f'<a href="/dogsofamazon/ref={ref}_d" target="_blank" rel="noopener noreferrer">'
        '<img id="d" alt="Dogs of Amazon" src="/images/G/01/error/21.jpg"></a></div></body></html>'
    ).encode()


def _dogs_503_page() -> bytes:
    return _dogs_page(
        "Sorry! Something went wrong!",
        "Sorry! Something went wrong on our end. Please go back and try again or go to Amazon's home page.",
        "cs_503",
        "500_503.png",
    )


def _not_found_page() -> bytes:
    return _dogs_page(
        "Page Not Found",
        "Sorry! We couldn't find that page. Try searching or go to Amazon's home page.",
        "cs_404",
        "title._TTD_.png",
    )


def _rate_limited_page() -> bytes:
    return (
        b"<!doctype html><html><head><title>Too Many Requests</title></head><body>"
        b"<h1>Too Many Requests</h1><p>Please slow down.</p></body></html>"
    )


# --- filler for realistic page sizes -------------------------------------------------------------


@lru_cache(maxsize=16)
def _filler_block(size: int) -> bytes:
    """Roughly ``size`` bytes of product-page-like inline scripts, styles and widgets, with no
    prices, no block-page markers and no ids the parser looks for."""
    parts: list[str] = []
    length = 0
    index = 0
    while length < size:
        state = json.dumps(
            {"widget": f"fake-widget-{index}", "weblab": f"FAKE_WEBLAB_{index:05d}", "treatment": "C", "slot": index}
        )
        kind = index % 3
        if kind == 0:
            part = (
                f'<script type="text/javascript">P.when("A", "ready").execute("fake-widget-{index}", '
                f'function (A) {{ var state = {state}; A.state("fakeWidget{index}", state); }});</script>\n'
            )
        elif kind == 1:
            part = (
                f'<style type="text/css">.fake-widget-{index} .a-section {{ margin: 0 0 {index % 24}px 0; '
                f"padding: {index % 7}px; }} .fake-widget-{index} .a-size-base {{ line-height: 20px; }}</style>\n"
            )
        else:
            part = (
                f'<div id="fake_feature_{index}" class="celwidget fake-widget-{index}" data-feature-name="fake{index}" '
                f'data-csa-c-type="widget"><div class="a-section a-spacing-small"><span class="a-size-base '
                f'a-color-secondary">Frequently viewed accessories and details, section {index}.</span></div></div>\n'
            )
        parts.append(part)
        length += len(part)
        index += 1
    return "".join(parts).encode()[:size]


@lru_cache(maxsize=16)
def _padding(kb: int) -> tuple[str, str]:
    """Filler totalling ``kb`` KiB: 60% before the title (as on real pages), the rest after the buy box."""
    if kb <= 0:
        return "", ""
    text = _filler_block(kb * 1024).decode()
    # Cut at a line boundary so no tag is split.
    split = text.rfind("\n", 0, len(text) * 6 // 10) + 1
    end = text.rfind("\n") + 1
    return text[:split], text[split:end]
