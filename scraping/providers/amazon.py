"""Amazon marketplaces: product references are ASINs; pages come from the store's base URL.

One :class:`AmazonProvider` per marketplace of :mod:`scraping.marketplaces`, registered under
the marketplace's code (``amazon.de``). Each fetches from its own store's base URL
(:meth:`scraping.models.Store.fetch_base_url`) in its own language, follows redirects only to
its own hosts, and reads prices in its own currency.
"""

from __future__ import annotations

import dataclasses
import time

from django.db import DatabaseError

from scraping import inputs
from scraping.fetch import FetchError, fetch
from scraping.marketplaces import DEFAULT_MARKETPLACE, Marketplace, accept_language, marketplace
from scraping.models import Store
from scraping.pages import analyse
from scraping.providers.base import result_from_fetch_error
from scraping.results import ErrorKind, ScrapeResult, ScrapeStatus


class AmazonProvider:
    """Scrapes one Amazon marketplace's product pages (or a fake store at its base URL)."""

    def __init__(self, market: Marketplace | None = None) -> None:
        self.marketplace = market or marketplace(DEFAULT_MARKETPLACE)
        # Class attributes in subclasses (tests register look-alike providers) win over these.
        if "code" not in type(self).__dict__:
            self.code = self.marketplace.code
        if "display_name" not in type(self).__dict__:
            self.display_name = self.marketplace.name

    def normalize(self, text: str) -> str:
        """The ASIN of a product URL on this marketplace, or of a bare ASIN; raises InvalidProductReference."""
        return inputs.normalize_product_reference(text, store=self.marketplace.code)

    def product_url(self, ref: str) -> str:
        """``https://www.amazon.de/dp/ASIN``."""
        return inputs.canonical_url(self.normalize(ref), self.marketplace.code)

    def fetch_url(self, ref: str) -> str:
        """The URL :meth:`scrape` requests: ``{store base URL}/dp/ASIN``."""
        return inputs.product_url(self.normalize(ref), self._store().fetch_base_url())

    def _store(self) -> Store:
        # Read per scrape (one indexed row): an admin's change of base URL or language applies at
        # once, and no process keeps the policy in memory. A store never saved has the defaults.
        try:
            store = Store.objects.filter(code=self.marketplace.code).only("code", "base_url", "language").first()
        except DatabaseError:
            # `manage.py scrape` also runs before `migrate`: the environment's base URL applies.
            store = None
        return store or Store(code=self.marketplace.code, language=self.marketplace.language)

    def scrape(self, ref: str) -> ScrapeResult:
        """Fetch :meth:`fetch_url` and classify it; never raises for expected outcomes."""
        asin = self.normalize(ref)
        started = time.monotonic()
        store = self._store()
        url = inputs.product_url(asin, store.fetch_base_url())
        try:
            response = fetch(
                url,
                redirect_hosts=self.marketplace.hosts,
                headers={"Accept-Language": accept_language(store.language or self.marketplace.language)},
            )
        except FetchError as exc:
            return result_from_fetch_error(exc, asin=asin, duration_ms=_ms_since(started))
        result = analyse(
            response.status,
            response.content_type,
            response.body,
            asin_hint=asin,
            currency_hint=self.marketplace.currency,
        )
        if response.truncated and result.status is not ScrapeStatus.BLOCKED:
            # A block page is recognisable from a prefix; a price in a cut page may itself be cut.
            result = ScrapeResult(
                status=ScrapeStatus.FAILED,
                error_kind=ErrorKind.CONNECTION,
                asin=asin,
                message=f"The connection closed after {len(response.body)} bytes, before the page ended.",
            )
        extra = dict(result.extra)
        if response.final_url != url:
            extra["final_url"] = response.final_url
        return dataclasses.replace(
            result,
            http_status=response.status,
            bytes_received=len(response.body),
            duration_ms=_ms_since(started),
            extra=extra,
        )


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
