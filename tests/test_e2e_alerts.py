"""End-to-end: the price drops on the (fake) store, a real cluster scrapes it, and each user
tracking the product gets exactly one email through a real SMTP server on loopback."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import User
from notifications.models import Notification
from pricetracker.schedules import register_schedules
from scraping.models import get_store
from tests.cluster import clusters, wait_until
from tracking import services
from tracking.models import PricePoint, Product, RunStatus, ScrapeRun

pytest_plugins = ["tests.smtp_server"]
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ASIN = "B0ALERT001"


@pytest.fixture
def _q_sync() -> None:
    """Override the suite's sync mode: tasks must travel through the real broker."""


def scrape_now(product: Product, *, deliver_twice: bool = False) -> None:
    """What the dispatcher does when the interval has passed (claim + enqueue), without the wait."""
    token = services.product_claim(product_id=product.pk)
    assert token is not None
    services.enqueue_scrape(product_id=product.pk, claim_token=token, trigger="scheduled")
    if deliver_twice:  # an at-least-once broker delivering the same task again
        services.enqueue_scrape(product_id=product.pk, claim_token=token, trigger="scheduled")


def finished_runs(product: Product) -> int:
    return ScrapeRun.objects.filter(product=product).exclude(status=RunStatus.RUNNING).count()


def test_a_price_drop_sends_exactly_one_email_per_user(fake_store, smtp_server, tmp_path):
    from django_q.brokers import get_broker

    get_broker().purge_queue()
    store = get_store("amazon.com")
    store.min_interval_minutes, store.requests_per_minute = 1, 600
    store.save()
    register_schedules()
    fake_store.set_product(ASIN, price="100.00", title="Espresso machine")
    users = [
        User.objects.create_user(f"{name}@example.com", "pw-123456789", email_verified_at=timezone.now())
        for name in ("alice", "bob", "charlie")
    ]
    env = {"AMAZON_BASE_URL": fake_store.base_url, "EMAIL_URL": smtp_server.url, "Q_WORKERS": "2"}
    with clusters(tmp_path, 1, **env):
        for user in users:
            services.tracker_create(user=user, reference=ASIN, target_price=Decimal("90.00"), interval_minutes=60)
        product = Product.objects.get(asin=ASIN)
        wait_until(lambda: finished_runs(product) == 1, timeout=60, message="the first fetch")
        assert PricePoint.objects.get().price == Decimal("100.00")

        fake_store.set_product(ASIN, price="85.00")
        scrape_now(product, deliver_twice=True)
        wait_until(lambda: len(smtp_server.messages) >= 3, timeout=90, message="three alert emails")

        # Still below target: no further email. The duplicate delivery recorded nothing.
        fake_store.set_product(ASIN, price="80.00")
        scrape_now(product)
        wait_until(lambda: finished_runs(product) == 3, timeout=60, message="the third fetch")
        time.sleep(3)  # give a wrongly sent extra email the chance to show up

    assert ScrapeRun.objects.count() == 3
    assert [str(p) for p in PricePoint.objects.order_by("pk").values_list("price", flat=True)] == [
        "100.00",
        "85.00",
        "80.00",
    ]
    recipients = sorted(rcpt for message in smtp_server.messages for rcpt in message.rcpt_tos)
    assert recipients == ["alice@example.com", "bob@example.com", "charlie@example.com"]
    assert all("85.00" in message.subject for message in smtp_server.messages)
    assert len({message.message_id for message in smtp_server.messages}) == 3
    assert Notification.objects.filter(status="SENT").count() == 3


def test_a_price_walk_fires_every_rule_kind_through_a_real_cluster(fake_store, smtp_server, tmp_path):
    """Alert rules end to end: one tracker with a rule of each kind, a price walk on the fake
    store checked by a real cluster, and exactly the emails the walk calls for, each naming its
    strongest reason (a redelivered task on the way adds nothing)."""
    from django_q.brokers import get_broker

    get_broker().purge_queue()
    store = get_store("amazon.com")
    store.min_interval_minutes, store.requests_per_minute = 1, 600
    store.save()
    register_schedules()
    walk_asin = "B0ALLKINDS"
    fake_store.set_product(walk_asin, price="100.00", title="Walked grinder")
    user = User.objects.create_user("walker@example.com", "pw-123456789", email_verified_at=timezone.now())
    rules = [
        services.RuleSpec(kind="drop_percent", percent=Decimal("10")),
        services.RuleSpec(kind="new_low"),
        services.RuleSpec(kind="back_in_stock"),
        services.RuleSpec(kind="any_change", direction="up"),
    ]
    # (what the store shows, the email's subject start: None for no email)
    walk = [
        ({"price": "85.00"}, "Price drop: Walked grinder is now $85.00 (target $90.00) (+2 more reasons)"),
        ({"availability": "out_of_stock"}, None),
        ({"availability": "in_stock", "price": "95.00"}, "Back in stock: Walked grinder at $95.00 (+1 more reason)"),
        ({"price": "95.00"}, None),
        ({"price": "105.00"}, "Price change: Walked grinder is now $105.00 (up 10.00 from 95.00)"),
        ({"price": "80.00"}, "Price drop: Walked grinder is now $80.00 (target $90.00) (+2 more reasons)"),
    ]
    env = {"AMAZON_BASE_URL": fake_store.base_url, "EMAIL_URL": smtp_server.url, "Q_WORKERS": "2"}
    with clusters(tmp_path, 1, **env):
        services.tracker_create(
            user=user, reference=walk_asin, target_price=Decimal("90.00"), rules=rules, interval_minutes=60
        )
        product = Product.objects.get(asin=walk_asin)
        wait_until(lambda: finished_runs(product) == 1, timeout=60, message="the first fetch")
        expected = []
        for step, (changes, subject) in enumerate(walk, start=2):
            fake_store.set_product(walk_asin, **changes)
            scrape_now(product, deliver_twice=step == 3)
            wait_until(lambda step=step: finished_runs(product) == step, timeout=60, message=f"fetch {step}")
            if subject is not None:
                expected.append(subject)
            wait_until(
                lambda: len(smtp_server.messages) >= len(expected), timeout=60, message=f"{len(expected)} emails"
            )
        time.sleep(3)  # give a wrongly sent extra email the chance to show up

    # Stripped: Python folds a 70-78 character Subject onto its own line ("Subject:" CRLF " Price
    # drop..."), and its parser keeps that line's leading space (mail clients unfold it away).
    assert [message.subject.strip() for message in smtp_server.messages] == expected
    kinds = [[reason["kind"] for reason in row.reasons] for row in Notification.objects.order_by("pk")]
    assert kinds == [
        ["below_target", "new_low", "drop_percent"],
        ["back_in_stock", "any_change"],
        ["any_change"],
        ["below_target", "new_low", "drop_percent"],
    ]
    assert Notification.objects.filter(status="SENT").count() == 4
