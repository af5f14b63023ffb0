"""Products, trackers, scrape runs and the append-only price history.

Invariants live in the database (``Meta.constraints``), not only in Python: one product per
store + ASIN, one tracker per user + product, at most one price point per run, one run per
dispatch claim (so a redelivered task cannot record twice).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

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
    """A user's interest in a product: interval, enabled, and its alert rules (:class:`AlertRule`).

    A tracker without rules only records history ("watch only"). ``target_price`` and ``armed``
    are the compatibility view of its first ``below_target`` rule (the ``target_price``
    shorthand of the API creates one); they read the rules, so load trackers with
    ``prefetch_related("rules")`` when listing them.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="trackers")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="trackers")
    interval_minutes = models.PositiveIntegerField()
    enabled = models.BooleanField(default=True)
    # When this tracker last raised an alert the user is told about (any rule; suppressed
    # firings excluded).
    last_alert_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TrackerQuerySet.as_manager()

    class Meta:
        db_table = "tracking_configs"
        constraints = [
            models.UniqueConstraint(fields=["user", "product"], name="tracking_configs_user_product_unique"),
            models.CheckConstraint(condition=Q(interval_minutes__gte=1), name="tracking_configs_interval_positive"),
        ]
        indexes = [
            # Scrape finish: the enabled trackers of one product (evaluate alerts, interval).
            models.Index(fields=["product", "enabled"], name="tracking_configs_product_idx"),
            # API list: a user's trackers, newest first.
            models.Index(fields=["user", "-created_at"], name="tracking_configs_user_idx"),
        ]

    def __str__(self) -> str:
        # Reads the user and the rules unless they were loaded with the tracker.
        target = self.target_rule
        if not self.enabled:
            state = "disabled"
        elif target is None:
            state = "enabled"
        else:
            state = "armed" if target.armed else "disarmed"
        aim = f"target {target.price}" if target is not None else "no target"
        return f"tracker #{self.pk} ({self.user.email}): {aim}, {state}"

    @property
    def target_rule(self) -> AlertRule | None:
        """The first ``below_target`` rule (the one ``target_price`` names), or None."""
        targets = [rule for rule in self.rules.all() if rule.kind == RuleKind.BELOW_TARGET]
        return min(targets, key=lambda rule: rule.pk) if targets else None

    @property
    def target_price(self) -> Decimal | None:
        """The price of :attr:`target_rule` (None: no target, watch only or other rules)."""
        rule = self.target_rule
        return None if rule is None else rule.price

    @property
    def armed(self) -> bool | None:
        """Whether :attr:`target_rule` is armed (None without a target)."""
        rule = self.target_rule
        return None if rule is None else rule.armed


class RuleKind(models.TextChoices):
    BELOW_TARGET = "below_target", "Price at or below a target"
    DROP_PERCENT = "drop_percent", "Price drop by a percentage"
    NEW_LOW = "new_low", "New lowest price"
    BACK_IN_STOCK = "back_in_stock", "Back in stock"
    ANY_CHANGE = "any_change", "Any price change"


class Repeat(models.TextChoices):
    ONCE = "once", "Once per crossing"
    EACH_LOWER = "each_lower", "Once per crossing, then at each lower price"


class Direction(models.TextChoices):
    BOTH = "both", "Up or down"
    DOWN = "down", "Down"
    UP = "up", "Up"


# The order in which reasons are listed; an alert email's subject names the first.
RULE_STRENGTH: tuple[str, ...] = (
    RuleKind.BELOW_TARGET,
    RuleKind.NEW_LOW,
    RuleKind.DROP_PERCENT,
    RuleKind.BACK_IN_STOCK,
    RuleKind.ANY_CHANGE,
)

# new_low: the window, in days (null: all time).
NEW_LOW_MAX_DAYS = 3650
# A cooldown longer than a year is a disabled rule by another name.
MAX_COOLDOWN_MINUTES = 60 * 24 * 365

# Which parameter columns each kind uses; the others stay null (or blank), in the database too.
RULE_PARAMETERS: dict[str, tuple[str, ...]] = {
    RuleKind.BELOW_TARGET: ("price", "repeat"),
    RuleKind.DROP_PERCENT: ("percent",),
    RuleKind.NEW_LOW: ("days",),
    RuleKind.BACK_IN_STOCK: (),
    RuleKind.ANY_CHANGE: ("direction",),
}


def plain_number(value: Decimal | None) -> str:
    """``12.5`` for ``Decimal("12.50")``, ``10`` for ``Decimal("10.00")`` (no exponent, no trailing zeros)."""
    if value is None:
        return "-"
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _unused(*columns: str) -> Q:
    """The parameter columns a kind does not use are null (decimals, days) or blank (choices)."""
    condition = Q()
    for column in columns:
        blank = column in ("repeat", "direction")
        condition &= Q(**{column: ""}) if blank else Q(**{f"{column}__isnull": True})
    return condition


class AlertRule(models.Model):
    """One alert rule of a tracker: when an observation of the product alerts its user.

    The kinds, their parameters and when they fire are in :mod:`tracking.services.evaluate`.
    Parameters are typed columns (not JSON) so the database checks them: each kind has its
    own, the others are null. ``armed`` and ``lowest_alerted`` are the state of
    ``below_target`` (the other kinds compare with the price history and keep no state);
    ``last_fired_at`` serves the cooldown. Evaluation changes the state with conditional
    UPDATEs, like the old tracker-level ``armed`` flag.
    """

    tracker = models.ForeignKey(Tracker, on_delete=models.CASCADE, related_name="rules")
    kind = models.CharField(max_length=16, choices=RuleKind.choices)
    # below_target
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    repeat = models.CharField(max_length=10, choices=Repeat.choices, blank=True, default="")
    # drop_percent: 0 < percent < 100
    percent = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    # new_low: 1..3650, or null for all time
    days = models.PositiveIntegerField(null=True, blank=True)
    # any_change
    direction = models.CharField(max_length=4, choices=Direction.choices, blank=True, default="")
    # No alert from this rule within this many minutes of its last one (0: none).
    cooldown_minutes = models.PositiveIntegerField(default=0)

    # State. below_target: armed until it fires, re-armed by a price above ``price``; with
    # each_lower, ``lowest_alerted`` is the lowest price it fired at since it last disarmed.
    armed = models.BooleanField(default=True)
    lowest_alerted = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    # When this rule last took part in an alert the user is told about (not a suppressed one).
    last_fired_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "alert_rules"
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=RuleKind.values), name="alert_rules_kind_valid"),
            # One constraint for all kinds: on SQLite every added constraint rebuilds the table.
            models.CheckConstraint(
                condition=(
                    Q(
                        kind=RuleKind.BELOW_TARGET,
                        price__gt=0,
                        price__lte=MAX_STORABLE_PRICE,
                        repeat__in=Repeat.values,
                    )
                    & _unused("percent", "days", "direction")
                )
                | (
                    Q(kind=RuleKind.DROP_PERCENT, percent__gt=0, percent__lt=100)
                    & _unused("price", "repeat", "days", "direction")
                )
                | (
                    Q(kind=RuleKind.NEW_LOW)
                    & (Q(days__isnull=True) | Q(days__gte=1, days__lte=NEW_LOW_MAX_DAYS))
                    & _unused("price", "repeat", "percent", "direction")
                )
                | (Q(kind=RuleKind.BACK_IN_STOCK) & _unused("price", "repeat", "percent", "days", "direction"))
                | (
                    Q(kind=RuleKind.ANY_CHANGE, direction__in=Direction.values)
                    & _unused("price", "repeat", "percent", "days")
                ),
                name="alert_rules_parameters_valid",
            ),
            models.CheckConstraint(
                condition=Q(cooldown_minutes__lte=MAX_COOLDOWN_MINUTES)
                & (Q(lowest_alerted__isnull=True) | Q(lowest_alerted__gte=0, lowest_alerted__lte=MAX_STORABLE_PRICE)),
                name="alert_rules_state_valid",
            ),
        ]
        # The tracker foreign key's index serves both queries: a tracker's rules (API, admin) and
        # the rules of a product's enabled trackers (WHERE tracker_id IN (...), scrape finish).

    def __str__(self) -> str:
        return f"rule #{self.pk} {self.describe()}"

    def describe(self) -> str:
        """The rule in words: ``below 90.00 (once)``, ``drop of 10%``, ``new low in 30 days``..."""
        match self.kind:
            case RuleKind.BELOW_TARGET:
                text = f"at or below {self.price}" + (
                    ", then each lower price" if self.repeat == Repeat.EACH_LOWER else ""
                )
            case RuleKind.DROP_PERCENT:
                text = f"drop of {plain_number(self.percent)}% or more"
            case RuleKind.NEW_LOW:
                text = "lowest price ever" if self.days is None else f"lowest price in {self.days} days"
            case RuleKind.BACK_IN_STOCK:
                text = "back in stock"
            case _:
                text = {"up": "any price rise", "down": "any price fall"}.get(self.direction, "any price change")
        if self.cooldown_minutes:
            text += f" (cooldown {self.cooldown_minutes} min)"
        return text


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
