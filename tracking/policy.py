"""Politeness towards a store, enforced across every worker and cluster through the database.

- **Rate**: each fetch reserves the store's next request slot (``Store.next_request_at``), so
  request starts are spaced ``60 / requests_per_minute`` seconds apart whatever the number of
  workers, clusters or hosts. Concurrency is capped by counting runs that are fetching.
- **Circuit breaker** on BLOCKED outcomes: CLOSED -> (K blocks within the window) -> OPEN ->
  (cooldown elapsed) -> HALF_OPEN, one probe at a time -> SUCCESS closes it, BLOCKED re-opens it.
- **Backoff** per product on consecutive failures: exponential, capped, with jitter.
- **Due times**: the dispatcher claims a product up to one tick before it is due; its task waits
  for the due time, so a check is never early, and no longer a tick late.

Every state change is a conditional UPDATE or happens under the store row lock, never a
read-modify-write of a whole row.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pricetracker.schedules import schedule_period
from scraping.models import Store
from tracking.models import RunStatus, SchedulerLease, ScrapeRun

# Spread of next_scrape_at after a run, as a fraction of the interval (capped): products added
# together drift apart instead of hitting the store in lock-step forever.
JITTER_FRACTION = 0.05
JITTER_MAX_SECONDS = 300


def jitter_seconds(interval: timedelta) -> float:
    """A random delay in ``[0, min(5% of interval, 5 min)]`` (never earlier than the interval)."""
    return random.uniform(0, min(interval.total_seconds() * JITTER_FRACTION, JITTER_MAX_SECONDS))  # noqa: S311


def backoff_delay(store: Store, failures: int) -> timedelta:
    """Delay before retrying a product after ``failures`` consecutive failures (>= 1)."""
    exponent = max(0, min(failures - 1, 30))
    minutes = min(store.backoff_base_minutes * (2**exponent), store.backoff_max_minutes)
    # +-10% so products that failed together do not retry together.
    return timedelta(minutes=minutes) * random.uniform(0.9, 1.1)  # noqa: S311


@dataclass(frozen=True, slots=True)
class SlotReservation:
    """A reserved request slot: sleep ``wait_seconds`` and then fetch."""

    wait_seconds: float


def reserve_request_slot(*, store_id: int, run_id: int, max_wait_seconds: float) -> SlotReservation | None:
    """Reserve the store's next request slot for ``run_id``; None when none is free soon enough.

    On success the run is marked as fetching (``started_at``), which is what the concurrency cap
    counts. See ``take_request_slot`` for the locking.
    """
    with transaction.atomic():
        slot = take_request_slot(store_id=store_id, now=timezone.now(), max_wait_seconds=max_wait_seconds)
        if slot is None:
            return None
        ScrapeRun.objects.filter(pk=run_id).update(started_at=slot)
    return SlotReservation(wait_seconds=max(0.0, (slot - timezone.now()).total_seconds()))


def take_request_slot(*, store_id: int, now: datetime, max_wait_seconds: float) -> datetime | None:
    """Move the store's next request slot on and return the slot taken; None if none is free.

    Must run inside a transaction, and the caller must mark its run as fetching (``started_at``
    = the slot) in that same transaction. Runs under the store row lock (``select_for_update``
    on PostgreSQL; on SQLite the IMMEDIATE transaction already serialises writers), so two
    workers can never take the same slot nor both pass the concurrency cap.
    """
    store = (
        Store.objects.select_for_update().only("concurrency", "requests_per_minute", "next_request_at").get(pk=store_id)
    )
    fetching = ScrapeRun.objects.filter(
        product__store_id=store_id, status=RunStatus.RUNNING, started_at__isnull=False, lease_until__gt=now
    ).count()
    if fetching >= store.concurrency:
        return None
    spacing = timedelta(seconds=60 / store.requests_per_minute)
    slot = max(now, store.next_request_at or now)
    if (slot - now).total_seconds() > max_wait_seconds:
        return None
    Store.objects.filter(pk=store_id).update(next_request_at=slot + spacing)
    return slot


# --- Due times -----------------------------------------------------------------------------

DISPATCH_SCHEDULE = "tracking.dispatch"
# A task claimed ahead of its due time runs longer by its wait; this much below django-q2's
# `retry` it still finishes before the ORM broker would hand it to a second worker.
REDELIVERY_MARGIN = timedelta(seconds=30)


def due_lookahead() -> timedelta:
    """How long before its due time the dispatcher may claim a product: one dispatcher tick.

    The dispatcher runs once a tick. A product due a few seconds after a tick (its last check
    ended a few seconds after the tick that started it) used to wait for the next tick, so every
    check came up to a tick late: a 1-minute tracker was checked every 2 minutes. Claimed up to
    a tick ahead, its task first waits for the due time (:func:`wait_until_due`). The wait makes
    the task longer, so the look-ahead is also kept below the broker's redelivery time.
    """
    timeout = int(settings.Q_CLUSTER["timeout"])  # type: ignore[call-overload]
    retry = int(settings.Q_CLUSTER.get("retry", 60))  # type: ignore[call-overload]  # 60: django-q2's default
    spare = timedelta(seconds=retry - timeout) - REDELIVERY_MARGIN
    return max(timedelta(0), min(schedule_period(DISPATCH_SCHEDULE), spare))


def wait_until_due(due: datetime) -> float:
    """Sleep until ``due``, for at most :func:`due_lookahead`; return the seconds slept.

    A product is never fetched before it is due: its interval (never below the store minimum)
    counts from the end of its last check. The task's timeout was lengthened by the look-ahead
    (``tracking.services.queue``), so the wait does not eat the time left for the fetch; the
    cap keeps it within that (a longer wait can only come from clocks that disagree between
    hosts, which claims and leases assume they do not).
    """
    seconds = min((due - timezone.now()).total_seconds(), due_lookahead().total_seconds())
    if seconds <= 0:
        return 0.0
    time.sleep(seconds)
    return seconds


# --- Circuit breaker -----------------------------------------------------------------------


def breaker_dispatch_budget(store: Store, *, now: datetime, in_flight: int) -> int | None:
    """How many products the dispatcher may claim for ``store`` under its breaker.

    None means "no breaker limit" (closed). OPEN gives 0 until the cooldown ends, then moves to
    HALF_OPEN (one process wins the conditional UPDATE). HALF_OPEN allows a single probe while
    nothing else is in flight.
    """
    if store.breaker_state == Store.BreakerState.CLOSED:
        return None
    if store.breaker_state == Store.BreakerState.OPEN:
        opened = store.breaker_opened_at or now
        if now < opened + timedelta(minutes=store.breaker_cooldown_minutes):
            return 0
        moved = Store.objects.filter(pk=store.pk, breaker_state=Store.BreakerState.OPEN).update(
            breaker_state=Store.BreakerState.HALF_OPEN
        )
        if not moved:
            return 0
        store.breaker_state = Store.BreakerState.HALF_OPEN
    return 1 if in_flight == 0 else 0


def breaker_allows_manual(store: Store) -> bool:
    """Manual scrapes are refused while the breaker is open or probing."""
    return store.breaker_state == Store.BreakerState.CLOSED


def breaker_record(*, store_id: int, status: str, now: datetime) -> str | None:
    """Feed one finished run into the store's breaker; return the new state if it changed.

    Called inside the run's finishing transaction, so the block count includes this run.
    """
    store = Store.objects.only("breaker_state", "breaker_threshold", "breaker_window_minutes", "breaker_opened_at").get(
        pk=store_id
    )
    state = store.breaker_state
    if status == RunStatus.BLOCKED:
        if state == Store.BreakerState.HALF_OPEN:
            return _breaker_move(store_id, state, Store.BreakerState.OPEN, now, "probe was blocked")
        if state == Store.BreakerState.CLOSED:
            since = now - timedelta(minutes=store.breaker_window_minutes)
            blocks = ScrapeRun.objects.filter(
                product__store_id=store_id, status=RunStatus.BLOCKED, finished_at__gte=since
            ).count()
            if blocks >= store.breaker_threshold:
                reason = f"{blocks} blocked responses within {store.breaker_window_minutes} min"
                return _breaker_move(store_id, state, Store.BreakerState.OPEN, now, reason)
    elif status == RunStatus.SUCCESS and state == Store.BreakerState.HALF_OPEN:
        return _breaker_move(store_id, state, Store.BreakerState.CLOSED, now, "probe succeeded")
    return None


def _breaker_move(store_id: int, old: str, new: str, now: datetime, reason: str) -> str | None:
    fields: dict[str, object] = {"breaker_state": new, "breaker_reason": reason[:200]}
    if new == Store.BreakerState.OPEN:
        fields["breaker_opened_at"] = now
    moved = Store.objects.filter(pk=store_id, breaker_state=old).update(**fields)
    return new if moved else None


def breaker_set(*, store_id: int, state: str, reason: str) -> None:
    """Open or close a breaker by hand (admin action)."""
    fields: dict[str, object] = {"breaker_state": state, "breaker_reason": reason[:200]}
    if state == Store.BreakerState.OPEN:
        fields["breaker_opened_at"] = timezone.now()
    Store.objects.filter(pk=store_id).update(**fields)


# --- Leases for singleton periodic jobs ----------------------------------------------------


def lease_acquire(name: str, *, holder: str, seconds: float) -> bool:
    """Take the named lease for ``seconds`` if it is free or expired; True if this caller got it."""
    now = timezone.now()
    SchedulerLease.objects.get_or_create(name=name)
    got = SchedulerLease.objects.filter(name=name).filter(expires_at__isnull=True).update(
        holder=holder, expires_at=now + timedelta(seconds=seconds)
    ) or SchedulerLease.objects.filter(name=name, expires_at__lt=now).update(
        holder=holder, expires_at=now + timedelta(seconds=seconds)
    )
    return bool(got)


def lease_release(name: str, *, holder: str) -> None:
    """Give the lease back early (only if this caller still holds it)."""
    SchedulerLease.objects.filter(name=name, holder=holder).update(expires_at=None)
