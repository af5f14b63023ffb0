"""Bulk operations (``manage.py import_trackers``, ``manage.py rescrape_all``), spread over a store's rate."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from scraping.models import Store
from tracking.models import Product, Tracker
from tracking.services.evaluate import tracker_evaluate_current
from tracking.services.trackers import reference_resolve, tracker_create, tracker_update


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
) -> tuple[Tracker, bool]:
    """Start tracking a product like :func:`tracker_create`, for bulk imports.

    The difference: a product nobody has scheduled yet is not fetched right away but becomes
    due at ``first_fetch_at`` (the caller spreads these), so importing a thousand rows does not
    queue a thousand requests at once. Same validation, limits and errors as tracker_create
    (``InvalidReference``, ``IntervalTooShort``, ``DuplicateTracker``, ``TrackerLimitReached``);
    on an error nothing is left behind. Returns the tracker and whether ``first_fetch_at`` was used.

    Built from the existing services so the rules stay in one place: the tracker is created
    disabled (which never fetches), the new product gets its first-fetch time, and enabling the
    tracker applies the limit and recomputes the product's schedule.
    """
    # Before the transaction: a short link is resolved with requests to Amazon's shortener.
    resolved = reference_resolve(reference=reference, default_store=user.default_store)
    with transaction.atomic():
        tracker = tracker_create(
            user=user, reference=resolved, target_price=target_price, interval_minutes=interval_minutes, enabled=False
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
    operator asked for a fresh check) but the failure count is kept (it is the product's
    history); ``rescrape_requested_at`` makes the dispatcher label the run "rescrape", not
    "retry" or "scheduled". Products with a live claim are being scraped right now
    and are left alone (conditional UPDATE). ``on_progress(done, total)`` is called after each
    batch; each batch is its own short transaction, so workers are never locked out for long.
    """
    now = now or timezone.now()
    spacing = store_request_spacing(store)
    ids = list(Product.objects.filter(store=store).with_enabled_trackers().order_by("pk").values_list("pk", flat=True))
    report = RescrapeReport(total=len(ids), window=spacing * len(ids))
    for start in range(0, len(ids), RESCRAPE_BATCH):
        batch = ids[start : start + RESCRAPE_BATCH]
        with transaction.atomic():
            for index, pk in enumerate(batch, start=start):
                due = spread_slot(now=now, index=index, spacing=spacing)
                rescrape = Product.objects.filter(pk=pk).claimable(now)
                if rescrape.update(next_scrape_at=due, backoff_until=None, rescrape_requested_at=now):
                    report.scheduled += 1
                else:
                    report.in_flight += 1
        if on_progress is not None:
            on_progress(start + len(batch), len(ids))
    return report
