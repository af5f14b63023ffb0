"""Products, trackers, scrape runs and the append-only price history.

Invariants live in the database (``Meta.constraints``), not only in Python: one product per
store + ASIN, one tracker per user + product, at most one price point per run, one run per
dispatch claim (so a redelivered task cannot record twice).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.db.models.base import ModelBase
from django.utils import timezone

from scraping.results import MAX_STORABLE_PRICE, Availability, ScrapeStatus


class AvailabilityChoices(models.TextChoices):
    IN_STOCK = Availability.IN_STOCK.value, "In stock"
    OUT_OF_STOCK = Availability.OUT_OF_STOCK.value, "Out of stock"
    UNAVAILABLE = Availability.UNAVAILABLE.value, "Unavailable"
    UNKNOWN = Availability.UNKNOWN.value, "Unknown"


class RunStatus(models.TextChoices):
    RUNNING = "RUNNING", "Running"
    SUCCESS = ScrapeStatus.SUCCESS.value, "Success"
    FAILED = ScrapeStatus.FAILED.value, "Failed"
    BLOCKED = ScrapeStatus.BLOCKED.value, "Blocked"


class Trigger(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    MANUAL = "manual", "Manual"
    RETRY = "retry", "Retry"
    INITIAL = "initial", "First fetch of a new product"
    RESCRAPE = "rescrape", "Rescrape requested by an operator"


# Error kinds that tracking adds to scraping.results.ErrorKind.
WORKER_LOST = "worker_lost"  # a run stayed RUNNING past its lease: the worker died or the task was lost
INTERNAL_ERROR = "internal_error"  # an unexpected exception in our own code (logged with traceback)
# A price far from the product's recent median that a second fetch did not repeat.
UNCONFIRMED_PRICE = "unconfirmed_price"


def _price_fits(column: str, *, nullable: bool) -> Q:
    """``0 <= column <= MAX_STORABLE_PRICE`` (or NULL, when the column may be).

    Every price column is numeric(12,2). PostgreSQL refuses a bigger value by itself, but SQLite
    stores it and then every read of the row fails (decimal.InvalidOperation), which made one
    absurd page unreadable for every user of the product. These CHECK constraints make every
    backend refuse it at write time; ``<=`` the largest storable amount rather than ``< 10^10``
    because SQLite would accept 9999999999.999 and then fail to read it back as 12 digits.
    """
    fits = Q(**{f"{column}__gte": 0, f"{column}__lte": MAX_STORABLE_PRICE})
    return Q(**{f"{column}__isnull": True}) | fits if nullable else fits


class ProductQuerySet(models.QuerySet["Product"]):
    """The scheduling rules as queries, written once (dispatcher, bulk commands, health)."""

    def claimable(self, now: datetime) -> ProductQuerySet:
        """No live claim: never claimed, or the claim's lease ran out."""
        return self.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))

    def with_enabled_trackers(self) -> ProductQuerySet:
        """Someone wants it checked: at least one enabled tracker."""
        return self.filter(Exists(Tracker.objects.filter(product=OuterRef("pk"), enabled=True)))

    def due(self, now: datetime, *, horizon: datetime | None = None) -> ProductQuerySet:
        """Due for a check by ``horizon`` (default ``now``), claimable now, and tracked."""
        return self.filter(next_scrape_at__lte=horizon or now).claimable(now).with_enabled_trackers()


class TrackerQuerySet(models.QuerySet["Tracker"]):
    def enabled(self) -> TrackerQuerySet:
        """Trackers that count: enabled ones (checks, alerts, limits)."""
        return self.filter(enabled=True)


class Product(models.Model):
    """One row per store + ASIN, shared by every user who tracks it.

    Holds the scheduling state (``next_scrape_at``, the dispatch claim, failure backoff) and a
    cache of the last observation so lists never have to read the history.
    """

    store = models.ForeignKey("scraping.Store", on_delete=models.PROTECT, related_name="products")
    asin = models.CharField(max_length=10)
    title = models.CharField(max_length=500, blank=True, default="")

    # Cache of the last successful observation.
    current_price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True, default="")
    list_price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    availability = models.CharField(
        max_length=16, choices=AvailabilityChoices.choices, default=AvailabilityChoices.UNKNOWN
    )
    last_success_at = models.DateTimeField(null=True, blank=True)

    # Last attempt, whatever its outcome.
    last_scraped_at = models.DateTimeField(null=True, blank=True)
    last_scrape_status = models.CharField(max_length=10, blank=True, default="")
    last_error_kind = models.CharField(max_length=32, blank=True, default="")
    last_rule = models.CharField(max_length=100, blank=True, default="")

    # Scheduling. Effective interval = smallest interval among enabled trackers, never below the
    # store minimum; recomputed whenever a tracker changes (tracking.services).
    interval_minutes = models.PositiveIntegerField(default=360)
    # Due when next_scrape_at <= now and no live claim. Null: nobody tracks it (never due).
    next_scrape_at = models.DateTimeField(null=True, blank=True)
    # Set by the dispatcher's conditional UPDATE; cleared when the run finishes. A claim that
    # outlives its lease (task lost by the Redis broker) simply expires and the product is due again.
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    backoff_until = models.DateTimeField(null=True, blank=True)
    # Set by ``manage.py rescrape_all``; cleared when the product is next claimed, whose run is then
    # labelled "rescrape" (not "retry" or "scheduled": an operator asked for it).
    rescrape_requested_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProductQuerySet.as_manager()

    class Meta:
        db_table = "products"
        constraints = [
            models.UniqueConstraint(fields=["store", "asin"], name="products_store_asin_unique"),
            models.CheckConstraint(condition=Q(interval_minutes__gte=1), name="products_interval_positive"),
            models.CheckConstraint(
                condition=Q(current_price__isnull=True) | Q(current_price__gte=0), name="products_price_not_negative"
            ),
            # One constraint for both columns: on SQLite every added constraint rebuilds the table.
            models.CheckConstraint(
                condition=_price_fits("current_price", nullable=True) & _price_fits("list_price", nullable=True),
                name="products_prices_fit_column",
            ),
        ]
        indexes = [
            # Dispatcher: WHERE store = s AND next_scrape_at <= now ORDER BY next_scrape_at LIMIT budget.
            # (With next_scrape_at alone, SQLite walked the store's whole FK index and sorted.)
            models.Index(fields=["store", "next_scrape_at"], name="products_store_due_idx"),
            # Dispatcher budget and health: a store's products with a live claim (in flight).
            models.Index(fields=["store", "claimed_until"], name="products_store_claimed_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.asin} {self.title[:60]}".strip()


class Tracker(models.Model):
    """A user's interest in a product: target price, interval, and the alert state.

    ``armed`` implements "one email per crossing": a tracker is armed when created; a price at
    or below target while armed fires one alert and disarms; a price above target re-arms.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="trackers")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="trackers")
    target_price = models.DecimalField(max_digits=12, decimal_places=2)
    interval_minutes = models.PositiveIntegerField()
    enabled = models.BooleanField(default=True)
    armed = models.BooleanField(default=True)
    last_alert_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TrackerQuerySet.as_manager()

    class Meta:
        db_table = "tracking_configs"
        constraints = [
            models.UniqueConstraint(fields=["user", "product"], name="tracking_configs_user_product_unique"),
            models.CheckConstraint(condition=Q(target_price__gt=0), name="tracking_configs_target_positive"),
            models.CheckConstraint(condition=Q(interval_minutes__gte=1), name="tracking_configs_interval_positive"),
        ]
        indexes = [
            # Scrape finish: the enabled trackers of one product (evaluate alerts, interval).
            models.Index(fields=["product", "enabled"], name="tracking_configs_product_idx"),
            # API list: a user's trackers, newest first.
            models.Index(fields=["user", "-created_at"], name="tracking_configs_user_idx"),
        ]

    def __str__(self) -> str:
        # Reads the user unless it was loaded with the tracker (admin inlines and titles do).
        state = "disabled" if not self.enabled else "armed" if self.armed else "disarmed"
        return f"tracker #{self.pk} ({self.user.email}): target {self.target_price}, {state}"


class ScrapeRun(models.Model):
    """Every attempt to fetch a product, with its outcome. An audit record: never edited by hand."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="runs")
    # Idempotency key (with product): the dispatch claim this run executes. A redelivered task
    # finds the run already there and does nothing, so it can never record a second result.
    claim_token = models.UUIDField(default=uuid.uuid4)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.SCHEDULED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.RUNNING)
    error_kind = models.CharField(max_length=32, blank=True, default="")
    message = models.CharField(max_length=500, blank=True, default="")
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    bytes_received = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    rule = models.CharField(max_length=100, blank=True, default="")
    availability = models.CharField(max_length=16, blank=True, default="")
    # host:pid of the worker process that executed the run (forensics across several hosts).
    worker = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A RUNNING run past this time is closed as FAILED/worker_lost by the recovery sweep.
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "scrape_runs"
        constraints = [
            models.UniqueConstraint(fields=["product", "claim_token"], name="scrape_runs_one_per_claim"),
            models.CheckConstraint(
                condition=Q(status="RUNNING", finished_at__isnull=True)
                | Q(finished_at__isnull=False, status__in=["SUCCESS", "FAILED", "BLOCKED"]),
                name="scrape_runs_finished_iff_not_running",
            ),
        ]
        indexes = [
            # Product page / API: recent runs of one product.
            models.Index(fields=["product", "-created_at"], name="scrape_runs_product_idx"),
            # API and admin lists newest first, filtered by status; block rate over a window.
            models.Index(fields=["status", "-created_at"], name="scrape_runs_status_idx"),
            models.Index(fields=["-created_at"], name="scrape_runs_created_idx"),
            # Admin and metrics: runs filtered by error kind, newest first.
            models.Index(fields=["error_kind", "-created_at"], name="scrape_runs_error_kind_idx"),
            # Per-user manual scrape limit: runs requested by a user in the last hour.
            models.Index(fields=["requested_by", "-created_at"], name="scrape_runs_requester_idx"),
            # Recovery sweep: RUNNING runs whose lease expired.
            models.Index(fields=["lease_until"], condition=Q(status="RUNNING"), name="scrape_runs_running_idx"),
        ]

    def __str__(self) -> str:
        # Reads the product unless it was loaded with the run (the admin loads it).
        outcome = f"{self.status} ({self.error_kind})" if self.error_kind else self.status
        return f"Run #{self.pk} of {self.product.asin}: {outcome} at {to_the_second(self.created_at)}"


def to_the_second(moment: datetime | None) -> str:
    """``moment`` in the current time zone, to the second and with the zone: ``2026-03-02 10:15:42 UTC``."""
    if moment is None:
        return "-"
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")


class AppendOnlyError(Exception):
    """Raised when code tries to update or delete a price point."""


class PricePoint(models.Model):
    """One successful observation with a price. Append-only: never updated or deleted by the app."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="price_points")
    # One price point per run at most, in the database: a run finished twice cannot append twice.
    run = models.OneToOneField(ScrapeRun, on_delete=models.PROTECT, related_name="price_point")
    price = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    list_price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    availability = models.CharField(max_length=16, choices=AvailabilityChoices.choices)
    observed_at = models.DateTimeField()

    class Meta:
        db_table = "price_history"
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="price_history_price_not_negative"),
            models.CheckConstraint(
                condition=Q(list_price__isnull=True) | Q(list_price__gte=0),
                name="price_history_list_price_not_negative",
            ),
            models.CheckConstraint(
                condition=_price_fits("price", nullable=False) & _price_fits("list_price", nullable=True),
                name="price_history_prices_fit_column",
            ),
        ]
        indexes = [
            # History and stats: one product's points in a time window, in time order.
            models.Index(fields=["product", "observed_at"], name="price_history_product_idx"),
            # Stats: the all-time low (WHERE product_id = ? ORDER BY price, observed_at LIMIT 1) is
            # one index probe instead of a sort of the product's whole history on every request.
            models.Index(fields=["product", "price", "observed_at"], name="price_history_low_idx"),
        ]

    def __str__(self) -> str:
        amount = f"{self.price} {self.currency}".strip()
        return f"Price point #{self.pk} of {self.product.asin}: {amount} at {to_the_second(self.observed_at)}"

    def save(
        self,
        *,
        force_insert: bool | tuple[ModelBase, ...] = False,
        force_update: bool = False,
        using: str | None = None,
        update_fields: Iterable[str] | None = None,
    ) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Price history is append-only: a price point cannot be changed.")
        super().save(force_insert=force_insert, force_update=force_update, using=using, update_fields=update_fields)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Price history is append-only: a price point cannot be deleted.")


class SchedulerLease(models.Model):
    """A named lease so a periodic job (the dispatcher) runs on one process at a time.

    Claimed with one conditional UPDATE (docs/decisions.md, "Dispatcher lease": 6 concurrent callers, exactly 1 ran, on
    SQLite and PostgreSQL).
    """

    name = models.CharField(max_length=50, primary_key=True)
    holder = models.CharField(max_length=100, blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "scheduler_leases"

    def __str__(self) -> str:
        return self.name


class ManualScrapeRequest(models.Model):
    """One accepted manual scrape request: what the per-user hourly limit counts.

    Written in the transaction that accepts the request, under the user's row lock, so concurrent
    requests are counted one after another. (Counting the runs did not work: the worker creates
    them later.) Only the last hour matters; older rows are deleted as new ones are written.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "manual_scrape_requests"
        indexes = [
            # The limit: a user's requests in the last hour.
            models.Index(fields=["user", "created_at"], name="manual_scrape_requests_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} @ {self.created_at:%Y-%m-%d %H:%M}"
