"""amazon.com: product references are ASINs; pages come from ``settings.AMAZON_BASE_URL``."""

from __future__ import annotations

import dataclasses
import time

from django.conf import settings

from scraping import inputs
from scraping.fetch import FetchError, fetch
from scraping.pages import analyse
from scraping.providers.base import result_from_fetch_error
from scraping.results import ErrorKind, ScrapeResult, ScrapeStatus


class AmazonProvider:
    """Scrapes amazon.com product pages (or a fake store at the configured base URL)."""

    code = "amazon.com"
    display_name = "Amazon.com"

    def normalize(self, text: str) -> str:
        """The ASIN of an amazon.com product URL or bare ASIN; raises InvalidProductReference."""
        return inputs.normalize_product_reference(text)

    def product_url(self, ref: str) -> str:
        """``https://www.amazon.com/dp/ASIN``."""
        return inputs.canonical_url(self.normalize(ref))

    def fetch_url(self, ref: str) -> str:
        """The URL :meth:`scrape` requests: ``{AMAZON_BASE_URL}/dp/ASIN``."""
        # Read at call time: tests and demos point it at a local fake store.
        return inputs.product_url(self.normalize(ref), settings.AMAZON_BASE_URL)

    def scrape(self, ref: str) -> ScrapeResult:
        """Fetch :meth:`fetch_url` and classify it; never raises for expected outcomes."""
        asin = self.normalize(ref)
        started = time.monotonic()
        url = self.fetch_url(asin)
        try:
            response = fetch(url, redirect_hosts=inputs.AMAZON_HOSTS)
        except FetchError as exc:
            return result_from_fetch_error(exc, asin=asin, duration_ms=_ms_since(started))
        result = analyse(response.status, response.content_type, response.body, asin_hint=asin)
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
