"""Resolve Amazon short links (``a.co/d/...``, ``amzn.to/...``, ``amzn.eu/d/...``, ``amzn.asia/d/...``).

The Amazon app's Share button gives short links; the product they name is only known by asking
the shortener, which answers with a redirect. That request is made for a user, from the web
process, so it is fenced in:

- **Allow-list, checked before every request.** The first URL and every ``Location`` must be
  https (http is upgraded) on a short-link host or a marketplace host, without userinfo, port or
  IP literal (:func:`scraping.inputs.checked_host`). Anything else ends the resolution with an
  error, without a request to it.
- **Stop as soon as the product is known.** A ``Location`` that names a product page on a
  marketplace is the answer: it is parsed, never fetched (so no product page is scraped from the
  web process, and a hop is saved).
- **Bounded.** At most :data:`MAX_HOPS` requests, :data:`scraping.fetch.HOP_MAX_BYTES` of body
  each, and ``SHORT_LINK_TIMEOUT_SECONDS`` in total.
- **Cached.** A resolution is kept ``SHORT_LINK_CACHE_SECONDS`` in the shared cache, so the same
  link pasted again (or by someone else) costs no request.

Done once, when a tracker is created; a scrape worker never resolves a link (products are keyed
by store and ASIN). Tests point short-link hosts at a loopback server with
``SHORT_LINK_BASE_URLS`` (the allow-list checks still see the real host names).
"""

from __future__ import annotations

import hashlib
import logging
import time
from urllib.parse import urljoin, urlsplit

from django.conf import settings
from django.core.cache import cache

from scraping.fetch import FetchError, fetch_hop
from scraping.inputs import (
    SHORT_LINK_HOSTS,
    InvalidProductReference,
    ProductReference,
    RejectReason,
    checked_host,
    parse_product_reference,
)
from scraping.marketplaces import MARKETPLACE_HOSTS

logger = logging.getLogger(__name__)

MAX_HOPS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CACHE_PREFIX = "shortlink:v1:"


class ShortLinkError(Exception):
    """The short link did not lead to a product on a known marketplace; ``str()`` is for the user."""


def resolve_short_link(url: str) -> ProductReference:
    """The product (ASIN and marketplace) a short link leads to; raises ShortLinkError.

    ``url`` is the normalised link from :class:`scraping.inputs.InvalidProductReference`
    (``exc.short_link``). The answer is cached.
    """
    key = _CACHE_PREFIX + hashlib.sha256(url.encode()).hexdigest()
    cached = cache.get(key)
    if isinstance(cached, tuple) and len(cached) == 2:
        return ProductReference(asin=cached[0], store=cached[1])
    reference = _resolve(url)
    if settings.SHORT_LINK_CACHE_SECONDS:
        cache.set(key, (reference.asin, reference.store), settings.SHORT_LINK_CACHE_SECONDS)
    return reference


def _resolve(url: str) -> ProductReference:
    deadline = time.monotonic() + settings.SHORT_LINK_TIMEOUT_SECONDS
    current = url
    for _ in range(MAX_HOPS):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ShortLinkError("The short link took too long to answer.")
        try:
            hop = fetch_hop(_request_url(current), total_seconds=remaining)
        except FetchError as exc:
            logger.info("short link hop failed", extra={"host": _host_of(current), "kind": str(exc.kind)})
            raise ShortLinkError(f"The short link could not be followed ({exc.kind}).") from None
        if hop.status not in REDIRECT_STATUSES or not hop.location:
            raise ShortLinkError(f"The short link did not lead to a product (HTTP {hop.status}).")
        target = _allowed_target(current, hop.location)
        product = _product_of(target)
        if product is not None:
            return product
        current = target
    raise ShortLinkError(f"The short link redirects more than {MAX_HOPS} times.")


def _allowed_target(current: str, location: str) -> str:
    """The absolute redirect target, if it may be requested or read; else ShortLinkError."""
    try:
        target = urljoin(current, location)
        parts = urlsplit(target)
    except ValueError:
        raise ShortLinkError("The short link redirects to a malformed address.") from None
    if parts.scheme not in ("http", "https"):
        raise ShortLinkError("The short link redirects to something that is not a web page.")
    try:
        host = checked_host(parts)
    except InvalidProductReference:
        raise ShortLinkError("The short link redirects to an address that is not Amazon's.") from None
    if host not in SHORT_LINK_HOSTS and host not in MARKETPLACE_HOSTS:
        raise ShortLinkError("The short link redirects to a site that is not an Amazon marketplace.")
    # Only ever requested over https, whatever the Location said.
    return parts._replace(scheme="https", netloc=host).geturl()


def _product_of(target: str) -> ProductReference | None:
    """The product a marketplace URL names, or None when it is another page (or a short link)."""
    try:
        reference = parse_product_reference(target)
    except InvalidProductReference as exc:
        if exc.reason in (RejectReason.SHORT_LINK, RejectReason.NOT_PRODUCT_PAGE):
            return None  # another hop to follow (a shortener chain, a sign-in interstitial)
        raise ShortLinkError("The short link leads to an Amazon page that is not a product.") from None
    return reference if reference.store is not None else None


def _request_url(url: str) -> str:
    """Where the request for ``url`` really goes: the URL itself, or for tests a loopback server
    standing in for its host (``SHORT_LINK_BASE_URLS``), with the same path and query."""
    parts = urlsplit(url)
    base = settings.SHORT_LINK_BASE_URLS.get(parts.hostname or "")
    if not base:
        return url
    return base.rstrip("/") + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"
