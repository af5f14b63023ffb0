"""Scrape: the task body. Check the claim, wait for a request slot, fetch, hand to record.

The flow of one check is scrape (this module) -> record (:mod:`tracking.services.record`) ->
evaluate (:mod:`tracking.services.evaluate`) -> notify (the hook in :mod:`tracking.hooks`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import statistics
import time
import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from scraping.models import Store
from scraping.providers import get_provider
from scraping.results import ScrapeResult, ScrapeStatus, check_price_range
from tracking import policy
from tracking.models import INTERNAL_ERROR, UNCONFIRMED_PRICE, PricePoint, Product, ScrapeRun, Trigger
from tracking.services.record import run_finish

logger = logging.getLogger("tracking")

# A run still RUNNING this long after it started is closed as worker_lost by the sweep. Covers
# the django-q2 task timeout (after which the worker is killed anyway) plus a margin.
RUN_LEASE_MARGIN = timedelta(seconds=30)
# How long a task may wait for a free request slot before it hands the product back (also
# bounded by what the django-q2 timeout leaves after the fetch itself, see max_slot_wait()).
MAX_SLOT_WAIT_SECONDS = 45.0
SLOT_POLL_SECONDS = 0.5
# A started run keeps its product's claim this much longer than the run's own lease, so the
# recovery sweep (every minute) closes a lost run, and counts its failure, before the
# dispatcher can claim the product again.
CLAIM_GRACE_AFTER_LEASE = timedelta(minutes=2)
# A price this many times above or below the product's recent median is confirmed by a second
# fetch before it is recorded: a pricing error is the deal users want to hear about, a misread
# page is not. The median is over the last CONFIRM_WINDOW price points (price_history_product_idx).
CONFIRM_FACTOR = Decimal(10)
CONFIRM_WINDOW = 5
# Time kept free at the end of the task for recording, after the confirming fetch's deadline.
CONFIRM_MARGIN_SECONDS = 5.0


def worker_name() -> str:
    """host:pid of this process (computed per call: django-q2 forks workers after import)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_lease() -> timedelta:
    """How long a run may stay RUNNING before it is presumed lost."""
    return timedelta(seconds=settings.Q_CLUSTER["timeout"]) + RUN_LEASE_MARGIN


def product_scrape(
    *, product_id: int, claim_token: uuid.UUID, trigger: str = Trigger.SCHEDULED, requested_by_id: int | None = None
) -> ScrapeRun | None:
    """Execute one claimed scrape: record a run, fetch politely, vet the price, finish in one
    transaction.

    Returns None (and records nothing) when the claim is no longer ours or the run already
    exists, which is what a redelivered task sees.
    """
    task_started = time.monotonic()
    deadline = task_started + max_slot_wait()
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
            _run_defer(run=run, product=product)
            return None
        wait_seconds = reservation.wait_seconds
    if wait_seconds > 0:
        time.sleep(wait_seconds)

    result, error_kind = _fetch(product)
    if error_kind is None:
        result, error_kind = _vet_price(run=run, product=product, result=result, task_started=task_started)
    return run_finish(run=run, product=product, result=result, error_kind_override=error_kind)


def _fetch(product: Product) -> tuple[ScrapeResult, str | None]:
    """One fetch through the provider; a crash is our bug, recorded as ``internal_error``."""
    try:
        return get_provider(product.store.code).scrape(product.asin), None
    except Exception:  # the provider never raises for expected outcomes; this is a bug
        logger.exception("scrape crashed", extra={"asin": product.asin})
        return ScrapeResult(status=ScrapeStatus.FAILED, message="Internal error; see the worker log."), INTERNAL_ERROR


def _vet_price(
    *, run: ScrapeRun, product: Product, result: ScrapeResult, task_started: float
) -> tuple[ScrapeResult, str | None]:
    """Check a fetched price before it can be recorded; returns the result to record.

    Outside the store's plausible range: FAILED / ``implausible_price``. Far from the product's
    recent median: confirmed by a second fetch (:func:`_confirm`). Otherwise unchanged.
    """
    store = product.store
    result = check_price_range(result, low=store.min_plausible_price, high=store.max_plausible_price)
    if not result.ok or result.price is None:
        return result, None
    median = recent_median_price(product_id=product.pk)
    if median is None or median / CONFIRM_FACTOR < result.price < median * CONFIRM_FACTOR:
        return result, None
    return _confirm(run=run, product=product, first=result, median=median, task_started=task_started)


def recent_median_price(*, product_id: int) -> Decimal | None:
    """The median of the product's last ``CONFIRM_WINDOW`` prices; None without history.

    One backward probe of ``price_history_product_idx`` (product, observed_at), LIMIT N.
    """
    prices = list(
        PricePoint.objects.filter(product_id=product_id)
        .order_by("-observed_at")
        .values_list("price", flat=True)[:CONFIRM_WINDOW]
    )
    return statistics.median(prices) if prices else None


def _confirm(
    *, run: ScrapeRun, product: Product, first: ScrapeResult, median: Decimal, task_started: float
) -> tuple[ScrapeResult, str | None]:
    """Fetch the page once more and keep ``first`` only if the second fetch shows the same price.

    The second fetch is as polite as any: it gives back this run's place among the store's
    concurrent fetches and waits for a request slot (``tracking.policy``). It must start early
    enough to finish within the task timeout; without a slot by then it does not happen. A
    BLOCKED second answer is recorded as such (it must reach the circuit breaker); any other
    disagreement is FAILED / ``unconfirmed_price`` and counts toward the backoff, so the next
    regular check tries again.
    """
    seen = f"The page said {first.price} {first.currency or ''}".rstrip()
    seen += f", far from the median of the last prices ({median})"
    timeout = float(settings.Q_CLUSTER["timeout"])
    start_by = task_started + timeout - settings.SCRAPE_TOTAL_TIMEOUT_SECONDS - CONFIRM_MARGIN_SECONDS
    reservation = _reserve_again(store_id=product.store_id, run_id=run.pk, deadline=start_by)
    if reservation is None:
        return _unconfirmed(first, f"{seen}; no request slot came free in time to confirm it: not recorded.")
    if reservation.wait_seconds > 0:
        time.sleep(reservation.wait_seconds)
    second, error_kind = _fetch(product)
    if error_kind is not None:
        return second, error_kind
    store = product.store
    second = check_price_range(second, low=store.min_plausible_price, high=store.max_plausible_price)
    duration_ms = first.duration_ms + second.duration_ms
    bytes_received = first.bytes_received + second.bytes_received
    if second.status is ScrapeStatus.BLOCKED:
        message = f"{seen}; the confirming fetch was blocked: {second.message}"
        return (
            dataclasses.replace(second, message=message[:500], duration_ms=duration_ms, bytes_received=bytes_received),
            None,
        )
    if second.ok and second.price == first.price:
        message = f"{seen}; a second fetch confirmed it."
        return (
            dataclasses.replace(second, message=message, duration_ms=duration_ms, bytes_received=bytes_received),
            None,
        )
    if second.ok:
        again = "no price" if second.price is None else f"{second.price}"
    else:
        again = f"{second.error_kind} ({second.message})"
    both = dataclasses.replace(first, duration_ms=duration_ms, bytes_received=bytes_received)
    return _unconfirmed(both, f"{seen}; a second fetch said {again}: not recorded.")


def _unconfirmed(first: ScrapeResult, message: str) -> tuple[ScrapeResult, str | None]:
    failed = dataclasses.replace(first, status=ScrapeStatus.FAILED, message=message[:500])
    return failed, UNCONFIRMED_PRICE


def _reserve_again(*, store_id: int, run_id: int, deadline: float) -> policy.SlotReservation | None:
    """A request slot for a second fetch by ``run_id``, or None if none comes free by ``deadline``.

    The run stops counting as fetching first: it is waiting again, like a new fetch, and with a
    store concurrency of 1 it would otherwise wait for itself.
    """
    ScrapeRun.objects.filter(pk=run_id).update(started_at=None)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    reservation = policy.reserve_request_slot(store_id=store_id, run_id=run_id, max_wait_seconds=remaining)
    return reservation or _wait_for_slot(store_id=store_id, run_id=run_id, deadline=deadline)


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
        # Still our claim? Extend it to cover the run (and the sweep, should the worker die). A
        # redelivered task after the run finished
        # finds the claim cleared and stops here. On PostgreSQL this UPDATE also locks the
        # product row, so a second delivery of the same task waits here until we commit.
        claimed_until = now + lease + CLAIM_GRACE_AFTER_LEASE
        if not Product.objects.filter(pk=product_id, claim_token=claim_token).update(claimed_until=claimed_until):
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
    timeout = float(settings.Q_CLUSTER["timeout"])
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
