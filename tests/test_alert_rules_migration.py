"""Migrating to alert rules (tracking 0009, notifications 0003) on a database written by the
previous release: every tracker's target becomes a below_target rule with its armed state and
last alert, old alerts get their reason, and the next prices alert exactly as before."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from notifications.models import Notification
from tests.tracking_factories import make_product, record, success
from tracking.models import AlertRule, Tracker

BEFORE = [("tracking", "0008_tracker"), ("notifications", "0002_account_emails")]
ALERTED_AT = datetime(2026, 3, 2, 10, 15, 42, tzinfo=UTC)


def _migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection)  # a fresh one sees the new state


def _leaf() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.fixture
def old_release(store, alice, bob):
    """Alice's tracker alerted at 90.00 and is disarmed; Bob's is armed; written as the previous
    release wrote them. Yields the old trackers' ids and the old alert's id."""
    product = make_product(store, asin="B0MIGRATE1", title="Old kettle")
    record(product, success("90.00"))  # no trackers yet: just history
    executor = _migrate(BEFORE)
    try:
        old = executor.loader.project_state(BEFORE).apps
        OldTracker = old.get_model("tracking", "Tracker")
        OldNotification = old.get_model("notifications", "Notification")
        OldPricePoint = old.get_model("tracking", "PricePoint")
        alices = OldTracker.objects.create(
            user_id=alice.pk,
            product_id=product.pk,
            target_price=Decimal("100.00"),
            interval_minutes=60,
            armed=False,
            last_alert_at=ALERTED_AT,
        )
        bobs = OldTracker.objects.create(
            user_id=bob.pk, product_id=product.pk, target_price=Decimal("50.00"), interval_minutes=60
        )
        point = OldPricePoint.objects.get()
        alert = OldNotification.objects.create(
            user_id=alice.pk,
            tracker_id=alices.pk,
            product_id=product.pk,
            price_point_id=point.pk,
            price=Decimal("90.00"),
            target_price=Decimal("100.00"),
            currency="USD",
            idempotency_key=f"crossing-{alices.pk}-{point.pk}",
            status="SENT",
            sent_at=ALERTED_AT,
            attempts=1,
        )
        yield product, alices.pk, bobs.pk, alert.pk
    finally:
        _migrate(_leaf())


@pytest.mark.django_db(transaction=True)
def test_targets_become_below_target_rules_with_their_state_and_last_alert(old_release):
    _, alices, bobs, alert_id = old_release

    _migrate(_leaf())

    alice_rule = AlertRule.objects.get(tracker_id=alices)
    bob_rule = AlertRule.objects.get(tracker_id=bobs)
    assert (alice_rule.kind, alice_rule.price, alice_rule.repeat) == ("below_target", Decimal("100.00"), "once")
    assert (alice_rule.armed, alice_rule.last_fired_at) == (False, ALERTED_AT)
    assert (bob_rule.kind, bob_rule.price, bob_rule.armed, bob_rule.last_fired_at) == (
        "below_target",
        Decimal("50.00"),
        True,
        None,
    )
    tracker = Tracker.objects.get(pk=alices)
    assert (tracker.target_price, tracker.armed, tracker.last_alert_at) == (Decimal("100.00"), False, ALERTED_AT)
    alert = Notification.objects.get(pk=alert_id)
    assert alert.reasons == [
        {
            "kind": "below_target",
            "rule_id": alice_rule.pk,
            "detail": "at or below your target of 100.00",
            "observed_price": "90.00",
            "observed_at": alert.price_point.observed_at.isoformat(),
            "suppressed": "",
        }
    ]
    assert (alert.status, alert.target_price, alert.previous_price) == ("SENT", Decimal("100.00"), None)


@pytest.mark.django_db(transaction=True)
def test_after_the_migration_nobody_is_alerted_twice_and_nobody_misses_the_next_crossing(
    old_release, django_capture_on_commit_callbacks
):
    product, *_ = old_release
    _migrate(_leaf())

    for price, alerted in (("85.00", []), ("45.00", ["bob"]), ("110.00", []), ("95.00", ["alice"])):
        with django_capture_on_commit_callbacks(execute=True):
            record(product, success(price))
        assert [message.to[0].split("@")[0] for message in mail.outbox] == alerted, price
        mail.outbox.clear()


@pytest.mark.django_db(transaction=True)
def test_going_back_restores_the_targets(old_release, alice, store):
    _, alices, _, _ = old_release
    _migrate(_leaf())
    AlertRule.objects.filter(tracker_id=alices).update(price=Decimal("80.00"))
    watch_only = Tracker.objects.create(user=alice, product=make_product(store, asin="B0WATCHONL"), interval_minutes=60)

    executor = _migrate(BEFORE)

    old = executor.loader.project_state(BEFORE).apps.get_model("tracking", "Tracker")
    assert old.objects.filter(pk=alices).values_list("target_price", "armed").get() == (Decimal("80.00"), False)
    # No target in the old sense: one no real price reaches, so it only records history.
    assert old.objects.filter(pk=watch_only.pk).values_list("target_price", "armed").get() == (Decimal("0.01"), True)
    assert old.objects.get(pk=alices).notifications.get().target_price == Decimal("100.00")
