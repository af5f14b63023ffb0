"""Read-only queries over tracking data (no writes, no side effects)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import Avg, Count, Max, Min

from tracking.models import PricePoint


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
