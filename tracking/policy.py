"""Politeness towards a store, the parts that need tracking's runs, and the dispatcher's timing.

The store's state machines (request slots, failure backoff, the circuit breaker) live next to the
``Store`` model in :mod:`scraping.policy`, which knows nothing of runs. This module feeds them
the counts only tracking has, and keeps what is tracking's own:

- **Rate**: a fetch takes a request slot (:func:`take_request_slot`) counting this store's runs
  that are fetching against its concurrency; the run is marked fetching in the same transaction.
- **Circuit breaker**: every finished run is fed in (:func:`breaker_record`) with the count of
  the store's BLOCKED runs in the breaker's window.
- **Jitter** of the next check, so products added together drift apart.
- **Due times**: the dispatcher claims a product up to one tick before it is due; its task waits
  for the due time, so a check is never early, and no longer a tick late.
- **Leases** for singleton periodic jobs (the dispatcher).

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
from scraping import policy as store_policy
from tracking.models import RunStatus, SchedulerLease, ScrapeRun

# Spread of next_scrape_at after a run, as a fraction of the interval (capped): products added
# together drift apart instead of hitting the store in lock-step forever.
JITTER_FRACTION = 0.05
JITTER_MAX_SECONDS = 300


def jitter_seconds(interval: timedelta) -> float:
    """A random delay in ``[0, min(5% of interval, 5 min)]`` (never earlier than the interval)."""
    return random.uniform(0, min(interval.total_seconds() * JITTER_FRACTION, JITTER_MAX_SECONDS))  # noqa: S311


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
    = the slot) in that same transaction. The runs fetching are counted under the store row lock
    (:func:`scraping.policy.take_request_slot`), so two workers can never take the same slot nor
    both pass the concurrency cap.
    """
    fetching = ScrapeRun.objects.filter(
        product__store_id=store_id, status=RunStatus.RUNNING, started_at__isnull=False, lease_until__gt=now
    )
    return store_policy.take_request_slot(
        store_id=store_id, now=now, max_wait_seconds=max_wait_seconds, fetching=fetching.count
    )


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
    timeout = int(settings.Q_CLUSTER["timeout"])
    retry = int(settings.Q_CLUSTER.get("retry", 60))  # 60: django-q2's default
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


def breaker_record(*, store_id: int, status: str, now: datetime) -> str | None:
    """Feed one finished run into the store's breaker; return the new state if it changed.

    Called inside the run's finishing transaction, so the block count includes this run.
    """

    def blocks_since(since: datetime) -> int:
        return ScrapeRun.objects.filter(
            product__store_id=store_id, status=RunStatus.BLOCKED, finished_at__gte=since
        ).count()

    return store_policy.breaker_record(store_id=store_id, status=status, now=now, blocks_since=blocks_since)


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
