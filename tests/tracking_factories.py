"""Small builders for tracking tests (products, trackers, recorded observations)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from scraping.results import Availability, ScrapeResult, ScrapeStatus
from tracking import services
from tracking.models import AlertRule, Product, ScrapeRun, Tracker


def make_product(store, asin: str = "B000000001", **fields) -> Product:
    fields.setdefault("next_scrape_at", timezone.now())
    fields.setdefault("interval_minutes", 60)
    return Product.objects.create(store=store, asin=asin, **fields)


def make_tracker(user, product, target: str | None = "100.00", *, armed: bool = True, rules=(), **fields) -> Tracker:
    """A tracker with a below_target rule at ``target`` (None: none) and any other ``rules``
    (``{"kind": "drop_percent", "percent": Decimal("10")}``...)."""
    fields.setdefault("interval_minutes", 60)
    tracker = Tracker.objects.create(user=user, product=product, **fields)
    if target is not None:
        AlertRule.objects.create(
            tracker=tracker, kind="below_target", price=Decimal(target), repeat="once", armed=armed
        )
    for rule in rules:
        AlertRule.objects.create(tracker=tracker, **rule)
    return tracker


def success(price: str | None, **fields) -> ScrapeResult:
    fields.setdefault("availability", Availability.IN_STOCK if price is not None else Availability.UNAVAILABLE)
    return ScrapeResult(
        status=ScrapeStatus.SUCCESS,
        price=None if price is None else Decimal(price),
        currency="USD",
        title=fields.pop("title", "A product"),
        rule=fields.pop("rule", "test"),
        **fields,
    )


def record(product: Product, result: ScrapeResult) -> ScrapeRun | None:
    """Claim ``product`` and finish a run with ``result`` (what a worker does, minus the fetch)."""
    token = services.product_claim(product_id=product.pk)
    assert token is not None, "product already claimed"
    run = ScrapeRun.objects.create(
        product=product, claim_token=token, lease_until=timezone.now() + timedelta(minutes=5)
    )
    product.refresh_from_db()
    return services.run_finish(run=run, product=product, result=result)
