"""Trackers: a user's request to watch a product (create, change, delete, re-evaluate)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from rest_framework import status
from rest_framework.exceptions import ValidationError

from accounts.models import User
from pricetracker.api import ApplicationError
from scraping.inputs import InvalidProductReference
from scraping.models import Store, get_store
from scraping.providers import get_provider
from tracking.models import Product, TrackingConfig, Trigger
from tracking.services import queue, scheduling
from tracking.services.evaluate import tracker_evaluate_current

DEFAULT_STORE = "amazon.com"


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
        scheduling.product_refresh_schedule(product_id=tracker.product_id)
        if target_changed:
            tracker_evaluate_current(tracker=tracker)
    return tracker


def tracker_delete(*, tracker: TrackingConfig) -> None:
    """Stop tracking. The product and its history stay: other users may track it."""
    product_id = tracker.product_id
    with transaction.atomic():
        tracker.delete()
        scheduling.product_refresh_schedule(product_id=product_id)
