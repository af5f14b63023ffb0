"""Per-store scraping policy, held in the database and edited in the admin.

Environment variables only seed a store's row the first time it is used (:func:`get_store`);
after that the row rules. Single-row questions are methods here; the state machines that move
the breaker and the request slot are in :mod:`scraping.policy`, and a change of the policy goes
through :func:`scraping.services.store_update_policy`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.validators import RegexValidator, URLValidator
from django.db import models
from django.db.models import F, Q

from scraping.marketplaces import DEFAULT_MARKETPLACE, PLAUSIBLE_MAXIMUM, find_marketplace
from scraping.results import MAX_STORABLE_PRICE


def default_min_interval_minutes() -> int:
    """Seed for a new store: ``SCRAPE_MIN_INTERVAL_MINUTES``."""
    return settings.SCRAPE_MIN_INTERVAL_MINUTES


def default_requests_per_minute() -> int:
    """Seed for a new store: ``SCRAPE_RATE_PER_MINUTE``."""
    return settings.SCRAPE_RATE_PER_MINUTE


class Store(models.Model):
    """One store we scrape (``amazon.com``): its politeness limits and circuit-breaker state."""

    class BreakerState(models.TextChoices):
        CLOSED = "closed", "Closed (scraping)"
        OPEN = "open", "Open (paused after blocks)"
        HALF_OPEN = "half_open", "Half-open (probing)"

    code = models.CharField(max_length=50, unique=True, help_text="Provider code, e.g. amazon.com.")
    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True, help_text="Untick to pause all scraping of this store.")
    # What the marketplace's pages show and speak (seeded from scraping.marketplaces): prices with
    # an ambiguous symbol ("$" on amazon.ca) are read in this currency, and Accept-Language asks
    # for this language, so the parser sees the texts it knows.
    currency = models.CharField(
        max_length=3, default="USD", help_text="ISO 4217 code of the marketplace's currency, e.g. EUR."
    )
    language = models.CharField(
        max_length=35,
        default="en-US",
        validators=[RegexValidator(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$", "A language tag such as de-DE.")],
        help_text="Language asked for in Accept-Language (a BCP 47 tag such as de-DE).",
    )
    base_url = models.URLField(
        blank=True,
        default="",
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Where product pages are fetched from (ASIN appended as /dp/ASIN). Blank: STORE_BASE_URLS, "
        "then AMAZON_BASE_URL for amazon.com, then https://www.<code>.",
    )

    min_interval_minutes = models.PositiveIntegerField(
        default=default_min_interval_minutes,
        help_text="A product is fetched at most once per this many minutes, however many users track it.",
    )
    requests_per_minute = models.PositiveIntegerField(
        default=default_requests_per_minute, help_text="Request budget across all workers."
    )
    concurrency = models.PositiveSmallIntegerField(default=4, help_text="Maximum scrapes in flight at once.")
    backoff_base_minutes = models.PositiveIntegerField(
        default=5, help_text="Delay after a product's first failure; doubles with each further failure."
    )
    backoff_max_minutes = models.PositiveIntegerField(default=1440, help_text="Upper bound of the failure backoff.")

    breaker_threshold = models.PositiveIntegerField(
        default=5, help_text="BLOCKED outcomes within the window that open the circuit breaker."
    )
    breaker_window_minutes = models.PositiveIntegerField(default=15)
    breaker_cooldown_minutes = models.PositiveIntegerField(
        default=30, help_text="How long the breaker stays open before one probe request is allowed."
    )
    breaker_state = models.CharField(max_length=10, choices=BreakerState.choices, default=BreakerState.CLOSED)
    breaker_opened_at = models.DateTimeField(null=True, blank=True)
    breaker_reason = models.CharField(max_length=200, blank=True, default="")

    # A scraped price outside this range is a FAILED run (implausible_price), never a price point:
    # one misparsed page must not become history, an alert or a 12-digit "current price".
    min_plausible_price = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=Decimal("0.01"),
        help_text="A scraped price below this is treated as a parsing error (FAILED, implausible_price).",
    )
    max_plausible_price = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=Decimal("1000000.00"),
        help_text="A scraped price above this is treated as a parsing error (FAILED, implausible_price).",
    )

    next_request_at = models.DateTimeField(
        null=True, blank=True, help_text="The rate limiter's next free request slot."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "stores"
        ordering = ["code"]
        constraints = [
            # Zero would divide by zero in the rate limiter or stop the store without saying so;
            # pausing a store is what `enabled` is for.
            models.CheckConstraint(condition=Q(min_interval_minutes__gte=1), name="store_min_interval_positive"),
            models.CheckConstraint(condition=Q(requests_per_minute__gte=1), name="store_rate_positive"),
            models.CheckConstraint(condition=Q(concurrency__gte=1), name="store_concurrency_positive"),
            models.CheckConstraint(condition=Q(backoff_base_minutes__gte=1), name="store_backoff_base_positive"),
            models.CheckConstraint(
                condition=Q(backoff_max_minutes__gte=F("backoff_base_minutes")), name="store_backoff_max_gte_base"
            ),
            models.CheckConstraint(condition=Q(breaker_threshold__gte=1), name="store_breaker_threshold_positive"),
            models.CheckConstraint(condition=Q(breaker_window_minutes__gte=1), name="store_breaker_window_positive"),
            models.CheckConstraint(
                condition=Q(breaker_state__in=["closed", "open", "half_open"]), name="store_breaker_state_valid"
            ),
            # An empty range would fail every scrape of the store; a maximum beyond what the price
            # columns hold would let the database, not the classifier, refuse a price.
            models.CheckConstraint(
                condition=Q(min_plausible_price__gte=0)
                & Q(max_plausible_price__gte=F("min_plausible_price"))
                & Q(max_plausible_price__lte=MAX_STORABLE_PRICE),
                name="store_plausible_price_range_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.code

    def fetch_base_url(self) -> str:
        """Where this store's product pages are fetched from (``/dp/ASIN`` is appended).

        The row's ``base_url`` when an admin set one; else ``STORE_BASE_URLS[code]`` (tests and
        the demo point marketplaces at a fake store); else ``AMAZON_BASE_URL`` for amazon.com;
        else the marketplace's public site. Read at call time, so a change applies to the next
        fetch.
        """
        if self.base_url:
            return self.base_url
        configured = settings.STORE_BASE_URLS.get(self.code)
        if configured:
            return configured
        if self.code == DEFAULT_MARKETPLACE:
            return settings.AMAZON_BASE_URL
        marketplace = find_marketplace(self.code)
        return marketplace.public_base_url if marketplace is not None else f"https://www.{self.code}"

    def breaker_cooldown_ends_at(self) -> datetime | None:
        """When the breaker's probe may go: opened + cooldown (past once half-open); None when closed.

        None too for an open breaker without an opening time, which only a hand-edited row has.
        """
        if self.breaker_state == Store.BreakerState.CLOSED or self.breaker_opened_at is None:
            return None
        return self.breaker_opened_at + timedelta(minutes=self.breaker_cooldown_minutes)

    def breaker_allows_manual(self) -> bool:
        """Manual scrapes (users' and the admin's) are refused while the breaker is open or probing."""
        return self.breaker_state == Store.BreakerState.CLOSED

    def allows_manual_scrape(self) -> bool:
        """Whether a manual scrape may be queued now: the store is enabled and its breaker closed."""
        return self.enabled and self.breaker_allows_manual()


def get_store(code: str) -> Store:
    """The policy row of store ``code``, created from the settings defaults on first use.

    Safe under concurrency: two workers creating the row at once both get the same row
    (``get_or_create`` retries the read when the unique ``code`` makes the second insert fail).
    """
    try:
        return Store.objects.get(code=code)
    except Store.DoesNotExist:
        store, _ = Store.objects.get_or_create(code=code, defaults=_seed(code))
        return store


def _seed(code: str) -> dict[str, object]:
    """A new row's name, currency, language and plausible maximum: the marketplace's, else the
    provider's name."""
    if (marketplace := find_marketplace(code)) is not None:
        return {
            "name": marketplace.name,
            "currency": marketplace.currency,
            "language": marketplace.language,
            "max_plausible_price": PLAUSIBLE_MAXIMUM[marketplace.currency],
        }
    # Imported here: the providers pull in the HTTP and parsing stack, which models need not load.
    from scraping.providers import UnknownProvider, get_provider

    try:
        return {"name": get_provider(code).display_name}
    except UnknownProvider:
        return {"name": code}
