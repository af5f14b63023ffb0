"""Tracking workflows: trackers, the dispatcher, the scrape task body, recovery.

Views, tasks, commands and the admin call these keyword-only functions; none of them holds
business logic of its own. The flow is scrape -> record -> evaluate -> (hook) notify.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Avg, Count, Exists, F, IntegerField, Max, Min, OuterRef, Q, Subquery, Value
from django.db.models.functions import Greatest
from django.utils import timezone
from rest_framework import status
from rest_framework.exceptions import ValidationError

from accounts.models import User
from pricetracker.api import ApplicationError
from scraping.inputs import InvalidProductReference
from scraping.models import Store, get_store
from scraping.providers import get_provider
from scraping.results import ScrapeResult, ScrapeStatus
from tracking import policy
from tracking.hooks import crossing_handlers
from tracking.models import (
    INTERNAL_ERROR,
    WORKER_LOST,
    PricePoint,
    Product,
    RunStatus,
    ScrapeRun,
    TrackingConfig,
    Trigger,
)

if TYPE_CHECKING:
    from django_q.brokers import Broker

logger = logging.getLogger("tracking")


def worker_name() -> str:
    """host:pid of this process (computed per call: django-q2 forks workers after import)."""
    return f"{socket.gethostname()}:{os.getpid()}"


DEFAULT_STORE = "amazon.com"
# A claimed product is not due again until its claim expires. Long enough to cover the queue
# wait of a busy cluster; short enough that a task lost by the Redis broker is retried soon.
CLAIM_LEASE = timedelta(minutes=10)
# A run still RUNNING this long after it started is closed as worker_lost by the sweep. Covers
# the django-q2 task timeout (after which the worker is killed anyway) plus a margin.
RUN_LEASE_MARGIN = timedelta(seconds=30)
# How long a task may wait for a free request slot before it hands the product back (also
# bounded by what the django-q2 timeout leaves after the fetch itself, see max_slot_wait()).
MAX_SLOT_WAIT_SECONDS = 45.0
SLOT_POLL_SECONDS = 0.5
# Products the dispatcher may claim in one tick, across stores (the global budget).
DISPATCH_MAX_PER_TICK = 1000


def run_lease() -> timedelta:
    """How long a run may stay RUNNING before it is presumed lost."""
    return timedelta(seconds=int(settings.Q_CLUSTER["timeout"])) + RUN_LEASE_MARGIN  # type: ignore[arg-type]


# --- Products and trackers ------------------------------------------------------------------


def product_for_reference(*, reference: str, store_code: str = DEFAULT_STORE) -> Product:
    """Validate a URL or ASIN and return its (possibly new) Product. Never fetches the user's URL."""
    provider = get_provider(store_code)
    try:
        asin = provider.normalize(reference)
    except InvalidProductReference as exc:
        raise ValidationError({"url": [str(exc)]}) from None
    store = get_store(store_code)
    product, _ = Product.objects.get_or_create(
        store=store, asin=asin, defaults={"interval_minutes": settings.SCRAPE_DEFAULT_INTERVAL_MINUTES}
    )
    return product


def product_refresh_schedule(*, product_id: int, now: datetime | None = None) -> Product:
    """Recompute a product's interval from its enabled trackers and fix its next check.

    Interval = smallest among enabled trackers, never below the store minimum. No enabled
    tracker: never due (``next_scrape_at`` null). The next check never moves earlier than
    ``last_scraped_at + interval``, so adding a tracker never makes Amazon see us more often.
    """
    now = now or timezone.now()
    product = Product.objects.select_related("store").get(pk=product_id)
    smallest = TrackingConfig.objects.filter(product_id=product_id, enabled=True).aggregate(m=Min("interval_minutes"))[
        "m"
    ]
    fields: dict[str, object] = {}
    if smallest is None:
        fields["next_scrape_at"] = None
    else:
        interval = max(int(smallest), product.store.min_interval_minutes)
        fields["interval_minutes"] = interval
        if product.backoff_until and product.backoff_until > now:
            fields["next_scrape_at"] = product.backoff_until
        elif product.last_scraped_at is None:
            fields["next_scrape_at"] = product.next_scrape_at or now
        else:
            fields["next_scrape_at"] = product.last_scraped_at + timedelta(minutes=interval)
    Product.objects.filter(pk=product_id).update(**fields)
    for key, value in fields.items():
        setattr(product, key, value)
    return product


def store_apply_min_interval(*, store_id: int) -> int:
    """Re-derive every tracked product's interval of a store after its minimum interval changed.

    Interval = max(smallest enabled tracker interval, store minimum), in one UPDATE. A product
    whose interval rose to the new minimum is not due before ``last_scraped_at + minimum``
    (never earlier than it already was) unless it is backing off after failures; one whose
    interval fell keeps its next check and uses the shorter interval from its next scrape on.
    Returns how many products were updated.
    """
    minimum = Store.objects.values_list("min_interval_minutes", flat=True).get(pk=store_id)
    enabled = TrackingConfig.objects.filter(product=OuterRef("pk"), enabled=True)
    smallest = Subquery(enabled.order_by().values("product").annotate(m=Min("interval_minutes")).values("m")[:1])
    interval = Greatest(smallest, Value(minimum), output_field=IntegerField())
    products = Product.objects.filter(store_id=store_id).filter(Exists(enabled))
    updated = products.update(interval_minutes=interval)
    earliest = F("last_scraped_at") + timedelta(minutes=minimum)
    # Products backing off after failures keep their retry time (backoff has its own settings).
    products.filter(interval_minutes=minimum, consecutive_failures=0, next_scrape_at__lt=earliest).update(
        next_scrape_at=earliest
    )
    return updated


def _validate_interval(store: Store, interval_minutes: int) -> None:
    if interval_minutes < store.min_interval_minutes:
        raise ValidationError(
            {
                "interval_minutes": [
                    f"The minimum interval for {store.code} is {store.min_interval_minutes} minutes: "
                    "a product is never fetched more often than that."
                ]
            }
        )


# Atomic: a refusal (interval, limit, duplicate) must not leave behind the Product row created
# for the reference, or a client could grow the products table with 4xx responses.
@transaction.atomic
def tracker_create(
    *,
    user: User,
    reference: str,
    target_price: Decimal,
    interval_minutes: int | None = None,
    enabled: bool = True,
) -> TrackingConfig:
    """Start tracking a product for ``user``. A product never scraped is fetched right away."""
    product = product_for_reference(reference=reference)
    store = product.store
    if interval_minutes is None:
        interval = max(settings.SCRAPE_DEFAULT_INTERVAL_MINUTES, store.min_interval_minutes)
    else:
        _validate_interval(store, interval_minutes)
        interval = interval_minutes
    if enabled:
        active = TrackingConfig.objects.filter(user=user, enabled=True).count()
        if active >= user.max_trackers:
            raise ApplicationError(
                f"You already have {active} active trackers, the limit for your account "
                f"({user.max_trackers}). Disable or delete one first.",
                code="tracker_limit",
                status_code=status.HTTP_403_FORBIDDEN,
            )
    try:
        with transaction.atomic():
            tracker = TrackingConfig.objects.create(
                user=user, product=product, target_price=target_price, interval_minutes=interval, enabled=enabled
            )
    except IntegrityError:
        existing = TrackingConfig.objects.filter(user=user, product=product).values_list("pk", flat=True).first()
        raise ApplicationError(
            f"You already track {product.asin} (tracker {existing}). Change that tracker instead.",
            code="duplicate_tracker",
            status_code=status.HTTP_409_CONFLICT,
            extra={"tracker_id": existing},
        ) from None
    product = product_refresh_schedule(product_id=product.pk)
    if enabled and product.last_scraped_at is None:
        # The client should see title and price within seconds, not at the next dispatcher tick.
        # Still polite: the task waits for a free request slot like any other.
        token = product_claim(product_id=product.pk)
        if token is not None:
            enqueue_scrape(product_id=product.pk, claim_token=token, trigger=Trigger.INITIAL)
    elif enabled:
        tracker_evaluate_current(tracker=tracker)
    return tracker


def tracker_update(
    *,
    tracker: TrackingConfig,
    target_price: Decimal | None = None,
    interval_minutes: int | None = None,
    enabled: bool | None = None,
) -> TrackingConfig:
    """Change target, interval or enabled. A new target is re-evaluated against the current price."""
    fields: list[str] = []
    if interval_minutes is not None and interval_minutes != tracker.interval_minutes:
        _validate_interval(tracker.product.store, interval_minutes)
        tracker.interval_minutes = interval_minutes
        fields.append("interval_minutes")
    if enabled is not None and enabled != tracker.enabled:
        if enabled:
            active = TrackingConfig.objects.filter(user_id=tracker.user_id, enabled=True).count()
            if active >= tracker.user.max_trackers:
                raise ApplicationError(
                    f"You already have {active} active trackers, the limit for your account.",
                    code="tracker_limit",
                    status_code=status.HTTP_403_FORBIDDEN,
                )
        tracker.enabled = enabled
        fields.append("enabled")
    target_changed = target_price is not None and target_price != tracker.target_price
    if target_changed:
        tracker.target_price = target_price  # type: ignore[assignment]
        fields.append("target_price")
    if not fields:
        return tracker
    with transaction.atomic():
        tracker.save(update_fields=[*fields, "updated_at"])
        product_refresh_schedule(product_id=tracker.product_id)
        if target_changed:
            tracker_evaluate_current(tracker=tracker)
    return tracker


def tracker_delete(*, tracker: TrackingConfig) -> None:
    """Stop tracking. The product and its history stay: other users may track it."""
    product_id = tracker.product_id
    with transaction.atomic():
        tracker.delete()
        product_refresh_schedule(product_id=product_id)


def tracker_evaluate_current(*, tracker: TrackingConfig) -> None:
    """Re-evaluate a tracker against its product's latest price point (after a target change)."""
    point = PricePoint.objects.filter(product_id=tracker.product_id).order_by("-observed_at", "-pk").first()
    if point is None:
        return
    with transaction.atomic():
        _evaluate_tracker(tracker=tracker, point=point)


def _evaluate_tracker(*, tracker: TrackingConfig, point: PricePoint) -> None:
    """Apply the alert rule to one tracker: fire once on crossing, re-arm above target."""
    if not tracker.enabled:
        return
    if point.price <= tracker.target_price:
        # Conditional UPDATE: of two processes evaluating the same tracker, one disarms it.
        disarmed = TrackingConfig.objects.filter(pk=tracker.pk, armed=True, enabled=True).update(
            armed=False, last_alert_at=point.observed_at
        )
        if disarmed:
            tracker.armed = False
            for handler in crossing_handlers():
                handler(tracker, point)
    else:
        # Decided by the database row, not the in-memory object, which may be stale.
        TrackingConfig.objects.filter(pk=tracker.pk, armed=False).update(armed=True)
        tracker.armed = True


# --- Claims and enqueueing --------------------------------------------------------------------


def _claimable(now: datetime) -> Q:
    return Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)


def product_claim(*, product_id: int, now: datetime | None = None) -> uuid.UUID | None:
    """Claim one product for a scrape, whatever its schedule; None if a live claim exists."""
    now = now or timezone.now()
    token = uuid.uuid4()
    claimed = (
        Product.objects.filter(pk=product_id)
        .filter(_claimable(now))
        .update(claimed_until=now + CLAIM_LEASE, claim_token=token)
    )
    return token if claimed else None


@dataclass(frozen=True, slots=True)
class _ScrapeTask:
    product_id: int
    claim_token: uuid.UUID
    trigger: str
    requested_by_id: int | None


# The scrapes enqueued inside `_enqueued_together()` in this thread; None outside such a block.
_batch = threading.local()


def enqueue_scrape(
    *, product_id: int, claim_token: uuid.UUID, trigger: str, requested_by_id: int | None = None
) -> None:
    """Enqueue the scrape task once the current transaction commits (ids only)."""
    task = _ScrapeTask(product_id, claim_token, str(trigger), requested_by_id)
    batch: list[_ScrapeTask] | None = getattr(_batch, "tasks", None)
    if batch is not None:
        batch.append(task)
    else:
        transaction.on_commit(lambda: _send_scrapes([task]))


@contextlib.contextmanager
def _enqueued_together() -> Iterator[None]:
    """Send the scrapes enqueued in this block together, in one on_commit callback.

    Not for blocks with inner savepoints that may roll back: their scrapes would still be sent.
    The dispatcher's claim block has none.
    """
    tasks: list[_ScrapeTask] = []
    _batch.tasks = tasks
    try:
        yield
    finally:
        _batch.tasks = None
    if tasks:
        transaction.on_commit(lambda: _send_scrapes(tasks))


def _send_scrapes(tasks: list[_ScrapeTask]) -> None:
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    # Left to itself, async_task opens a new broker per task (a Redis connection pool; with the
    # ORM broker and CONN_MAX_AGE=0, a new database connection) and writes each task on its own:
    # a 1,000-claim tick spent 3.6 s enqueueing on SQLite (BENCHMARKS.md). So one broker for the
    # batch, and for the ORM and Redis brokers one write for all of it.
    broker = get_broker()
    collector = _PackageCollector.for_broker(broker)
    for task in tasks:
        async_task(
            "tracking.tasks.scrape_product",
            task.product_id,
            str(task.claim_token),
            task.trigger,
            task.requested_by_id,
            task_name=f"scrape-{task.product_id}-{str(task.claim_token)[:8]}",
            group="scrape",
            # Every scrape is recorded as a ScrapeRun; storing successful task results too made
            # django-q2's monitor take the SQLite write lock per task (BENCHMARKS.md). Failures are saved.
            save=False,
            broker=collector or broker,
        )
    if collector is not None:
        collector.flush()


class _PackageCollector:
    """Takes the broker's place in ``async_task``, which still builds, signs and announces
    (``pre_enqueue``) every package; :meth:`flush` then writes them all as the broker would one by
    one: a multi-row INSERT of ``OrmQ`` rows (ORM broker) or one multi-value RPUSH (Redis)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.list_key = broker.list_key
        self.packages: list[str] = []

    @classmethod
    def for_broker(cls, broker: Broker) -> _PackageCollector | None:
        from django_q.brokers.orm import ORM
        from django_q.brokers.redis_broker import Redis

        return cls(broker) if isinstance(broker, ORM | Redis) else None

    def enqueue(self, package: str) -> int:
        self.packages.append(package)
        return len(self.packages)

    def flush(self) -> None:
        from django_q.brokers.orm import ORM
        from django_q.conf import Conf
        from django_q.models import OrmQ

        if not self.packages:  # sync mode (tests): async_task ran every task inline instead
            return
        if isinstance(self.broker, ORM):
            # As ORM.enqueue: key falls back to the cluster name (OrmQ.key is not null), lock = now.
            key, now = self.list_key or Conf.CLUSTER_NAME, timezone.now()
            OrmQ.objects.using(Conf.ORM).bulk_create([OrmQ(key=key, payload=p, lock=now) for p in self.packages])
        else:
            self.broker.connection.rpush(self.list_key, *self.packages)  # as Redis.enqueue, in order


@dataclass
class DispatchReport:
    """What one dispatcher tick did."""

    ran: bool = True
    claimed: int = 0
    per_store: dict[str, int] = field(default_factory=dict)
    skipped_reason: str = ""


def dispatch_due_products(*, now: datetime | None = None, limit: int = DISPATCH_MAX_PER_TICK) -> DispatchReport:
    """Claim due products within each store's budget and enqueue one task per claim.

    Due: ``next_scrape_at <= now``, no live claim, at least one enabled tracker, store enabled
    and its breaker allowing. Claims are one conditional UPDATE per store batch, so two
    dispatchers running at once never claim the same product.
    """
    now = now or timezone.now()
    report = DispatchReport()
    remaining = limit
    for store in Store.objects.filter(enabled=True).order_by("pk"):
        if remaining <= 0:
            break
        in_flight = Product.objects.filter(store=store, claimed_until__gt=now).count()
        # One tick per minute: at most one minute's worth of requests, less what is still queued.
        budget = min(remaining, store.requests_per_minute - in_flight)
        breaker_budget = policy.breaker_dispatch_budget(store, now=now, in_flight=in_flight)
        if breaker_budget is not None:
            budget = min(budget, breaker_budget)
        if budget <= 0:
            report.per_store[store.code] = 0
            continue
        enabled_tracker = TrackingConfig.objects.filter(product=OuterRef("pk"), enabled=True)
        due = list(
            Product.objects.filter(store=store, next_scrape_at__lte=now)
            .filter(_claimable(now))
            .filter(Exists(enabled_tracker))
            .order_by("next_scrape_at")
            .values_list("pk", "consecutive_failures")[:budget]
        )
        if not due:
            report.per_store[store.code] = 0
            continue
        token = uuid.uuid4()
        ids = [pk for pk, _ in due]
        with transaction.atomic(), _enqueued_together():
            Product.objects.filter(pk__in=ids, next_scrape_at__lte=now).filter(_claimable(now)).update(
                claimed_until=now + CLAIM_LEASE, claim_token=token
            )
            won = set(Product.objects.filter(pk__in=ids, claim_token=token).values_list("pk", flat=True))
            for pk, failures in due:
                if pk in won:
                    trigger = Trigger.RETRY if failures else Trigger.SCHEDULED
                    enqueue_scrape(product_id=pk, claim_token=token, trigger=trigger)
        report.per_store[store.code] = len(won)
        report.claimed += len(won)
        remaining -= len(won)
    return report


# --- The scrape task body ------------------------------------------------------------------


def product_scrape(
    *, product_id: int, claim_token: uuid.UUID, trigger: str = Trigger.SCHEDULED, requested_by_id: int | None = None
) -> ScrapeRun | None:
    """Execute one claimed scrape: record a run, fetch politely, finish in one transaction.

    Returns None (and records nothing) when the claim is no longer ours or the run already
    exists, which is what a redelivered task sees.
    """
    deadline = time.monotonic() + max_slot_wait()
    try:
        started = _run_start(
            product_id=product_id, claim_token=claim_token, trigger=trigger, requested_by_id=requested_by_id
        )
    except IntegrityError:  # a concurrent delivery of the same task created the run first
        started = None
    if started is None:
        return None
    run, product, wait_seconds = started
    if wait_seconds is None:  # no request slot free right now: poll for one, or give the product back
        reservation = _wait_for_slot(store_id=product.store_id, run_id=run.pk, deadline=deadline)
        if reservation is None:
            return _run_defer(run=run, product=product)
        wait_seconds = reservation.wait_seconds
    if wait_seconds > 0:
        time.sleep(wait_seconds)

    try:
        result = get_provider(product.store.code).scrape(product.asin)
    except Exception:  # the provider never raises for expected outcomes; this is a bug
        logger.exception("scrape crashed", extra={"asin": product.asin})
        result = ScrapeResult(status=ScrapeStatus.FAILED, message="Internal error; see the worker log.")
        return run_finish(run=run, product=product, result=result, error_kind_override=INTERNAL_ERROR)
    return run_finish(run=run, product=product, result=result)


def _run_start(
    *, product_id: int, claim_token: uuid.UUID, trigger: str, requested_by_id: int | None
) -> tuple[ScrapeRun, Product, float | None] | None:
    """Check the claim, record the run and try to take a request slot, in one transaction.

    One transaction instead of three because on SQLite every write transaction queues for the
    single write lock: with four workers on two cores each hand-off cost idle CPU (BENCHMARKS.md,
    "One transaction to start a scrape"). Returns the run, the product (with its store) and the
    seconds to wait for the slot taken (None: no slot free yet), or None when there is nothing
    to do (claim lost, duplicate delivery, store paused or breaker open).
    """
    now = timezone.now()
    lease = run_lease()
    with transaction.atomic():
        # Still our claim? Extend it to cover the run. A redelivered task after the run finished
        # finds the claim cleared and stops here. On PostgreSQL this UPDATE also locks the
        # product row, so a second delivery of the same task waits here until we commit.
        if not Product.objects.filter(pk=product_id, claim_token=claim_token).update(claimed_until=now + lease):
            logger.info("scrape skipped: claim no longer held", extra={"product_id": product_id})
            return None
        product = Product.objects.select_related("store").get(pk=product_id)
        store = product.store
        if not store.enabled or store.breaker_state == Store.BreakerState.OPEN:
            # Queued before the store was paused or its breaker opened: hand the product back
            # unfetched, due when the breaker's cooldown ends (the probe goes first).
            resume = now
            if store.breaker_state == Store.BreakerState.OPEN and store.breaker_opened_at:
                resume = max(now, store.breaker_opened_at + timedelta(minutes=store.breaker_cooldown_minutes))
            Product.objects.filter(pk=product_id, claim_token=claim_token).update(
                claimed_until=None, claim_token=None, next_scrape_at=resume
            )
            logger.info("scrape skipped: store paused or breaker open", extra={"product_id": product_id})
            return None
        if ScrapeRun.objects.filter(product_id=product_id, claim_token=claim_token).exists():
            logger.info("scrape skipped: duplicate delivery", extra={"product_id": product_id})
            return None
        slot = policy.take_request_slot(store_id=store.pk, now=now, max_wait_seconds=max_slot_wait())
        run = ScrapeRun.objects.create(
            product_id=product_id,
            claim_token=claim_token,
            trigger=trigger,
            requested_by_id=requested_by_id,
            lease_until=now + lease,
            worker=worker_name(),
            started_at=slot,
        )
    wait = None if slot is None else max(0.0, (slot - timezone.now()).total_seconds())
    return run, product, wait


def max_slot_wait() -> float:
    """Seconds a task may wait for a request slot: the task timeout minus the fetch deadline and a margin."""
    timeout = float(settings.Q_CLUSTER["timeout"])  # type: ignore[arg-type]
    spare = timeout - settings.SCRAPE_TOTAL_TIMEOUT_SECONDS - 15
    return max(1.0, min(MAX_SLOT_WAIT_SECONDS, spare))


def _wait_for_slot(*, store_id: int, run_id: int, deadline: float) -> policy.SlotReservation | None:
    """Poll for a request slot until ``deadline`` (monotonic); None if none came free in time."""
    while True:
        time.sleep(SLOT_POLL_SECONDS)
        remaining = deadline - time.monotonic()
        reservation = policy.reserve_request_slot(
            store_id=store_id, run_id=run_id, max_wait_seconds=max(0.0, remaining)
        )
        if reservation is not None or remaining <= SLOT_POLL_SECONDS:
            return reservation


def _run_defer(*, run: ScrapeRun, product: Product) -> None:
    """No request slot came free in time: give the product back without fetching or counting a failure."""
    now = timezone.now()
    with transaction.atomic():
        ScrapeRun.objects.filter(pk=run.pk).delete()
        Product.objects.filter(pk=product.pk, claim_token=run.claim_token).update(
            claimed_until=None, claim_token=None, next_scrape_at=now + timedelta(minutes=1)
        )
    logger.info("scrape deferred: store request budget exhausted", extra={"asin": product.asin})
    return None


def run_finish(
    *, run: ScrapeRun, product: Product, result: ScrapeResult, error_kind_override: str | None = None
) -> ScrapeRun | None:
    """Record a finished attempt atomically: run, price point, product cache and backoff,
    breaker, and the trackers' alert state. Returns None if the run was already closed."""
    now = timezone.now()
    status_value = str(result.status)
    error_kind = error_kind_override or str(result.error_kind)
    with transaction.atomic():
        run_fields: dict[str, object] = {
            "status": status_value,
            "error_kind": error_kind,
            "message": result.message[:500],
            "http_status": result.http_status,
            "bytes_received": result.bytes_received,
            "duration_ms": result.duration_ms,
            "rule": result.rule[:100],
            "availability": str(result.availability) if result.ok else "",
            "finished_at": now,
        }
        closed = ScrapeRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(**run_fields)
        if not closed:
            # The recovery sweep closed it as lost while we were fetching: its product is
            # already due again, and recording now could duplicate the next run's work.
            logger.warning("scrape result discarded: run already closed", extra={"asin": product.asin})
            return None
        # What the UPDATE wrote, without reading the row back (the write lock is held meanwhile).
        for name, value in run_fields.items():
            setattr(run, name, value)
        store = product.store
        point = None
        fields: dict[str, object] = {
            "last_scraped_at": now,
            "last_scrape_status": status_value,
            "last_error_kind": error_kind,
            "last_rule": result.rule[:100],
            "claimed_until": None,
            "claim_token": None,
        }
        interval = timedelta(minutes=product.interval_minutes)
        if result.ok:
            fields.update(
                consecutive_failures=0,
                backoff_until=None,
                last_success_at=now,
                availability=str(result.availability),
                next_scrape_at=now + interval + timedelta(seconds=policy.jitter_seconds(interval)),
            )
            if result.title:
                fields["title"] = result.title[:500]
            if result.price is not None:
                fields.update(current_price=result.price, currency=result.currency or "", list_price=result.list_price)
                point = PricePoint.objects.create(
                    product=product,
                    run=run,
                    price=result.price,
                    currency=result.currency or "",
                    list_price=result.list_price,
                    availability=str(result.availability),
                    observed_at=now,
                )
            else:
                fields["current_price"] = None
        else:
            failures = product.consecutive_failures + 1
            delay = policy.backoff_delay(store, failures)
            # Never sooner than the product's own interval after a success would have been.
            delay = max(delay, timedelta(minutes=1))
            fields.update(consecutive_failures=failures, backoff_until=now + delay, next_scrape_at=now + delay)
        trackers = list(TrackingConfig.objects.filter(product_id=product.pk, enabled=True).select_related("user"))
        if not trackers:
            fields["next_scrape_at"] = None
        Product.objects.filter(pk=product.pk).update(**fields)
        policy.breaker_record(store_id=store.pk, status=status_value, now=now)
        if point is not None:
            for tracker in trackers:
                _evaluate_tracker(tracker=tracker, point=point)
    logger.info(
        "scrape %s %s %s %dms",
        product.asin,
        status_value,
        error_kind or "-",
        result.duration_ms,
        extra={"asin": product.asin, "status": status_value, "kind": error_kind, "duration_ms": result.duration_ms},
    )
    return run


def runs_recover_stale(*, now: datetime | None = None) -> int:
    """Close runs left RUNNING past their lease (worker killed, task lost) and make their
    products due again. Returns how many runs were closed."""
    now = now or timezone.now()
    closed = 0
    for run in ScrapeRun.objects.filter(status=RunStatus.RUNNING, lease_until__lt=now).only("pk", "product_id")[:500]:
        with transaction.atomic():
            if not ScrapeRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
                status=RunStatus.FAILED,
                error_kind=WORKER_LOST,
                message="The worker stopped before finishing (killed or timed out); the product is due again.",
                finished_at=now,
            ):
                continue
            Product.objects.filter(pk=run.product_id, claim_token=run.claim_token).update(
                claimed_until=None, claim_token=None, next_scrape_at=now, last_scraped_at=now,
                last_scrape_status=RunStatus.FAILED, last_error_kind=WORKER_LOST,
            )  # fmt: skip
            closed += 1
    if closed:
        logger.warning("recovered %d stale runs", closed)
    return closed


# --- Manual scrapes --------------------------------------------------------------------------


def tracker_request_scrape(*, tracker: TrackingConfig, user: User) -> uuid.UUID:
    """Queue an immediate scrape for a user's tracker, or refuse with a clear reason."""
    now = timezone.now()
    product = Product.objects.select_related("store").get(pk=tracker.product_id)
    store = product.store
    if not store.enabled:
        raise ApplicationError(
            f"Scraping {store.code} is paused by the administrator.", code="store_disabled", status_code=503
        )
    if not policy.breaker_allows_manual(store):
        raise ApplicationError(
            f"{store.code} is blocking our requests, so scraping is paused (circuit breaker {store.breaker_state}). "
            "Scheduled checks resume automatically.",
            code="store_paused",
            status_code=503,
        )
    used = ScrapeRun.objects.filter(
        requested_by=user, trigger=Trigger.MANUAL, created_at__gte=now - timedelta(hours=1)
    ).count()
    if used >= user.manual_scrapes_per_hour:
        raise ApplicationError(
            f"You have used your {user.manual_scrapes_per_hour} manual scrapes for this hour. Try again later.",
            code="manual_limit",
            status_code=429,
        )
    if product.last_scraped_at is not None:
        earliest = product.last_scraped_at + timedelta(minutes=store.min_interval_minutes)
        if earliest > now:
            wait = int((earliest - now).total_seconds() // 60) + 1
            raise ApplicationError(
                f"This product was checked {int((now - product.last_scraped_at).total_seconds() // 60)} minutes ago; "
                f"{store.code} is checked at most every {store.min_interval_minutes} minutes. "
                f"Try again in {wait} minutes.",
                code="too_soon",
                status_code=429,
                extra={"retry_after_seconds": int((earliest - now).total_seconds())},
            )
    token = product_claim(product_id=product.pk, now=now)
    if token is None:
        raise ApplicationError(
            "A check of this product is already queued or running.", code="already_queued", status_code=409
        )
    enqueue_scrape(product_id=product.pk, claim_token=token, trigger=Trigger.MANUAL, requested_by_id=user.pk)
    return token


# --- Reading history --------------------------------------------------------------------------


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


# --- Bulk operations (manage.py import_trackers, manage.py rescrape_all) ---------------------


def store_request_spacing(store: Store) -> timedelta:
    """The gap between two requests at the store's rate: spreading bulk work by it keeps the
    dispatcher (which claims at most a minute's budget per tick) at the store's pace."""
    return timedelta(seconds=60 / store.requests_per_minute)


def spread_slot(*, now: datetime, index: int, spacing: timedelta) -> datetime:
    """When the ``index``-th item of a bulk operation becomes due: its own slot, at a random
    point within it, so items never line up on exact second boundaries."""
    return now + spacing * (index + random.random())  # noqa: S311 - jitter, not security


def tracker_import(
    *,
    user: User,
    reference: str,
    target_price: Decimal,
    interval_minutes: int | None = None,
    first_fetch_at: datetime,
) -> tuple[TrackingConfig, bool]:
    """Start tracking a product like :func:`tracker_create`, for bulk imports.

    The difference: a product nobody has scheduled yet is not fetched right away but becomes
    due at ``first_fetch_at`` (the caller spreads these), so importing a thousand rows does not
    queue a thousand requests at once. Same validation, limits and errors as tracker_create
    (ValidationError, ApplicationError ``duplicate_tracker`` / ``tracker_limit``); on an error
    nothing is left behind. Returns the tracker and whether ``first_fetch_at`` was used.

    Built from the existing services so the rules stay in one place: the tracker is created
    disabled (which never fetches), the new product gets its first-fetch time, and enabling the
    tracker applies the limit and recomputes the product's schedule.
    """
    with transaction.atomic():
        tracker = tracker_create(
            user=user, reference=reference, target_price=target_price, interval_minutes=interval_minutes, enabled=False
        )
        product = Product.objects.get(pk=tracker.product_id)
        spread = product.last_scraped_at is None and product.next_scrape_at is None
        if spread:
            Product.objects.filter(pk=product.pk, next_scrape_at__isnull=True).update(next_scrape_at=first_fetch_at)
        tracker_update(tracker=tracker, enabled=True)
        if product.last_scraped_at is not None:
            # Already observed for another user: a price below target alerts now, as on create.
            tracker_evaluate_current(tracker=tracker)
    return tracker, spread


@dataclass
class RescrapeReport:
    """What :func:`products_rescrape_all` did."""

    total: int = 0
    scheduled: int = 0
    in_flight: int = 0
    window: timedelta = field(default_factory=timedelta)


RESCRAPE_BATCH = 500


def products_rescrape_all(
    *,
    store: Store,
    now: datetime | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> RescrapeReport:
    """Make every tracked product of ``store`` due again, spread over the store's rate.

    Product *i* (in id order) becomes due in its own request slot (:func:`spread_slot`), so the
    dispatcher picks them up politely instead of all at once. Failure backoff is cleared (an
    operator asked for a fresh check). Products with a live claim are being scraped right now
    and are left alone (conditional UPDATE). ``on_progress(done, total)`` is called after each
    batch; each batch is its own short transaction, so workers are never locked out for long.
    """
    now = now or timezone.now()
    spacing = store_request_spacing(store)
    enabled_tracker = TrackingConfig.objects.filter(product=OuterRef("pk"), enabled=True)
    ids = list(
        Product.objects.filter(store=store).filter(Exists(enabled_tracker)).order_by("pk").values_list("pk", flat=True)
    )
    report = RescrapeReport(total=len(ids), window=spacing * len(ids))
    for start in range(0, len(ids), RESCRAPE_BATCH):
        batch = ids[start : start + RESCRAPE_BATCH]
        with transaction.atomic():
            for index, pk in enumerate(batch, start=start):
                due = spread_slot(now=now, index=index, spacing=spacing)
                if Product.objects.filter(pk=pk).filter(_claimable(now)).update(next_scrape_at=due, backoff_until=None):
                    report.scheduled += 1
                else:
                    report.in_flight += 1
        if on_progress is not None:
            on_progress(start + len(batch), len(ids))
    return report
