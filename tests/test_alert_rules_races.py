"""Exactly once under races, with several rules firing on one observation: two workers finishing
one run, a redelivered task, a rule change racing a scrape, concurrent alerts against a daily
limit, a merge racing the quiet-hours sweep, concurrent rule creation against the limit, eight
senders on one alert. Real threads with their own connections (``tests/concurrency.py``); run on
SQLite and on PostgreSQL + Redis (``DATABASE_URL``, ``Q_REDIS_URL``)."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.db import close_old_connections
from django.utils import timezone

from notifications import services as outbox
from notifications.models import Notification, NotificationStatus
from tests.concurrency import run_concurrently
from tests.tracking_factories import make_product, make_tracker, record, success
from tracking import services
from tracking.errors import RuleLimitReached
from tracking.models import AlertRule, Product, ScrapeRun

pytestmark = pytest.mark.django_db(transaction=True)

SEVERAL = [
    {"kind": "drop_percent", "percent": Decimal("10")},
    {"kind": "new_low", "days": None},
    {"kind": "any_change", "direction": "down"},
]


@pytest.fixture
def product(store):
    return make_product(store, asin="B0RACERULE", title="Raced kettle")


def reasons_of(notification: Notification) -> list[str]:
    return [reason["kind"] for reason in notification.reasons]


def claimed_run(product: Product) -> ScrapeRun:
    token = services.product_claim(product_id=product.pk)
    assert token is not None
    return ScrapeRun.objects.create(
        product=product, claim_token=token, lease_until=timezone.now() + timedelta(minutes=5)
    )


def test_two_workers_finishing_one_run_write_one_alert_with_every_rule(alice, product):
    make_tracker(alice, product, target="95.00", rules=SEVERAL)
    record(product, success("120.00"))
    run = claimed_run(product)

    def finish() -> bool:
        fresh = Product.objects.select_related("store").get(pk=product.pk)
        return (
            services.run_finish(run=ScrapeRun.objects.get(pk=run.pk), product=fresh, result=success("90.00"))
            is not None
        )

    finished = run_concurrently([finish, finish])

    assert sorted(finished) == [False, True]
    alert = Notification.objects.get()
    assert reasons_of(alert) == ["below_target", "new_low", "drop_percent", "any_change"]
    assert len(mail.outbox) == 1
    assert alert.status == NotificationStatus.SENT


def test_a_task_delivered_twice_at_once_alerts_once(alice, product, provider):
    make_tracker(alice, product, target="95.00", rules=SEVERAL)
    record(product, success("120.00"))
    provider.queue(product.asin, "90.00", "90.00")
    token = services.product_claim(product_id=product.pk)
    assert token is not None

    def deliver() -> bool:
        return services.product_scrape(product_id=product.pk, claim_token=token) is not None

    assert sorted(run_concurrently([deliver, deliver])) == [False, True]
    assert ScrapeRun.objects.filter(claim_token=token).count() == 1
    assert reasons_of(Notification.objects.get()) == ["below_target", "new_low", "drop_percent", "any_change"]
    assert len(mail.outbox) == 1


def test_a_target_raised_while_a_scrape_records_a_lower_price_alerts_once(alice, product, provider):
    tracker = make_tracker(alice, product, target="90.00")
    record(product, success("95.00"))  # above the target: armed, no alert
    rule = tracker.rules.get()
    provider.queue(product.asin, "85.00")
    token = services.product_claim(product_id=product.pk)
    assert token is not None

    def raise_target() -> None:
        fresh = AlertRule.objects.select_related("tracker").get(pk=rule.pk)
        services.rule_update(rule=fresh, changes={"price": Decimal("100.00")})

    def scrape() -> None:
        services.product_scrape(product_id=product.pk, claim_token=token)

    run_concurrently([raise_target, scrape])

    assert Notification.objects.count() == 1
    assert len(mail.outbox) == 1
    assert AlertRule.objects.get(pk=rule.pk).armed is False


def test_concurrent_alerts_of_one_user_never_pass_the_daily_limit(make_user, store):
    ivy = make_user("ivy@example.com", max_alerts_per_day=2)
    products = [make_product(store, asin=f"B0DAILY{i:03d}") for i in range(5)]
    for product in products:
        make_tracker(ivy, product, target=None, rules=[{"kind": "any_change", "direction": "both"}])
        record(product, success("10.00"))
    runs = [claimed_run(product) for product in products]

    def finish(run: ScrapeRun, product: Product):
        def call() -> None:
            fresh = Product.objects.select_related("store").get(pk=product.pk)
            services.run_finish(run=ScrapeRun.objects.get(pk=run.pk), product=fresh, result=success("11.00"))

        return call

    run_concurrently([finish(run, product) for run, product in zip(runs, products, strict=True)])

    statuses = sorted(Notification.objects.values_list("status", flat=True))
    assert statuses == ["SENT", "SENT", "SUPPRESSED", "SUPPRESSED", "SUPPRESSED"]
    assert len(mail.outbox) == 2


def test_an_alert_merging_into_a_waiting_one_while_the_sweep_releases_it_is_sent_exactly_once(make_user, product):
    now = timezone.now().astimezone(UTC)
    # A one-minute quiet window that has just ended: its alert waits, and is due now.
    start = (now - timedelta(minutes=10)).replace(second=0, microsecond=0)
    jane = make_user(
        "jane@example.com", quiet_hours_start=start.time(), quiet_hours_end=(start + timedelta(minutes=1)).time()
    )
    make_tracker(jane, product, target=None, rules=[{"kind": "any_change", "direction": "both"}])
    with time_machine.travel(start - timedelta(minutes=5), tick=False):
        record(product, success("10.00"))
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        record(product, success("11.00"))
    waiting = Notification.objects.get(status=NotificationStatus.WAITING)
    run = claimed_run(product)

    def scrape() -> None:
        fresh = Product.objects.select_related("store").get(pk=product.pk)
        services.run_finish(run=ScrapeRun.objects.get(pk=run.pk), product=fresh, result=success("12.00"))

    def sweep() -> None:
        outbox.notifications_sweep()

    run_concurrently([scrape, sweep])
    close_old_connections()
    outbox.notifications_sweep()  # whatever the race left due

    rows = {row.pk: row for row in Notification.objects.all()}
    newest = max(rows.values(), key=lambda row: row.pk)
    if newest.status == NotificationStatus.MERGED:
        # Folded in before the sweep released it: one email carrying both observations.
        assert newest.merged_into_id == waiting.pk
        assert [reason["observed_price"] for reason in rows[waiting.pk].reasons] == ["11.00", "12.00"]
        expected_emails = 1
    else:
        # The sweep got there first: two emails, each observation in one of them.
        assert [reason["observed_price"] for reason in rows[waiting.pk].reasons] == ["11.00"]
        expected_emails = 2
    assert sorted(row.status for row in rows.values() if row.status != NotificationStatus.MERGED) == ["SENT"] * (
        expected_emails
    )
    assert len(mail.outbox) == expected_emails


def test_concurrent_rule_creation_stops_at_the_accounts_limit(alice, product):
    alice.max_rules_per_tracker = 3
    alice.save()
    tracker = make_tracker(alice, product, target="10.00")

    def add() -> bool:
        try:
            services.rule_create(tracker=tracker, spec=services.RuleSpec(kind="back_in_stock"))
        except RuleLimitReached:
            return False
        return True

    assert sorted(run_concurrently([add] * 6)) == [False] * 4 + [True] * 2
    assert tracker.rules.count() == 3


def test_eight_senders_on_one_alert_with_several_reasons_send_one_email(alice, product, monkeypatch):
    from django_q.conf import Conf

    make_tracker(alice, product, target="95.00", rules=SEVERAL)
    record(product, success("120.00"))
    monkeypatch.setattr(Conf, "SYNC", False)  # queued for the cluster; the senders below race for it
    record(product, success("90.00"))
    alert = Notification.objects.get()

    outcomes = run_concurrently([lambda: outbox.notification_send(notification_id=alert.pk)] * 8)

    assert sorted(outcomes) == sorted([outbox.SendOutcome.SENT] + [outbox.SendOutcome.SKIPPED] * 7)
    assert len(mail.outbox) == 1
    assert "(+3 more reasons)" in mail.outbox[0].subject
