"""The one entry point providers use to turn an HTTP response into a :class:`ScrapeResult`.

``analyse`` classifies first (blocks and errors never reach the parser, so they never yield a
price) and parses only product pages. It never raises: whatever bytes arrive, the caller gets a
result it can record.
"""

from __future__ import annotations

import logging

from scraping.classify import classify
from scraping.parsing import parse_product_page
from scraping.results import ErrorKind, ScrapeResult, ScrapeStatus

logger = logging.getLogger(__name__)


def _charset(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type header, if any."""
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'").lower()
    return None


def analyse(
    http_status: int,
    content_type: str | None,
    body: bytes,
    *,
    asin_hint: str | None = None,
    currency_hint: str | None = None,
) -> ScrapeResult:
    """Classify a response and, for a product page, parse it.

    ``asin_hint`` is the ASIN that was requested; it is reported when the page itself names
    none. ``currency_hint`` is the currency of the marketplace it was requested from: it decides
    an ambiguous symbol ("$" on amazon.ca) when the page's canonical URL does not name its
    marketplace. A product page with neither a price nor a known no-price state is FAILED/parse_error
    (Amazon changed its layout, or served something we do not know): never a guess.
    """
    size = len(body)
    classification = classify(http_status, content_type, body)
    if not classification.is_product_page:
        return ScrapeResult(
            status=classification.status,
            error_kind=classification.error_kind,
            http_status=http_status,
            asin=asin_hint,
            bytes_received=size,
            message=classification.message,
        )
    try:
        parsed = parse_product_page(
            body, encoding=_charset(content_type), asin_hint=asin_hint, currency_hint=currency_hint
        )
    except Exception:  # a parser bug must become a recorded failure, not a crashed worker
        logger.exception("Parsing a %d-byte page failed", size)
        return ScrapeResult(
            status=ScrapeStatus.FAILED,
            error_kind=ErrorKind.PARSE_ERROR,
            http_status=http_status,
            asin=asin_hint,
            bytes_received=size,
            message="The page could not be parsed (internal parser error).",
        )
    if not parsed.rule:
        return ScrapeResult(
            status=ScrapeStatus.FAILED,
            error_kind=ErrorKind.PARSE_ERROR,
            http_status=http_status,
            asin=parsed.asin,
            title=parsed.title,
            currency=parsed.currency,
            availability=parsed.availability,
            bytes_received=size,
            message="No price found and no known no-price state: the page layout is not recognised.",
        )
    if parsed.price is not None:
        amount = f"{parsed.price} {parsed.currency}" if parsed.currency else str(parsed.price)
        message = f"Price {amount} ({parsed.rule})."
    else:
        message = f"No price shown ({parsed.rule})."
    return ScrapeResult(
        status=ScrapeStatus.SUCCESS,
        http_status=http_status,
        asin=parsed.asin,
        title=parsed.title,
        price=parsed.price,
        currency=parsed.currency,
        availability=parsed.availability,
        list_price=parsed.list_price,
        rule=parsed.rule,
        bytes_received=size,
        message=message,
    )
