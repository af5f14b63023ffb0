"""Read-only queries over tracking data (no writes, no side effects).

Price statistics for the API, and the scraping figures per store that ``/api/health/`` and
``/metrics`` read. Every query over the ever-growing run table is bounded by a ``created_at``
window on an index; the query counts and plans are locked in by the health and metrics tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Avg, Count, Max, Min, Q, Sum

from scraping.models import Store
from tracking.models import WORKER_LOST, PricePoint, Product, RunStatus, ScrapeRun


def product_stats(*, product_id: int, since: datetime | None = None, until: datetime | None = None) -> dict:
    """Min, max, average, current, all-time low (and when) and observation count over a window."""
    window = PricePoint.objects.filter(product_id=product_id)
    if since is not None:
        window = window.filter(observed_at__gte=since)
    if until is not None:
        window = window.filter(observed_at__lte=until)
    agg = window.aggregate(min=Min("price"), max=Max("price"), avg=Avg("price"), count=Count("pk"))
    low = PricePoint.objects.filter(product_id=product_id).order_by("price", "observed_at").first()
    current = PricePoint.objects.filter(product_id=product_id).order_by("-observed_at", "-pk").first()
    avg = agg["avg"]
    return {
        "min": agg["min"],
        "max": agg["max"],
        "avg": None if avg is None else Decimal(avg).quantize(Decimal("0.01")),
        "count": agg["count"],
        "current": None if current is None else current.price,
        "current_at": None if current is None else current.observed_at,
        "all_time_low": None if low is None else low.price,
        "all_time_low_at": None if low is None else low.observed_at,
        "currency": None if current is None else current.currency,
        "from": since,
        "to": until,
    }


# --- Scraping figures per store (health, metrics) --------------------------------------------


@dataclass
class StoreRuns:
    """Finished scrape runs of one store in a window, by status and by failure kind."""

    by_status: dict[str, int] = field(default_factory=dict)
    failures_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return sum(self.by_status.values())

    @property
    def blocked(self) -> int:
        return self.by_status.get(RunStatus.BLOCKED, 0)

    @property
    def failed(self) -> int:
        return self.by_status.get(RunStatus.FAILED, 0)

    @property
    def failures(self) -> int:
        """FAILED + BLOCKED runs: no price was recorded either way."""
        return self.failed + self.blocked

    @property
    def block_rate(self) -> float | None:
        """BLOCKED / finished runs; None when nothing finished (no rate to speak of)."""
        return self.blocked / self.finished if self.finished else None

    @property
    def failure_rate(self) -> float | None:
        """(FAILED + BLOCKED) / finished runs; None when nothing finished."""
        return self.failures / self.finished if self.finished else None


def store_runs(*, now: datetime) -> dict[int, dict[str, StoreRuns]]:
    """``{store_id: {"1h": StoreRuns, "24h": StoreRuns}}`` from one query over the last 24 hours.

    Windowed by ``created_at`` (index ``scrape_runs_created_idx``): never a full scan of the
    ever-growing run table. The hour is a conditional count inside the same query.
    """
    hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(hours=24)
    rows = (
        ScrapeRun.objects.filter(created_at__gte=day_ago)
        .exclude(status=RunStatus.RUNNING)
        .values("product__store_id", "status", "error_kind")
        .annotate(day=Count("pk"), hour=Count("pk", filter=Q(created_at__gte=hour_ago)))
        .order_by()
    )
    result: dict[int, dict[str, StoreRuns]] = {}
    for row in rows:
        windows = result.setdefault(row["product__store_id"], {"1h": StoreRuns(), "24h": StoreRuns()})
        for window, count in (("1h", row["hour"]), ("24h", row["day"])):
            if not count:
                continue
            runs = windows[window]
            runs.by_status[row["status"]] = runs.by_status.get(row["status"], 0) + count
            if row["status"] != RunStatus.SUCCESS:
                kind = row["error_kind"] or "unknown"
                runs.failures_by_kind[kind] = runs.failures_by_kind.get(kind, 0) + count
    return result


def overdue_products(*, now: datetime, late_by: timedelta) -> dict[int, int]:
    """``{store_id: count}`` of products due for at least ``late_by`` that are still waiting.

    Waiting: due (:meth:`~tracking.models.ProductQuerySet.due`: no live claim, an enabled
    tracker) since ``now - late_by``. Disabled stores are left out: pausing a store is deliberate,
    not a fault. Products in failure backoff are not due, so not counted. The store ids come
    first (a list subquery) so the due products are a range of ``products_store_due_idx`` per
    store; joining the store instead made SQLite read that whole index.
    """
    enabled_stores = Store.objects.filter(enabled=True).values("pk")
    rows = (
        Product.objects.filter(store_id__in=enabled_stores)
        .due(now, horizon=now - late_by)
        .values("store_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {row["store_id"]: row["n"] for row in rows}


@dataclass(frozen=True, slots=True)
class SuccessGap:
    """A store's newest successful scrape and the failed attempts after it."""

    last_success: datetime | None
    # FAILED and BLOCKED runs created after the last success (at most the lookback back).
    failures: int
    # When the first of them was created; None when there is none.
    failing_since: datetime | None


def success_gap(*, store_id: int, now: datetime, lookback: timedelta) -> SuccessGap:
    """When the store last scraped successfully, and how many attempts have failed since.

    Two range scans of the last ``lookback`` (index ``scrape_runs_status_idx``): the newest
    success, then the failures after it. A success older than that comes from the products'
    cached ``last_success_at`` (the same instant the run recorded) over this store's products
    only; an unbounded walk of the runs would read every other store's successes to find an old
    one.
    """
    since = now - lookback
    newest = (
        ScrapeRun.objects.filter(status=RunStatus.SUCCESS, product__store_id=store_id, created_at__gte=since)
        .order_by("-created_at")
        .values_list("created_at", "finished_at")
        .first()
    )
    if newest is not None:
        since, last = newest
    else:
        last = Product.objects.filter(store_id=store_id).aggregate(last=Max("last_success_at"))["last"]
    failed = ScrapeRun.objects.filter(
        product__store_id=store_id, status__in=[RunStatus.FAILED, RunStatus.BLOCKED], created_at__gt=since
    ).aggregate(count=Count("pk"), first=Min("created_at"))
    return SuccessGap(last_success=last, failures=failed["count"], failing_since=failed["first"])


def last_success_by_store(*, store_ids: list[int]) -> dict[int, datetime | None]:
    """The newest cached ``last_success_at`` of each store's products, in one query: what a store
    with no run in the last day last achieved (21 marketplaces, most of them idle, must not cost
    a query each)."""
    rows = (
        Product.objects.filter(store_id__in=store_ids)
        .values("store_id")
        .annotate(last=Max("last_success_at"))
        .order_by()
    )
    return {row["store_id"]: row["last"] for row in rows}


def store_has_tracked_products(*, store_id: int) -> bool:
    """Whether some product of the store has an enabled tracker.

    A product nobody tracks has no next check, so ``next_scrape_at`` not null keeps this a range
    of ``products_store_due_idx``.
    """
    return Product.objects.filter(store_id=store_id, next_scrape_at__isnull=False).with_enabled_trackers().exists()


@dataclass(frozen=True, slots=True)
class DurationHistogram:
    """One store's finished runs in a window, counted into cumulative duration buckets."""

    store_id: int
    # Runs at or below each bound, in the order of the bounds asked for.
    cumulative: tuple[int, ...]
    total: int
    total_seconds: float


def scrape_durations(*, since: datetime, bounds_seconds: Sequence[float]) -> list[DurationHistogram]:
    """Per store, the runs finished since ``since`` by duration, in one query over the window.

    A lost worker's run has no real duration (it is recorded as 0), so it is left out.
    """
    buckets = {
        f"le_{index}": Count("pk", filter=Q(duration_ms__lte=int(bound * 1000)))
        for index, bound in enumerate(bounds_seconds)
    }
    rows = (
        ScrapeRun.objects.filter(created_at__gte=since)
        .exclude(status=RunStatus.RUNNING)
        .exclude(error_kind=WORKER_LOST)
        .values("product__store_id")
        .annotate(total=Count("pk"), total_ms=Sum("duration_ms"), **buckets)
        .order_by()
        .values_list("product__store_id", "total", "total_ms", *buckets)
    )
    return [
        DurationHistogram(
            store_id=store_id, cumulative=tuple(cumulative), total=total, total_seconds=(total_ms or 0) / 1000
        )
        for store_id, total, total_ms, *cumulative in rows
    ]
