"""Evaluate: apply a tracker's alert rule to a new price point and call the notify hook.

Runs inside the transaction that recorded the price point (the outbox row the notify hook
writes commits or rolls back with it).
"""

from __future__ import annotations

from django.db import transaction

from tracking.hooks import crossing_handlers
from tracking.models import PricePoint, Tracker


def tracker_evaluate_current(*, tracker: Tracker) -> None:
    """Re-evaluate a tracker against its product's latest price point (after a target change)."""
    point = PricePoint.objects.filter(product_id=tracker.product_id).order_by("-observed_at", "-pk").first()
    if point is None:
        return
    with transaction.atomic():
        tracker_evaluate(tracker=tracker, point=point)


def tracker_evaluate(*, tracker: Tracker, point: PricePoint) -> None:
    """Apply the alert rule to one tracker: fire once on crossing, re-arm above target."""
    if not tracker.enabled:
        return
    if point.price <= tracker.target_price:
        # Conditional UPDATE: of two processes evaluating the same tracker, one disarms it.
        disarmed = Tracker.objects.filter(pk=tracker.pk, armed=True, enabled=True).update(
            armed=False, last_alert_at=point.observed_at
        )
        if disarmed:
            tracker.armed = False
            for handler in crossing_handlers():
                handler(tracker, point)
    else:
        # Decided by the database row, not the in-memory object, which may be stale.
        Tracker.objects.filter(pk=tracker.pk, armed=False).update(armed=True)
        tracker.armed = True
