"""The interface every store provider implements, and helpers they share.

``tracking`` only ever talks to a :class:`Provider`: normalise what the user typed, show a
canonical URL, scrape a reference into a :class:`~scraping.results.ScrapeResult`. Adding a store
means one new module in this package and one ``register`` call.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from scraping.fetch import FetchError
from scraping.results import ErrorKind, ScrapeResult, ScrapeStatus

# Error kinds that mean "the store refused us" (feed the circuit breaker) rather than "it broke".
BLOCKED_KINDS = frozenset(
    {ErrorKind.CAPTCHA, ErrorKind.SOFT_CAPTCHA, ErrorKind.WAF, ErrorKind.RATE_LIMITED, ErrorKind.SERVICE_UNAVAILABLE}
)


@runtime_checkable
class Provider(Protocol):
    """A store we can scrape."""

    code: str  # stable key, also Store.code, e.g. "amazon.com"
    display_name: str

    def normalize(self, text: str) -> str:
        """The product reference (for Amazon: the ASIN) named by ``text``.

        Raises :class:`scraping.inputs.InvalidProductReference` with a user-facing message.
        """
        ...

    def product_url(self, ref: str) -> str:
        """The canonical public URL of the product, for display and links (never fetched as is)."""
        ...

    def fetch_url(self, ref: str) -> str:
        """The URL :meth:`scrape` requests for ``ref`` (the admin shows it on each run)."""
        ...

    def scrape(self, ref: str) -> ScrapeResult:
        """Fetch and classify the product page.

        Never raises for an expected outcome (timeouts, blocks, unparseable pages are results);
        only a programming error (e.g. an invalid ``ref``) raises.
        """
        ...


def result_from_fetch_error(error: FetchError, *, asin: str | None, duration_ms: int) -> ScrapeResult:
    """A ScrapeResult for a fetch that produced no usable response."""
    status = ScrapeStatus.BLOCKED if error.kind in BLOCKED_KINDS else ScrapeStatus.FAILED
    return ScrapeResult(
        status=status,
        error_kind=error.kind,
        http_status=error.http_status,
        asin=asin,
        duration_ms=duration_ms,
        message=error.message,
    )
