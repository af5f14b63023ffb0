"""When products are checked: claims, the dispatcher, schedules, manual scrape requests.

A product is checked when it is due (``next_scrape_at``), unclaimed, tracked by an enabled
tracker and its store allows it. Every claim is a conditional UPDATE, so two dispatchers (or a
dispatcher and a manual request) never claim the same product. The dispatcher claims a product
up to one tick before it is due and its task waits for the due time, so checks keep their
interval instead of landing on the tick after it (``tracking.policy.due_lookahead``).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, IntegerField, Min, OuterRef, Subquery, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.models import User
from scraping import policy as store_policy
from scraping.models import Store
from tracking import policy
from tracking.errors import AlreadyQueued, ManualLimitReached, StoreDisabled, StorePaused, TooSoon
from tracking.models import ManualScrapeRequest, Product, RunStatus, Tracker, Trigger
from tracking.services import queue

# A claimed product is not due again until its claim expires. Long enough to cover the queue
# wait of a busy cluster; short enough that a task lost by the Redis broker is retried soon.
CLAIM_LEASE = timedelta(minutes=10)
# Products the dispatcher may claim in one tick, across stores (the global budget).
DISPATCH_MAX_PER_TICK = 1000
# The window of the per-user manual scrape limit (``User.manual_scrapes_per_hour``).
MANUAL_SCRAPE_WINDOW = timedelta(hours=1)


def product_refresh_schedule(*, product_id: int, now: datetime | None = None) -> Product:
    """Recompute a product's interval from its enabled trackers and fix its next check.

    Interval = smallest among enabled trackers, never below the store minimum. No enabled
    tracker: never due (``next_scrape_at`` null). The next check never moves earlier than
    ``last_scraped_at + interval``, so adding a tracker never makes Amazon see us more often.
    """
    now = now or timezone.now()
    product = Product.objects.select_related("store").get(pk=product_id)
    smallest = Tracker.objects.enabled().filter(product_id=product_id).aggregate(m=Min("interval_minutes"))["m"]
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
    enabled = Tracker.objects.enabled().filter(product=OuterRef("pk"))
    smallest = Subquery(enabled.order_by().values("product").annotate(m=Min("interval_minutes")).values("m")[:1])
    interval = Greatest(smallest, Value(minimum), output_field=IntegerField())
    products = Product.objects.filter(store_id=store_id).with_enabled_trackers()
    updated = products.update(interval_minutes=interval)
    earliest = F("last_scraped_at") + timedelta(minutes=minimum)
    # Products backing off after failures keep their retry time (backoff has its own settings).
    products.filter(interval_minutes=minimum, consecutive_failures=0, next_scrape_at__lt=earliest).update(
        next_scrape_at=earliest
    )
    return updated


def product_claim(*, product_id: int, now: datetime | None = None) -> uuid.UUID | None:
    """Claim one product for a scrape, whatever its schedule; None if a live claim exists."""
    now = now or timezone.now()
    token = uuid.uuid4()
    claimed = (
        Product.objects.filter(pk=product_id)
        .claimable(now)
        # This check also answers a pending operator rescrape: the next scheduled one is not it.
        .update(claimed_until=now + CLAIM_LEASE, claim_token=token, rescrape_requested_at=None)
    )
    return token if claimed else None


def _dispatch_trigger(*, failures: int, rescrape_requested: bool) -> Trigger:
    if rescrape_requested:
        return Trigger.RESCRAPE
    return Trigger.RETRY if failures else Trigger.SCHEDULED


@dataclass
class DispatchReport:
    """What one dispatcher tick did."""

    ran: bool = True
    claimed: int = 0
    per_store: dict[str, int] = field(default_factory=dict)
    skipped_reason: str = ""


def dispatch_due_products(*, now: datetime | None = None, limit: int = DISPATCH_MAX_PER_TICK) -> DispatchReport:
    """Claim due products within each store's budget and enqueue one task per claim.

    Due: ``next_scrape_at`` before the next tick (``now`` + :func:`tracking.policy.due_lookahead`),
    no live claim, at least one enabled tracker, store enabled and its breaker allowing. A product
    claimed before its due time is enqueued with it and its task waits for it (never early).
    Claims are one conditional UPDATE per store batch, so two dispatchers running at once never
    claim the same product.
    """
    now = now or timezone.now()
    horizon = now + policy.due_lookahead()
    report = DispatchReport()
    remaining = limit
    for store in Store.objects.filter(enabled=True).order_by("pk"):
        if remaining <= 0:
            break
        in_flight = Product.objects.filter(store=store, claimed_until__gt=now).count()
        # One tick per minute: at most one minute's worth of requests, less what is still queued.
        budget = min(remaining, store.requests_per_minute - in_flight)
        breaker_budget = store_policy.breaker_dispatch_budget(store, now=now, in_flight=in_flight)
        if breaker_budget is not None:
            budget = min(budget, breaker_budget)
        if budget <= 0:
            report.per_store[store.code] = 0
            continue
        due = list(
            Product.objects.filter(store=store)
            .due(now, horizon=horizon)
            .order_by("next_scrape_at")
            .values_list("pk", "next_scrape_at", "consecutive_failures", "rescrape_requested_at")[:budget]
        )
        if not due:
            report.per_store[store.code] = 0
            continue
        token = uuid.uuid4()
        ids = [pk for pk, *_ in due]
        with transaction.atomic(), queue.enqueued_together():
            Product.objects.filter(pk__in=ids, next_scrape_at__lte=horizon).claimable(now).update(
                claimed_until=now + CLAIM_LEASE, claim_token=token, rescrape_requested_at=None
            )
            won = set(Product.objects.filter(pk__in=ids, claim_token=token).values_list("pk", flat=True))
            for pk, due_at, failures, rescrape_requested_at in due:
                if pk in won:
                    queue.enqueue_scrape(
                        product_id=pk,
                        claim_token=token,
                        trigger=_dispatch_trigger(
                            failures=failures, rescrape_requested=rescrape_requested_at is not None
                        ),
                        not_before=due_at if due_at is not None and due_at > now else None,
                    )
        report.per_store[store.code] = len(won)
        report.claimed += len(won)
        remaining -= len(won)
    return report


def tracker_request_scrape(*, tracker: Tracker, user: User) -> uuid.UUID:
    """Queue an immediate scrape for a user's tracker, or refuse with a clear reason.

    The hourly limit counts accepted requests (:class:`~tracking.models.ManualScrapeRequest`),
    checked and recorded in one transaction under the user's row lock (``select_for_update`` on
    PostgreSQL; on SQLite the IMMEDIATE transaction already serialises writers), so concurrent
    requests of one user never exceed it together. A refused request does not count.
    """
    now = timezone.now()
    with transaction.atomic():
        limit = User.objects.select_for_update().values_list("manual_scrapes_per_hour", flat=True).get(pk=user.pk)
        product = Product.objects.select_related("store").get(pk=tracker.product_id)
        store = product.store
        store_check_open(store=store, now=now)
        since = now - MANUAL_SCRAPE_WINDOW
        requests = ManualScrapeRequest.objects.filter(user_id=user.pk)
        in_window = requests.filter(created_at__gte=since)
        if in_window.count() >= limit:
            # A slot frees when the oldest request in the window leaves it.
            oldest = in_window.order_by("created_at").values_list("created_at", flat=True).first()
            wait = MANUAL_SCRAPE_WINDOW if oldest is None else oldest + MANUAL_SCRAPE_WINDOW - now
            raise ManualLimitReached(limit=limit, retry_after=max(1, math.ceil(wait.total_seconds())))
        _refuse_too_soon(product=product, store=store, now=now)
        token = product_claim(product_id=product.pk, now=now)
        if token is None:
            raise AlreadyQueued
        requests.filter(created_at__lt=since).delete()  # only the last hour counts: keep the table small
        ManualScrapeRequest.objects.create(user_id=user.pk)
        queue.enqueue_scrape(product_id=product.pk, claim_token=token, trigger=Trigger.MANUAL, requested_by_id=user.pk)
    return token


def product_request_scrape(*, product: Product, requested_by_id: int | None, now: datetime | None = None) -> bool:
    """Queue a check of ``product`` now, for an operator (the admin's "scrape now").

    Like a user's manual scrape without the user's limits: refused (:class:`StoreDisabled`,
    :class:`StorePaused`) while the store is paused; False when a check is already queued or
    running. The task still waits for the store's request slot.
    """
    now = now or timezone.now()
    store_check_open(store=product.store, now=now)
    token = product_claim(product_id=product.pk, now=now)
    if token is None:
        return False
    queue.enqueue_scrape(
        product_id=product.pk, claim_token=token, trigger=Trigger.MANUAL, requested_by_id=requested_by_id
    )
    return True


def store_check_open(*, store: Store, now: datetime) -> None:
    """Raise unless the store takes a check asked for now (API and admin "scrape now" alike):
    :class:`StoreDisabled` when an admin paused it, :class:`StorePaused` while its breaker is not
    closed (with when the breaker's probe may go)."""
    if not store.enabled:
        raise StoreDisabled(store_code=store.code)
    if not store.breaker_allows_manual():
        ends = store.breaker_cooldown_ends_at()  # past while the breaker is probing: no useful wait
        until = ends if ends is not None and ends > now else None
        raise StorePaused(store_code=store.code, breaker_state=store.breaker_state, until=until, now=now)


def _refuse_too_soon(*, product: Product, store: Store, now: datetime) -> None:
    """Refuse (429 ``too_soon``) a manual check within the store's minimum interval of the last one.

    After a failed check the reason is the failure, not the interval: say so, and when the
    automatic retry is due.
    """
    if product.last_scraped_at is None:
        return
    earliest = product.last_scraped_at + timedelta(minutes=store.min_interval_minutes)
    if earliest <= now:
        return
    rule = f"{store.code} is checked at most every {store.min_interval_minutes} minutes"
    if product.last_scrape_status and product.last_scrape_status != RunStatus.SUCCESS:
        message = f"The last check of this product failed {_ago(now - product.last_scraped_at)}"
        retry_at = product.next_scrape_at
        if retry_at is not None:
            message += (
                "; the automatic retry is due now"
                if retry_at <= now
                else f"; it is retried automatically in {_span(retry_at - now)}"
            )
        message += f". A manual check is possible in {_span(earliest - now)} ({rule})."
    else:
        message = (
            f"This product was checked {_ago(now - product.last_scraped_at)}; {rule}. "
            f"Try again in {_span(earliest - now)}."
        )
    raise TooSoon(message, retry_after=math.ceil((earliest - now).total_seconds()))


def _span(delta: timedelta) -> str:
    """A wait for people: whole minutes, rounded up (never "0 minutes")."""
    minutes = max(1, math.ceil(delta.total_seconds() / 60))
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} hours" + (f" {minutes} minutes" if minutes else "")


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "less than a minute ago"
    return f"{minutes} minute{'s' if minutes != 1 else ''} ago"
