"""The offline demo's alert rules fire: every kind, on the prices its fake store is scripted to
show (walked here through the recording path, without the real cluster of ``test_demo.py``)."""

from __future__ import annotations

from decimal import Decimal

from notifications.models import Notification
from pricetracker.demo import DEMO_PRODUCTS, demo_rule
from tests.alert_scripts import ok, walk
from tracking import services
from tracking.models import Product


def test_the_demo_products_fire_every_rule_kind(alice, store, django_capture_on_commit_callbacks):
    for demo in DEMO_PRODUCTS:
        services.tracker_create(
            user=alice,
            reference=demo.asin,
            target_price=Decimal(demo.target),
            rules=[demo_rule(rule) for rule in demo.rules],
            interval_minutes=60,
        )
        if demo.availability == "in_stock":
            steps = [ok(price) for price in demo.prices]
        else:
            steps = [ok(None, demo.availability), *([ok(demo.returns_at)] if demo.returns_at else [])]
        # Its first fetch was queued (and claimed) on create; this walk is that fetch and the next.
        Product.objects.filter(asin=demo.asin).update(claimed_until=None, claim_token=None)
        walk(Product.objects.get(asin=demo.asin), steps, capture=django_capture_on_commit_callbacks)

    kinds = {reason["kind"] for alert in Notification.objects.all() for reason in alert.reasons}
    assert kinds == {"below_target", "drop_percent", "new_low", "back_in_stock", "any_change"}
