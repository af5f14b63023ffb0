"""The typed result of one scrape: what every provider returns and what tracking stores.

``scraping`` knows nothing of users or trackers; tracking turns a :class:`ScrapeResult` into a
ScrapeRun row (and a PricePoint on success). A provider never raises for an expected outcome:
timeouts, blocks and unparseable pages are results with a status and an error kind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from enum import StrEnum


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
