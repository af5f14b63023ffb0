"""A store's politeness state, kept on its ``Store`` row: request slots, failure backoff, the breaker.

- **Rate**: each fetch takes the store's next request slot (``Store.next_request_at``), so request
  starts are spaced ``60 / requests_per_minute`` seconds apart whatever the number of workers,
  clusters or hosts; at most ``concurrency`` fetches are in flight.
- **Circuit breaker** on BLOCKED outcomes: CLOSED -> (``breaker_threshold`` blocks within the
  window) -> OPEN -> (cooldown elapsed) -> HALF_OPEN, one probe at a time -> SUCCESS closes it,
  BLOCKED re-opens it. An operator may open or close it by hand (:func:`breaker_set`).
- **Backoff** per product on consecutive failures: exponential, capped, with jitter.

``scraping`` knows nothing of runs or products (``tracking`` owns them). Where a rule needs a
count of them (fetches in flight, blocks in the window), the caller passes a callable that this
module evaluates at the right moment: under the store row lock, or with the window it reads from
the row. ``tracking.policy`` is that caller.

Every state change is a conditional UPDATE or happens under the store row lock, never a
read-modify-write of a whole row.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.utils import timezone

from scraping.models import Store
from scraping.results import ScrapeStatus

REASON_MAX_LENGTH = Store._meta.get_field("breaker_reason").max_length
# Longest backoff exponent: 2**30 minutes is far beyond any cap, and keeps the number small.
BACKOFF_MAX_EXPONENT = 30


def backoff_delay(store: Store, failures: int) -> timedelta:
    """Delay before retrying a product after ``failures`` consecutive failures (>= 1)."""
    exponent = max(0, min(failures - 1, BACKOFF_MAX_EXPONENT))
    minutes = min(store.backoff_base_minutes * (2**exponent), store.backoff_max_minutes)
    # +-10% so products that failed together do not retry together.
    return timedelta(minutes=minutes) * random.uniform(0.9, 1.1)  # noqa: S311


# --- Request slots -------------------------------------------------------------------------


def take_request_slot(
    *, store_id: int, now: datetime, max_wait_seconds: float, fetching: Callable[[], int]
) -> datetime | None:
    """Move the store's next request slot on and return the slot taken; None if none is free.

    ``fetching()`` counts the store's fetches in flight; it is called under the store row lock,
    so two workers can never take the same slot nor both pass the concurrency cap. Must run
    inside a transaction, and the caller must mark its fetch as in flight in that same
    transaction (``select_for_update`` locks the row on PostgreSQL; on SQLite the IMMEDIATE
    transaction already serialises writers).
    """
    store = (
        Store.objects.select_for_update().only("concurrency", "requests_per_minute", "next_request_at").get(pk=store_id)
    )
    if fetching() >= store.concurrency:
        return None
    spacing = timedelta(seconds=60 / store.requests_per_minute)
    slot = max(now, store.next_request_at or now)
    if (slot - now).total_seconds() > max_wait_seconds:
        return None
    Store.objects.filter(pk=store_id).update(next_request_at=slot + spacing)
    return slot


# --- Circuit breaker -----------------------------------------------------------------------


def breaker_dispatch_budget(store: Store, *, now: datetime, in_flight: int) -> int | None:
    """How many products the dispatcher may claim for ``store`` under its breaker.

    None means "no breaker limit" (closed). OPEN gives 0 until the cooldown ends, then moves to
    HALF_OPEN (one process wins the conditional UPDATE). HALF_OPEN allows a single probe while
    nothing else (``in_flight`` claims) is in flight.
    """
    if store.breaker_state == Store.BreakerState.CLOSED:
        return None
    if store.breaker_state == Store.BreakerState.OPEN:
        ends = store.breaker_cooldown_ends_at()
        if ends is None or now < ends:
            return 0
        if _breaker_move(store.pk, Store.BreakerState.OPEN, Store.BreakerState.HALF_OPEN) is None:
            return 0
        store.breaker_state = Store.BreakerState.HALF_OPEN
    return 1 if in_flight == 0 else 0


def breaker_record(*, store_id: int, status: str, now: datetime, blocks_since: Callable[[datetime], int]) -> str | None:
    """Feed one finished fetch (a :class:`~scraping.results.ScrapeStatus`) into the store's breaker.

    ``blocks_since(moment)`` counts the store's BLOCKED outcomes finished at or after ``moment``,
    this one included; it is only called for a block while the breaker is closed, with the
    start of the store's window. Returns the new state if it changed.
    """
    store = Store.objects.only("breaker_state", "breaker_threshold", "breaker_window_minutes").get(pk=store_id)
    state = store.breaker_state
    if status == ScrapeStatus.BLOCKED:
        if state == Store.BreakerState.HALF_OPEN:
            return _breaker_move(store_id, state, Store.BreakerState.OPEN, now=now, reason="probe was blocked")
        if state == Store.BreakerState.CLOSED:
            blocks = blocks_since(now - timedelta(minutes=store.breaker_window_minutes))
            if blocks >= store.breaker_threshold:
                reason = f"{blocks} blocked responses within {store.breaker_window_minutes} min"
                return _breaker_move(store_id, state, Store.BreakerState.OPEN, now=now, reason=reason)
    elif status == ScrapeStatus.SUCCESS and state == Store.BreakerState.HALF_OPEN:
        return _breaker_move(store_id, state, Store.BreakerState.CLOSED, now=now, reason="probe succeeded")
    return None


def breaker_set(*, store_ids: Iterable[int], state: str, reason: str, now: datetime | None = None) -> int:
    """Open or close the breakers of ``store_ids`` by hand (the store admin's actions); return how many.

    Opening records when (the cooldown counts from now, then one probe decides). Closing keeps
    ``breaker_opened_at``: it records when the breaker last opened.
    """
    return Store.objects.filter(pk__in=store_ids).update(**_breaker_fields(state, now=now, reason=reason))


def _breaker_move(
    store_id: int, old: str, new: str, *, now: datetime | None = None, reason: str | None = None
) -> str | None:
    """Move one store's breaker from ``old`` to ``new``; None if another process moved it first.

    Without a reason (the cooldown's end) the reason it opened for stays.
    """
    moved = Store.objects.filter(pk=store_id, breaker_state=old).update(**_breaker_fields(new, now=now, reason=reason))
    return new if moved else None


def _breaker_fields(state: str, *, now: datetime | None, reason: str | None) -> dict[str, object]:
    fields: dict[str, object] = {"breaker_state": state}
    if reason is not None:
        fields["breaker_reason"] = reason[:REASON_MAX_LENGTH]
    if state == Store.BreakerState.OPEN:
        fields["breaker_opened_at"] = now or timezone.now()
    return fields
