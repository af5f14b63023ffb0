"""Trackers: a user's request to watch a product (create, change, delete, re-evaluate)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.models import User
from scraping.inputs import InvalidProductReference
from scraping.models import Store, get_store
from scraping.providers import get_provider
from tracking.errors import DuplicateTracker, IntervalTooShort, InvalidReference, TrackerLimitReached
from tracking.models import Product, Tracker, Trigger
from tracking.services import queue, scheduling
from tracking.services.evaluate import tracker_evaluate_current

DEFAULT_STORE = "amazon.com"


def product_for_reference(*, reference: str, store_code: str = DEFAULT_STORE) -> Product:
    """Validate a URL or ASIN and return its (possibly new) Product. Never fetches the user's URL."""
    provider = get_provider(store_code)
    try:
        asin = provider.normalize(reference)
    except InvalidProductReference as exc:
        raise InvalidReference(str(exc)) from None
    store = get_store(store_code)
    product, _ = Product.objects.get_or_create(
        store=store, asin=asin, defaults={"interval_minutes": settings.SCRAPE_DEFAULT_INTERVAL_MINUTES}
    )
    return product


def tracker_limit_check(*, user: User, exclude_tracker_id: int | None = None) -> None:
    """Raise :class:`TrackerLimitReached` if ``user`` may not have one more active tracker.

    The one home of the active-tracker limit (API create and update, bulk import, admin). Call
    it inside the transaction that then enables or creates the tracker: it locks the user's row
    (``select_for_update`` on PostgreSQL; on SQLite the IMMEDIATE transaction already serialises
    writers) until that transaction ends, so concurrent requests of one user count one after
    another and never pass the limit together. Called on its own it is only a check.

    ``exclude_tracker_id``: leave this tracker out of the count (the one being enabled, which a
    concurrent request may already have enabled: enabling it again must not count it twice).
    The limit is read from the locked row, not from ``user``, which may be stale.
    """
    with transaction.atomic():
        limit = User.objects.select_for_update().values_list("max_trackers", flat=True).get(pk=user.pk)
        active = Tracker.objects.enabled().filter(user_id=user.pk)
        if exclude_tracker_id is not None:
            active = active.exclude(pk=exclude_tracker_id)
        count = active.count()
        if count >= limit:
            raise TrackerLimitReached(active=count, limit=limit)


def interval_check(*, store: Store, interval_minutes: int) -> None:
    """Raise :class:`IntervalTooShort` for an interval below the store's minimum: a product is
    never fetched more often than that (the one home of this rule: API, import, admin)."""
    if interval_minutes < store.min_interval_minutes:
        raise IntervalTooShort(store_code=store.code, minimum=store.min_interval_minutes)


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
) -> Tracker:
    """Start tracking a product for ``user``. A product never scraped is fetched right away."""
    product = product_for_reference(reference=reference)
    store = product.store
    if interval_minutes is None:
        interval = max(settings.SCRAPE_DEFAULT_INTERVAL_MINUTES, store.min_interval_minutes)
    else:
        interval_check(store=store, interval_minutes=interval_minutes)
        interval = interval_minutes
    if enabled:
        tracker_limit_check(user=user)  # holds the user's row lock until this create commits
    try:
        with transaction.atomic():
            tracker = Tracker.objects.create(
                user=user, product=product, target_price=target_price, interval_minutes=interval, enabled=enabled
            )
    except IntegrityError:
        existing = Tracker.objects.filter(user=user, product=product).values_list("pk", flat=True).first()
        raise DuplicateTracker(asin=product.asin, existing_id=existing) from None
    product = scheduling.product_refresh_schedule(product_id=product.pk)
    if enabled and product.last_scraped_at is None:
        # The client should see title and price within seconds, not at the next dispatcher tick.
        # Still polite: the task waits for a free request slot like any other.
        token = scheduling.product_claim(product_id=product.pk)
        if token is not None:
            queue.enqueue_scrape(product_id=product.pk, claim_token=token, trigger=Trigger.INITIAL)
    elif enabled:
        tracker_evaluate_current(tracker=tracker)
    return tracker


def tracker_update(
    *,
    tracker: Tracker,
    target_price: Decimal | None = None,
    interval_minutes: int | None = None,
    enabled: bool | None = None,
) -> Tracker:
    """Change target, interval or enabled. A new target is re-evaluated against the current price.

    Enabling checks the active-tracker limit in the transaction that saves (:func:`tracker_limit_check`).
    """
    changes: dict[str, object] = {}
    if interval_minutes is not None and interval_minutes != tracker.interval_minutes:
        interval_check(store=tracker.product.store, interval_minutes=interval_minutes)
        changes["interval_minutes"] = interval_minutes
    if enabled is not None and enabled != tracker.enabled:
        changes["enabled"] = enabled
    target_changed = target_price is not None and target_price != tracker.target_price
    if target_changed:
        changes["target_price"] = target_price
    if not changes:
        return tracker
    with transaction.atomic():
        if changes.get("enabled"):
            tracker_limit_check(user=tracker.user, exclude_tracker_id=tracker.pk)
        for name, value in changes.items():
            setattr(tracker, name, value)
        tracker.save(update_fields=[*changes, "updated_at"])
        scheduling.product_refresh_schedule(product_id=tracker.product_id)
        if target_changed:
            tracker_evaluate_current(tracker=tracker)
    return tracker


def tracker_delete(*, tracker: Tracker) -> None:
    """Stop tracking. The product and its history stay: other users may track it."""
    product_id = tracker.product_id
    with transaction.atomic():
        tracker.delete()
        scheduling.product_refresh_schedule(product_id=product_id)
