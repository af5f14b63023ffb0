"""The one module that makes outbound HTTP requests.

``fetch(url)`` GETs one page with bounded time and size and returns the bytes, or raises
:class:`FetchError` with an :class:`~scraping.results.ErrorKind`. It knows nothing of Amazon:
callers build the URL and say which extra hosts a redirect may go to.

Limits, all read from settings at call time (tests override them):

* ``SCRAPE_CONNECT_TIMEOUT_SECONDS`` / ``SCRAPE_READ_TIMEOUT_SECONDS``: per connect and per read.
* A total wall-clock deadline (``SCRAPE_TOTAL_TIMEOUT_SECONDS`` if set, else connect + read) over
  every hop, enforced by a watchdog that shuts the socket down: a server that drips one byte per
  second never trips a read timeout, but it cannot hold a worker past the deadline.
* ``SCRAPE_MAX_BYTES``: the decompressed body is counted while streaming and reading stops at the
  cap (urllib3 >= 2.6 also bounds each decompression step, so a gzip bomb cannot balloon).
* Redirects are followed by hand, at most :data:`MAX_REDIRECTS`, and only to the starting origin
  or to the caller's ``redirect_hosts`` over https; anything else is refused without a request.
* ``SCRAPE_PROXY_URL``: optional proxy; its credentials never appear in messages.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.request import ACCEPT_ENCODING

from scraping.results import ErrorKind

MAX_REDIRECTS = 5
CHUNK_SIZE = 64 * 1024
# Redirect responses are tiny; read at most this much of one so its connection can be reused.
REDIRECT_DRAIN_BYTES = 64 * 1024

# One desktop browser, consistently (no rotation: evading blocks is out of scope). Firefox because
# it sends no client-hint (Sec-CH-UA) headers, so this small set is complete for that browser.
# Accept-Encoding lists only what urllib3 can decode here (gzip/deflate, plus br/zstd when their
# packages are installed): advertising more would give us bodies we cannot read.
BROWSER_HEADERS = {
    "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.5",
    "Accept-Encoding": ", ".join(part.strip() for part in ACCEPT_ENCODING.split(",")),
    "Connection": "keep-alive",
    "Upgrade-Insecure-Requests": "1",
}


class FetchError(Exception):
    """A fetch gave no usable response: timeout, connection, oversized body or refused redirect."""

    def __init__(self, kind: ErrorKind, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.http_status = http_status


@dataclass(frozen=True, slots=True)
class FetchResponse:
    """The final (non-redirect) response.

    ``truncated`` is True when the connection ended before the declared Content-Length (or the
    last chunk): ``body`` is then a prefix of the page and must not be trusted for a price.
    """

    status: int
    content_type: str | None
    body: bytes
    final_url: str
    elapsed_ms: int
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class _Limits:
    connect: float
    read: float
    total: float
    max_bytes: int
    proxy: str | None


def _limits() -> _Limits:
    connect = float(settings.SCRAPE_CONNECT_TIMEOUT_SECONDS)
    read = float(settings.SCRAPE_READ_TIMEOUT_SECONDS)
    total = getattr(settings, "SCRAPE_TOTAL_TIMEOUT_SECONDS", None) or connect + read
    return _Limits(connect, read, float(total), int(settings.SCRAPE_MAX_BYTES), settings.SCRAPE_PROXY_URL or None)


# --- The deadline watchdog -----------------------------------------------------------------------

# The deadline of the fetch running in this thread; our connection classes attach themselves to it.
_active = threading.local()


class _Deadline:
    """Shuts down the socket of the current request when the total time is up."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._conn: HTTPConnection | None = None
        self._done = False
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        _active.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Under the lock, so a late timer can never shut a connection that is back in the pool.
        with self._lock:
            self._done = True
        self._timer.cancel()
        _active.deadline = None

    def attach(self, conn: HTTPConnection) -> None:
        with self._lock:
            self._conn = conn
            if self.expired:
                _shutdown(conn)

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            if self._conn is not None:
                _shutdown(self._conn)


def _shutdown(conn: HTTPConnection) -> None:
    # shutdown() (not close()) wakes a recv() blocked in another thread; the reader then fails
    # and the fetch reports a timeout because the deadline is marked expired.
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed by the peer or by urllib3
            sock.shutdown(socket.SHUT_RDWR)


def _attach(conn: HTTPConnection) -> None:
    deadline: _Deadline | None = getattr(_active, "deadline", None)
    if deadline is not None:
        deadline.attach(conn)


class _Watched(HTTPConnection):
    # Attached before connecting (so a TLS handshake can be cut), after (in case the deadline
    # passed during connect), and on every request (a pooled keep-alive connection is reused).
    # A subclass of HTTPConnection so that it type-checks; in _WatchedHTTPSConnection's MRO it
    # still comes before HTTPSConnection, so super() reaches the TLS connection's methods.
    def connect(self) -> None:
        _attach(self)
        super().connect()
        _attach(self)

    def request(self, *args, **kwargs) -> None:
        _attach(self)
        super().request(*args, **kwargs)


class _WatchedHTTPConnection(_Watched):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter with connections the deadline watchdog can cut."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # SOCKS managers bring their own connection classes; there only the read timeout applies.
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


# --- Sessions ----------------------------------------------------------------------------------


class _Session(requests.Session):
    """A Session that leaves redirects entirely to :func:`fetch`.

    Even with ``allow_redirects=False``, ``Session.send`` prepares the next hop (for
    ``Response.next``): it parses the Location header and reads the redirect's whole body into
    memory, uncapped. With no redirect target that code never runs.
    """

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


# One Session per thread: a Session (its pool and cookie jar) is not documented as thread-safe,
# and one per thread still reuses keep-alive connections across the scrapes a worker runs. The
# pid check gives a forked worker (django-q forks) its own sockets instead of sharing the parent's.
_sessions = threading.local()


def _session() -> requests.Session:
    session: requests.Session | None = getattr(_sessions, "session", None)
    if session is None or getattr(_sessions, "pid", None) != os.getpid():
        session = _Session()
        # Ignore HTTP(S)_PROXY, NO_PROXY and .netrc from the environment: the proxy comes from
        # SCRAPE_PROXY_URL only, so what a worker does never depends on its shell.
        session.trust_env = False
        session.headers.clear()
        session.headers.update(BROWSER_HEADERS)
        adapter = _WatchedAdapter(max_retries=0)  # no silent retries: the scheduler decides
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        _sessions.session = session
        _sessions.pid = os.getpid()
    return session


# --- Fetching -----------------------------------------------------------------------------------


def fetch(url: str, *, redirect_hosts: Collection[str] = (), headers: Mapping[str, str] | None = None) -> FetchResponse:
    """GET ``url`` within the configured limits; raise FetchError when there is no usable response.

    Redirects (301/302/303/307/308) are followed to the same origin (scheme, host and port) as
    ``url``, or over https to a host in ``redirect_hosts``; any other target is refused with
    ``REDIRECT_REFUSED`` and never requested. Error responses (4xx/5xx) are returned, not raised:
    classifying them is the caller's job. ``headers`` replace browser headers of the same name
    (a marketplace's ``Accept-Language``).
    """
    limits = _limits()
    started = time.monotonic()
    deadline = _Deadline(limits.total)
    try:
        with deadline:
            response = _fetch(url, limits, redirect_hosts, started, headers)
    except FetchError as exc:
        if deadline.expired and exc.kind is not ErrorKind.OVERSIZED:
            raise _deadline_error(limits) from None
        raise
    except requests.RequestException as exc:
        if deadline.expired:
            raise _deadline_error(limits) from None
        raise _request_error(exc, limits) from None
    if deadline.expired:
        # The watchdog cut the socket; a body that "ended" then is only a prefix of the page.
        raise _deadline_error(limits)
    return response


def _fetch(
    url: str,
    limits: _Limits,
    redirect_hosts: Collection[str],
    started: float,
    headers: Mapping[str, str] | None = None,
) -> FetchResponse:
    session = _session()
    origin = _origin(url)
    proxies = {"http": limits.proxy, "https": limits.proxy} if limits.proxy else None
    current = url
    for hop in range(MAX_REDIRECTS + 1):
        response = session.get(
            current,
            headers=headers,
            timeout=(limits.connect, limits.read),
            allow_redirects=False,
            stream=True,
            proxies=proxies,
        )
        with response:
            if response.is_redirect:
                target = _redirect_target(current, response.headers["Location"])
                if hop == MAX_REDIRECTS:
                    raise FetchError(
                        ErrorKind.REDIRECT_REFUSED, f"more than {MAX_REDIRECTS} redirects", response.status_code
                    )
                if not _redirect_allowed(target, origin, redirect_hosts):
                    raise FetchError(
                        ErrorKind.REDIRECT_REFUSED,
                        f"redirect to {_describe_target(target)} refused: not an allowed host",
                        response.status_code,
                    )
                _drain(response)
                current = target
                continue
            body, truncated = _read_body(response, limits.max_bytes)
            return FetchResponse(
                status=response.status_code,
                content_type=response.headers.get("Content-Type"),
                body=body,
                final_url=current,
                elapsed_ms=round((time.monotonic() - started) * 1000),
                truncated=truncated,
            )
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


def _read_body(response: requests.Response, max_bytes: int) -> tuple[bytes, bool]:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(
            ErrorKind.OVERSIZED,
            f"response declares {int(declared)} bytes, over the {max_bytes}-byte limit",
            response.status_code,
        )
    chunks: list[bytes] = []
    received = 0
    try:
        for chunk in response.iter_content(CHUNK_SIZE):
            received += len(chunk)
            if received > max_bytes:
                # Leaving the loop closes the connection (see `with response`): nothing more is read.
                raise FetchError(
                    ErrorKind.OVERSIZED,
                    f"response exceeded the {max_bytes}-byte limit; stopped reading",
                    response.status_code,
                )
            chunks.append(chunk)
    except requests.exceptions.ChunkedEncodingError:
        # The peer closed before the declared length or the last chunk. Keep the prefix: a block
        # page can still be recognised from it, and the caller knows not to trust a price in it.
        return b"".join(chunks), True
    except requests.exceptions.ContentDecodingError:
        raise FetchError(
            ErrorKind.CONNECTION, "response body could not be decompressed", response.status_code
        ) from None
    return b"".join(chunks), False


def _drain(response: requests.Response, max_bytes: int = REDIRECT_DRAIN_BYTES) -> None:
    # Reading a small redirect body to the end lets its keep-alive connection go back to the pool.
    # Only the Location header matters, so a broken body is no reason to fail the fetch.
    received = 0
    with contextlib.suppress(requests.RequestException):
        for chunk in response.iter_content(min(CHUNK_SIZE, max_bytes + 1)):
            received += len(chunk)
            if received > max_bytes:
                break


# --- One hop, for short links ---------------------------------------------------------------------

# A short link's answer is a redirect with an empty or tiny body; more than this is not read.
HOP_MAX_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class HopResponse:
    """One response whose redirect was *not* followed: its status and ``Location`` header."""

    status: int
    location: str | None


def fetch_hop(url: str, *, total_seconds: float) -> HopResponse:
    """GET ``url`` once, following nothing, within ``total_seconds``; raise FetchError if no answer.

    For :mod:`scraping.shortlinks`, which checks every target before it calls this. At most
    :data:`HOP_MAX_BYTES` of the body are read (then the connection is dropped). The watchdog
    enforces the deadline as for :func:`fetch`; the proxy and headers are the same.
    """
    limits = _limits()
    total = max(0.001, total_seconds)
    proxies = {"http": limits.proxy, "https": limits.proxy} if limits.proxy else None
    deadline = _Deadline(total)
    try:
        with deadline:
            response = _session().get(
                url,
                timeout=(min(limits.connect, total), min(limits.read, total)),
                allow_redirects=False,
                stream=True,
                proxies=proxies,
            )
            with response:
                location = response.headers.get("Location")
                _drain(response, HOP_MAX_BYTES)
    except requests.RequestException as exc:
        if deadline.expired:
            raise FetchError(ErrorKind.TIMEOUT, f"gave up after the deadline of {total:g}s") from None
        raise _request_error(exc, limits) from None
    if deadline.expired:
        raise FetchError(ErrorKind.TIMEOUT, f"gave up after the deadline of {total:g}s")
    return HopResponse(status=response.status_code, location=location)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


def _redirect_target(current: str, location: str) -> str:
    try:
        return urljoin(current, location)
    except ValueError:  # e.g. "http://[bad": refused below like any disallowed target
        return "invalid:"


def _redirect_allowed(target: str, origin: tuple[str, str, int], redirect_hosts: Collection[str]) -> bool:
    try:
        parts = urlsplit(target)
        scheme, host, port = _origin(target)
    except ValueError:  # a malformed port or host
        return False
    if parts.username is not None or parts.password is not None or scheme not in _DEFAULT_PORTS:
        return False
    if (scheme, host, port) == origin:
        return True
    return scheme == "https" and port == 443 and host in redirect_hosts


def _describe_target(target: str) -> str:
    # Scheme and host only: enough to explain the refusal, nothing of paths or credentials.
    try:
        parts = urlsplit(target)
        return f"{parts.scheme}://{parts.hostname or '?'}"[:200]
    except ValueError:
        return "a malformed URL"


def _deadline_error(limits: _Limits) -> FetchError:
    return FetchError(ErrorKind.TIMEOUT, f"gave up after the total deadline of {limits.total:g}s")


def _request_error(exc: requests.RequestException, limits: _Limits) -> FetchError:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return FetchError(ErrorKind.TIMEOUT, f"connect timed out after {limits.connect:g}s")
    if isinstance(exc, requests.exceptions.Timeout) or _caused_by_timeout(exc):
        # requests reports a read timeout in the body as a ConnectionError; look at the cause.
        return FetchError(ErrorKind.TIMEOUT, f"no data for {limits.read:g}s (read timeout)")
    if isinstance(exc, requests.exceptions.ProxyError):
        return FetchError(ErrorKind.CONNECTION, _redact(f"proxy error: {_root_cause(exc)}", limits.proxy))
    return FetchError(ErrorKind.CONNECTION, _redact(f"connection failed: {_root_cause(exc)}", limits.proxy))


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps, outermost first (requests and urllib3 nest several levels)."""
    chain = [exc]
    while len(chain) < 10:
        current = chain[-1]
        nested = getattr(current, "reason", None) or current.__cause__ or current.__context__
        if nested is None and current.args and isinstance(current.args[0], BaseException):
            nested = current.args[0]
        if not isinstance(nested, BaseException) or nested in chain:
            break
        chain.append(nested)
    return chain


def _caused_by_timeout(exc: BaseException) -> bool:
    # Not urllib3's TimeoutError base: its NewConnectionError (connection refused) derives from it.
    return any(isinstance(cause, TimeoutError | urllib3.exceptions.ReadTimeoutError) for cause in _causes(exc))


def _root_cause(exc: BaseException) -> str:
    """The innermost reason (e.g. "[Errno 111] Connection refused"), without urllib3's pool noise."""
    current = _causes(exc)[-1]
    text = str(current)
    # urllib3 prefixes "<urllib3.connection.HTTPConnection object at 0x...>: "; drop it.
    text = re.sub(r"<[^>]*object at 0x[0-9a-f]+>:\s*", "", text)
    return (text or type(current).__name__)[:300]


_USERINFO = re.compile(r"(?<=//)[^/@\s]+@")


def _redact(text: str, proxy: str | None) -> str:
    """Remove credentials of the proxy URL (and any ``//user:pass@`` form) from a message."""
    text = _USERINFO.sub("***@", text)
    if proxy:
        parts = urlsplit(proxy)
        for secret in (parts.password, parts.username):
            if secret:
                text = text.replace(secret, "***").replace(unquote(secret), "***")
    return text
