"""Reliability: ``kill -9`` of one worker mid-scrape, and of a whole cluster during a burst.

Real qcluster subprocesses against the test database (SQLite + ORM broker by default; CI's
second run uses PostgreSQL + Redis), the fake store and a real SMTP server on loopback.

Leases are shortened so recovery takes seconds, not minutes: ``Q_TIMEOUT=10`` gives django-q2
``retry`` = 60 s (ORM redelivery) and a run lease of 10 + 30 = 40 s (``services.run_lease``);
the claim lease (10 min) and the email send lease (5 min) are module constants, patched to 45 s
(in the clusters and in this process, which claims too) and 30 s (in the clusters, which send)
through ``tests.cluster.TEST_LEASE_OVERRIDES``. The
once-a-minute schedules still run in the clusters, and the test also runs the same jobs every
2 s (``run_periodic_jobs``) instead of waiting for the next minute.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Count, Q
from django.utils import timezone
from django_q.models import Task

from accounts.models import User
from notifications.models import Notification, NotificationStatus
from pricetracker.schedules import register_schedules
from scraping.models import get_store
from tests.cluster import (
    Cluster,
    clusters,
    pids_connected_to,
    purge_broker,
    run_periodic_jobs,
    seed_tracked_products,
    wait_until,
    worker_pids,
)
from tracking import services
from tracking.models import WORKER_LOST, PricePoint, Product, RunStatus, ScrapeRun

pytest_plugins = ["tests.smtp_server"]
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CLAIM_LEASE_SECONDS = 45
# A fetch (connect 2 s, read 6 s, 8 s in all) always ends before the django-q2 task timeout (10 s).
FAST_RECOVERY_ENV = {
    "Q_TIMEOUT": "10",
    "SCRAPE_CONNECT_TIMEOUT_SECONDS": "2",
    "SCRAPE_READ_TIMEOUT_SECONDS": "6",
    "SCRAPE_TOTAL_TIMEOUT_SECONDS": "8",
    "TEST_CLAIM_LEASE_SECONDS": str(CLAIM_LEASE_SECONDS),
    "TEST_SEND_LEASE_SECONDS": "30",
}
BURST = 500
CROSSING_EVERY = 10  # 50 of the 500 trackers cross their target on the first scrape
KILL_AFTER_FINISHED = 60


@pytest.fixture
def _q_sync() -> None:
    """Override the suite's sync mode: tasks must travel through the real broker."""


@pytest.fixture
def fast_claims(monkeypatch) -> None:
    """Claims made in this process (the burst, the dispatcher ticks) expire like the clusters'."""
    monkeypatch.setattr(services.scheduling, "CLAIM_LEASE", timedelta(seconds=CLAIM_LEASE_SECONDS))


@pytest.fixture
def store(db):
    row = get_store("amazon.com")
    row.min_interval_minutes = 1
    row.requests_per_minute = 60_000
    row.concurrency = 16
    # A lost run counts as a failure and backs off: the shortest backoff (1 min +-10%) keeps the
    # re-scrape of a killed product within the test's wait.
    row.backoff_base_minutes = 1
    row.save()
    register_schedules()
    purge_broker()
    return row


def make_users(count: int) -> list[User]:
    names = ["alice", "bob", "charlie", "dave", "erin"][:count]
    return [
        User.objects.create_user(f"{name}@example.com", "pw-123456789", email_verified_at=timezone.now())
        for name in names
    ]


def test_a_worker_killed_mid_scrape_is_replaced_and_its_product_is_scraped_and_alerted_once(
    store, fast_claims, fake_store, smtp_server, tmp_path
):
    asin = "B0KILLWRK1"
    # Stuck in the fetch until killed; the read timeout (6 s) would end it otherwise.
    fake_store.set_product(asin, price="80.00", latency_ms=30_000)
    (alice,) = make_users(1)
    env = {**FAST_RECOVERY_ENV, "AMAZON_BASE_URL": fake_store.base_url, "EMAIL_URL": smtp_server.url}
    with clusters(tmp_path, 1, Q_WORKERS="2", **env) as (cluster,):
        workers = worker_pids(cluster, count=2)
        services.tracker_create(user=alice, reference=asin, target_price=Decimal("90.00"), interval_minutes=60)
        product = Product.objects.get(asin=asin)

        # The worker in the middle of the fetch is the one connected to the store.
        fetching: set[int] = set()

        def one_worker_fetching() -> bool:
            nonlocal fetching
            fetching = pids_connected_to(fake_store.port, workers)
            return len(fetching) == 1

        wait_until(one_worker_fetching, timeout=30, interval=0.2, message="a worker fetching the slow page")
        (victim,) = fetching
        killed_run = ScrapeRun.objects.get(product=product)
        assert killed_run.status == RunStatus.RUNNING and killed_run.started_at is not None
        fake_store.set_product(asin, latency_ms=0)
        os.kill(victim, signal.SIGKILL)

        # The guard replaces the dead worker; the cluster itself stays up.
        wait_until(lambda: victim not in worker_pids(cluster, count=2), timeout=30, message="a replacement worker")

        def scraped_and_alerted() -> bool:
            run_periodic_jobs()
            return product.runs.filter(status=RunStatus.SUCCESS).exists() and len(smtp_server.messages) >= 1

        wait_until(scraped_and_alerted, timeout=150, interval=2, message="the re-scrape and its alert")
        time.sleep(3)  # give a wrongly repeated scrape or email the chance to show up
        assert cluster.proc is not None and cluster.proc.poll() is None
        output = cluster.output()

    killed_run.refresh_from_db()
    assert (killed_run.status, killed_run.error_kind) == (RunStatus.FAILED, WORKER_LOST)
    assert list(product.runs.order_by("pk").values_list("status", flat=True)) == [RunStatus.FAILED, RunStatus.SUCCESS]
    success = product.runs.get(status=RunStatus.SUCCESS)
    assert list(PricePoint.objects.values_list("run_id", "price")) == [(success.pk, Decimal("80.00"))]
    # The killed fetch reached the store, then the re-scrape: two requests, never a third.
    assert fake_store.counts()[asin] == 2
    assert [message.rcpt_tos for message in smtp_server.messages] == [["alice@example.com"]]
    assert Notification.objects.get().status == NotificationStatus.SENT
    assert Task.objects.filter(success=False).count() == 0
    assert "reincarnated worker" in output
    assert "database is locked" not in output


def test_a_cluster_killed_during_a_burst_loses_no_product_and_duplicates_no_price_or_email(
    store, fast_claims, fake_store, smtp_server, tmp_path
):
    fake_store.configure(latency_ms=40)
    users = make_users(5)
    products = seed_tracked_products(count=BURST, users=users, prefix="B0KILL", crossing_every=CROSSING_EVERY)
    crossing = BURST // CROSSING_EVERY
    env = {**FAST_RECOVERY_ENV, "AMAZON_BASE_URL": fake_store.base_url, "EMAIL_URL": smtp_server.url}

    def finished() -> int:
        return ScrapeRun.objects.exclude(status=RunStatus.RUNNING).count()

    with clusters(tmp_path, 1, Q_WORKERS="4", **env) as (first,):
        worker_pids(first, count=4)
        assert services.dispatch_due_products().claimed == BURST

        def mid_burst() -> bool:
            # Kill while scrapes are in flight, not in a gap between two (with a fast fake store
            # a worker can be between tasks, or waiting for a due time, at any given instant).
            return finished() >= KILL_AFTER_FINISHED and ScrapeRun.objects.filter(status=RunStatus.RUNNING).exists()

        wait_until(mid_burst, timeout=120, interval=0.05, message="the burst to be under way")
        first.kill_hard()  # a machine crash: main process, guard and workers at once
        # What the crash interrupted, read before anything can recover it.
        in_flight = set(ScrapeRun.objects.filter(status=RunStatus.RUNNING).values_list("pk", flat=True))
        sending_at_crash = Notification.objects.filter(status=NotificationStatus.SENDING).count()
        done_at_crash = finished()
        assert in_flight, "the kill should interrupt scrapes in flight"
        assert done_at_crash < BURST, "the kill should land in the middle of the burst"

        second = Cluster(tmp_path / "cluster-restarted.log", first.env).start()
        try:

            def settled() -> bool:
                run_periodic_jobs()
                unscraped = Product.objects.exclude(runs__status=RunStatus.SUCCESS).exists()
                running = ScrapeRun.objects.filter(status=RunStatus.RUNNING).exists()
                sent = Notification.objects.filter(status=NotificationStatus.SENT).count()
                return not unscraped and not running and sent == crossing

            wait_until(settled, timeout=180, interval=2, message="every product scraped and every alert sent")
            time.sleep(3)  # give a wrongly repeated scrape or email the chance to show up
            assert second.proc is not None and second.proc.poll() is None
            output = first.output() + second.output()
        finally:
            second.stop()

    # Every product: exactly one successful scrape and one price point from it.
    per_product = Product.objects.annotate(
        ok=Count("runs", filter=Q(runs__status=RunStatus.SUCCESS)), points=Count("price_points", distinct=True)
    )
    assert per_product.count() == BURST
    assert not per_product.exclude(ok=1, points=1).exists(), list(per_product.exclude(ok=1, points=1)[:5])
    assert PricePoint.objects.count() == BURST
    assert set(PricePoint.objects.values_list("run__status", flat=True)) == {RunStatus.SUCCESS}
    # What the crash interrupted was closed by the recovery sweep, and nothing else failed.
    failed = ScrapeRun.objects.exclude(status=RunStatus.SUCCESS)
    assert set(failed.values_list("pk", flat=True)) == in_flight
    assert set(failed.values_list("status", "error_kind")) == {(RunStatus.FAILED, WORKER_LOST)}
    assert not ScrapeRun.objects.filter(status=RunStatus.RUNNING).exists()
    # The store saw each product once, plus at most the one fetch the crash cut short.
    counts = fake_store.counts()
    for product in products:
        assert 1 <= counts.get(product.asin, 0) <= product.runs.count() <= 2, product.asin
    # One alert per crossing tracker, each delivered. An SMTP resend is only possible for a
    # send the crash cut between the server's OK and our SENT mark, and it repeats the
    # Message-ID, so receivers drop it.
    notifications = Notification.objects.all()
    assert notifications.count() == crossing
    assert set(notifications.values_list("status", flat=True)) == {NotificationStatus.SENT}
    message_ids = [message.message_id for message in smtp_server.messages]
    assert set(message_ids) == set(notifications.values_list("message_id", flat=True))
    assert len(message_ids) - crossing <= sending_at_crash
    for user in users:
        received = sum(message.rcpt_tos == [user.email] for message in smtp_server.messages)
        assert received >= notifications.filter(user=user).count()
    assert Task.objects.filter(success=False).count() == 0
    assert "database is locked" not in output
    print(
        f"\nkill -9 after {done_at_crash}/{BURST} runs: {len(in_flight)} runs in flight, "
        f"{sending_at_crash} sends in flight; {len(message_ids)} emails for {crossing} alerts"
    )
