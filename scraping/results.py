"""The typed result of one scrape: what every provider returns and what tracking stores.

``scraping`` knows nothing of users or trackers; tracking turns a :class:`ScrapeResult` into a
ScrapeRun row (and a PricePoint on success). A provider never raises for an expected outcome:
timeouts, blocks and unparseable pages are results with a status and an error kind.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

# The largest amount a price column (numeric(12,2)) can hold. Anything above is refused by
# the database (PostgreSQL: "numeric field overflow"; SQLite: the CHECK constraints in
# tracking.models), so it is classified here, before it reaches a transaction.
MAX_STORABLE_PRICE = Decimal("9999999999.99")
CENT = Decimal("0.01")


class ScrapeStatus(StrEnum):
    """Outcome of one attempt, decided before any price is parsed."""

    SUCCESS = "SUCCESS"
    BLOCKED = "BLOCKED"  # the store refused us (captcha, WAF, 429/503, "Sorry! Something went wrong")
    FAILED = "FAILED"  # anything else that gave no usable page


class ErrorKind(StrEnum):
    """Why an attempt was BLOCKED or FAILED (empty string on SUCCESS)."""

    NONE = ""
    # BLOCKED kinds
    CAPTCHA = "captcha"
    SOFT_CAPTCHA = "soft_captcha"
    WAF = "waf"
    RATE_LIMITED = "rate_limited"  # HTTP 429
    SERVICE_UNAVAILABLE = "service_unavailable"  # HTTP 503 / "Sorry! Something went wrong" dogs page
    # FAILED kinds
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    HTTP_4XX = "http_4xx"
    HTTP_5XX = "http_5xx"
    NOT_FOUND = "not_found"
    PARSE_ERROR = "parse_error"
    OVERSIZED = "oversized"
    NOT_HTML = "not_html"
    REDIRECT_REFUSED = "redirect_refused"
    # The page parsed, but its price cannot be right: outside the store's plausible range
    # (Store.min_plausible_price / max_plausible_price) or too big for the price column.
    IMPLAUSIBLE_PRICE = "implausible_price"


class Availability(StrEnum):
    """What a shopper would see next to the buy button."""

    IN_STOCK = "in_stock"
    OUT_OF_STOCK = "out_of_stock"
    UNAVAILABLE = "unavailable"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ParsedPage:
    """What the parser extracted from a page already classified as a product page.

    ``price`` is the buy-box price a shopper pays, or None when the page shows no price in a
    known no-price state (no featured offer, "add to cart to see price", variant not chosen,
    unavailable). ``rule`` names the parsing rule that produced the price (or the no-price state),
    so an admin can see which layout a page used.
    """

    asin: str | None
    title: str | None
    price: Decimal | None
    currency: str | None
    availability: Availability
    list_price: Decimal | None
    rule: str


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    """One attempt, fully classified. Built by providers; never raised, always returned."""

    status: ScrapeStatus
    error_kind: ErrorKind = ErrorKind.NONE
    http_status: int | None = None
    asin: str | None = None
    title: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    availability: Availability = Availability.UNKNOWN
    list_price: Decimal | None = None
    rule: str = ""
    bytes_received: int = 0
    duration_ms: int = 0
    # Short, safe, human-readable explanation for admins (never a traceback or a secret).
    message: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the page was a product page (with or without a price)."""
        return self.status is ScrapeStatus.SUCCESS

    def as_json(self) -> dict[str, object]:
        """JSON-ready dict: decimals as strings, enums as their values."""
        data = asdict(self)
        for key in ("price", "list_price"):
            data[key] = None if data[key] is None else str(data[key])
        for key in ("status", "error_kind", "availability"):
            data[key] = str(data[key])
        return data


def check_price_range(result: ScrapeResult, *, low: Decimal, high: Decimal) -> ScrapeResult:
    """``result`` with its prices checked against the plausible range ``[low, high]``.

    A price outside the range (or beyond what the column can hold, whatever ``high`` says)
    turns a SUCCESS into a FAILED result with ``IMPLAUSIBLE_PRICE``: one absurd page must never
    become a price point. A list price outside the range is only informational, so it is
    dropped and the price a shopper pays is kept. Prices in range are rounded to the cent, as
    the column stores them (half up, like PostgreSQL), so what is compared to a target is what
    is stored.
    """
    if not result.ok or result.price is None:
        return result
    high = min(high, MAX_STORABLE_PRICE)
    if not low <= result.price <= high:
        return dataclasses.replace(
            result,
            status=ScrapeStatus.FAILED,
            error_kind=ErrorKind.IMPLAUSIBLE_PRICE,
            message=f"The page's price {_short(result.price)} is outside this store's plausible range "
            f"{low}-{high}; not recorded.",
        )
    list_price = result.list_price
    if list_price is not None and not low <= list_price <= high:
        list_price = None
    return dataclasses.replace(
        result,
        price=result.price.quantize(CENT, rounding=ROUND_HALF_UP),
        list_price=None if list_price is None else list_price.quantize(CENT, rounding=ROUND_HALF_UP),
    )


def _short(amount: Decimal) -> str:
    # A parsed amount is digits only, but may be very long: keep the admin's message readable.
    text = str(amount)
    return text if len(text) <= 40 else text[:37] + "..."
