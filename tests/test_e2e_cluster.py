"""End-to-end: real qcluster subprocesses scrape 200 products from the fake store.

On the default path (SQLite + ORM broker) one cluster with 4 workers; with ``Q_REDIS_URL`` set
(CI's PostgreSQL + Redis run) two clusters share the work. Asserts what users rely on: every
product fetched once per interval, every fetch recorded exactly once, no duplicate price points,
the store's rate respected, and no "database is locked" anywhere.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db.models import Count, Q
from django_q.models import Schedule, Task

from accounts.models import User
from pricetracker.schedules import register_schedules
from scraping.models import Store, get_store
from tests.cluster import clusters, wait_for_scrapes_to_finish, wait_until
from tracking import services
from tracking.models import PricePoint, Product, RunStatus, ScrapeRun, Tracker

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PRODUCTS = 200
RATE_PER_MINUTE = 600
ROUNDS = 2


@pytest.fixture
def _q_sync() -> None:
    """Override the suite's sync mode: tasks must travel through the real broker."""


def purge_broker() -> None:
    from django_q.brokers import get_broker

    get_broker().purge_queue()


def test_a_real_cluster_fetches_every_product_once_per_interval(fake_store, tmp_path):
    store = get_store("amazon.com")
    store.min_interval_minutes = 1
    store.requests_per_minute = RATE_PER_MINUTE
    store.concurrency = 8
    store.save()
    register_schedules()
    purge_broker()
    fake_store.configure(latency_ms=30)
    asins = [f"B0E2E{i:05d}" for i in range(PRODUCTS)]
    for i, asin in enumerate(asins):
        prices = [str(Decimal(50 + i % 50) - step) for step in range(6)]
        fake_store.set_product(asin, script=prices, advance="request")
    user = User.objects.create_user("e2e@example.com", "e2e-password-123", max_trackers=PRODUCTS)
    cluster_count = 2 if settings.Q_REDIS_URL else 1

    with clusters(tmp_path, cluster_count, AMAZON_BASE_URL=fake_store.base_url, Q_WORKERS="4") as running:
        for asin in asins:
            services.tracker_create(user=user, reference=asin, target_price=Decimal("1.00"), interval_minutes=1)

        def with_successes():
            return Product.objects.annotate(ok=Count("runs", filter=Q(runs__status=RunStatus.SUCCESS)))

        def last_round_claimed() -> bool:
            """Every product has its last round done, or claimed after the round before it."""
            products = with_successes()
            last = products.filter(Q(ok__gte=ROUNDS) | Q(ok=ROUNDS - 1, claimed_until__isnull=False))
            return last.count() == PRODUCTS

        def every_product_done() -> bool:
            return with_successes().filter(ok__gte=ROUNDS).count() == PRODUCTS

        wait_until(last_round_claimed, timeout=420, interval=1, message=f"round {ROUNDS} claimed for every product")
        # No round after that: the dispatcher claims up to a tick ahead, and the test would wait
        # a whole extra interval for those scrapes to finish.
        Schedule.objects.filter(name="tracking.dispatch").delete()
        wait_until(every_product_done, timeout=420, interval=1, message=f"{ROUNDS} successful runs per product")
        # Stop new work, let what is in flight finish, then stop the clusters.
        Tracker.objects.update(enabled=False)
        wait_for_scrapes_to_finish()
        outputs = [cluster.output() for cluster in running]

    counts = fake_store.counts()
    runs = ScrapeRun.objects.all()
    # Every fetch the store saw is recorded by exactly one finished run, and nothing else ran.
    assert sum(counts.values()) == runs.count()
    for product in Product.objects.annotate(n=Count("runs")):
        assert counts.get(product.asin, 0) == product.n, product.asin
    assert not runs.exclude(status=RunStatus.SUCCESS).exists(), list(runs.exclude(status=RunStatus.SUCCESS)[:5])
    # One price point per successful run, never two.
    assert PricePoint.objects.count() == runs.count()
    # Once per interval: the next fetch of a product never starts within a minute of the last.
    interval = timedelta(minutes=1)
    for product in Product.objects.all():
        history = list(product.runs.order_by("started_at").values_list("started_at", "finished_at"))
        for (_, finished), (started, _) in itertools.pairwise(history):
            assert started - finished >= interval, (product.asin, finished, started)
    # The store's rate: request starts are spaced at least 60 / rate seconds apart, across clusters.
    starts = sorted(runs.values_list("started_at", flat=True))
    spacing = timedelta(seconds=60 / RATE_PER_MINUTE) - timedelta(milliseconds=1)
    assert all(b - a >= spacing for a, b in itertools.pairwise(starts))
    # Nothing failed inside django-q2, and SQLite never said "locked".
    assert Task.objects.filter(success=False).count() == 0
    for output in outputs:
        assert "database is locked" not in output
        assert "Traceback" not in output, output[-3000:]
    if cluster_count == 2:
        # Both clusters did work: more distinct worker processes than one cluster has.
        assert len(set(runs.values_list("worker", flat=True))) > 4
    assert Store.objects.get(code="amazon.com").breaker_state == Store.BreakerState.CLOSED
