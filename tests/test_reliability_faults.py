"""Reliability: 1,000 scrapes through a real cluster with every fault the fake store can serve.

200 of the 1,000 products (20%, chosen with a fixed seed) answer their one request with a fault:
captchas, a WAF challenge, 503/429/404/500 pages, a page slower than the read timeout, a drip
feed, an oversized body, a truncated body, redirects (foreign, looping, same host) and non-HTML
bodies. Expected afterwards:

* every run is classified: no run left RUNNING; each fault gives exactly the status and error
  kind the provider documents (tests/test_providers.py has the same matrix, one fetch each);
* backoff: a failed product waits ``backoff_base_minutes`` (5 min, +-10%) before its retry, a
  successful one its interval (60 min, plus at most 5% jitter);
* the circuit breaker: once open, scrapes already queued are handed back unfetched
  (tests/test_scrape_task.py), so to fetch all 1,000 the burst runs with the threshold out of
  reach; then, at the default threshold (5 blocks within 15 minutes; the burst had ~60), one
  more blocked answer **opens** it, a dispatcher tick claims nothing while it is open, and after
  the cooldown one probe goes out, succeeds and **closes** it;
* the cluster stays up: main process alive, the same worker processes at the end as at the
  start (none died or was replaced), no django-q2 task failed;
* memory stays flat: each worker's peak RSS (VmHWM) at the end is below 2x its start and 300 MB
  (it is printed at the start, half-way and at the end).
"""

from __future__ import annotations

import random
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule, Task

from accounts.models import User
from fakestore.server import FAULT_KINDS
from scraping.models import Store, get_store
from scraping.results import ErrorKind
from tests.cluster import clusters, peak_rss_kib, purge_broker, seed_tracked_products, wait_until, worker_pids
from tracking import services
from tracking.models import PricePoint, Product, RunStatus, ScrapeRun

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCRAPES = 1000
FAULT_RATE = 0.2
WORKERS = 4
MAX_PEAK_RSS_KIB = 300 * 1024
# What each fault must become (the provider's documented classification).
EXPECTED: dict[str, tuple[str, str]] = {
    "captcha": (RunStatus.BLOCKED, ErrorKind.CAPTCHA),
    "soft_captcha": (RunStatus.BLOCKED, ErrorKind.SOFT_CAPTCHA),
    "waf": (RunStatus.BLOCKED, ErrorKind.WAF),
    "service_unavailable": (RunStatus.BLOCKED, ErrorKind.SERVICE_UNAVAILABLE),
    "rate_limited": (RunStatus.BLOCKED, ErrorKind.RATE_LIMITED),
    "not_found": (RunStatus.FAILED, ErrorKind.NOT_FOUND),
    "server_error": (RunStatus.FAILED, ErrorKind.HTTP_5XX),
    "slow": (RunStatus.FAILED, ErrorKind.TIMEOUT),
    "drip": (RunStatus.FAILED, ErrorKind.TIMEOUT),
    "oversized": (RunStatus.FAILED, ErrorKind.OVERSIZED),
    "truncated": (RunStatus.FAILED, ErrorKind.CONNECTION),
    "redirect_foreign": (RunStatus.FAILED, ErrorKind.REDIRECT_REFUSED),
    "redirect_loop": (RunStatus.FAILED, ErrorKind.REDIRECT_REFUSED),
    "redirect_same_host": (RunStatus.SUCCESS, ErrorKind.NONE),
    "json": (RunStatus.FAILED, ErrorKind.NOT_HTML),
    "image": (RunStatus.FAILED, ErrorKind.NOT_HTML),
}
# Short fetch limits so the slow faults cost seconds: connect 1 s, read 2 s, 3 s in all (a drip
# feed never trips the read timeout, only the total one), 1 MiB bodies.
CLUSTER_ENV = {
    "Q_WORKERS": str(WORKERS),
    "SCRAPE_CONNECT_TIMEOUT_SECONDS": "1",
    "SCRAPE_READ_TIMEOUT_SECONDS": "2",
    "SCRAPE_TOTAL_TIMEOUT_SECONDS": "3",
    "SCRAPE_MAX_BYTES": str(1024 * 1024),
}


@pytest.fixture
def _q_sync() -> None:
    """Override the suite's sync mode: tasks must travel through the real broker."""


def test_a_thousand_scrapes_with_twenty_percent_faults_are_all_classified_and_the_cluster_stays_healthy(
    fake_store, tmp_path
):
    assert set(EXPECTED) == set(FAULT_KINDS)
    store = get_store("amazon.com")
    store.min_interval_minutes, store.requests_per_minute, store.concurrency = 1, 100_000, 16
    store.save()
    assert (store.breaker_threshold, store.breaker_window_minutes) == (5, 15)  # the defaults, asserted on
    store.breaker_threshold = SCRAPES * 10  # out of reach during the burst (restored below)
    store.save()
    # This test is the scheduler (no once-a-minute dispatcher racing its breaker assertions).
    Schedule.objects.all().delete()
    purge_broker()
    fake_store.configure(slow_seconds=3, drip_interval_ms=200, oversized_bytes=2 * 1024 * 1024)
    owner = User.objects.create_user("owner@example.com", "pw-123456789", max_trackers=SCRAPES + 1)
    products = seed_tracked_products(count=SCRAPES, users=[owner], prefix="B0FLT")
    faulted = random.Random(7).sample(range(SCRAPES), int(SCRAPES * FAULT_RATE))
    fault_of: dict[str, str] = {}
    for n, index in enumerate(faulted):
        kind = FAULT_KINDS[n % len(FAULT_KINDS)]
        fault_of[products[index].asin] = kind
        # Until cleared (a redirect loop must keep faulting on every hop); scraped once anyway.
        fake_store.set_product(products[index].asin, fault=kind)

    with clusters(tmp_path, 1, AMAZON_BASE_URL=fake_store.base_url, **CLUSTER_ENV) as (cluster,):
        workers = worker_pids(cluster, count=WORKERS)
        rss_start = {pid: peak_rss_kib(pid) for pid in workers}
        started = time.monotonic()
        assert services.dispatch_due_products().claimed == SCRAPES

        def finished(count: int) -> bool:
            return ScrapeRun.objects.exclude(status=RunStatus.RUNNING).count() >= count

        # Half-way as well as at the end: growth that stops after warm-up is not a leak.
        wait_until(lambda: finished(SCRAPES // 2), timeout=150, interval=0.5, message="half of the runs")
        rss_half = {pid: peak_rss_kib(pid) for pid in workers}
        wait_until(lambda: finished(SCRAPES), timeout=150, interval=0.5, message=f"{SCRAPES} finished runs")
        elapsed = time.monotonic() - started
        rss_end = {pid: peak_rss_kib(pid) for pid in workers}
        assert sorted(worker_pids(cluster, count=WORKERS)) == sorted(workers), "a worker died or was replaced"

        # Back to the default threshold: the next blocked answer opens the breaker (the burst's
        # blocks are still within the window).
        store.refresh_from_db()
        assert store.breaker_state == Store.BreakerState.CLOSED
        Store.objects.filter(pk=store.pk).update(breaker_threshold=5)
        (blocker,) = seed_tracked_products(count=1, users=[owner], prefix="B0BLOCK")
        fake_store.set_product(blocker.asin, fault="captcha")
        assert services.dispatch_due_products().claimed == 1
        wait_until(lambda: blocker.runs.exclude(status=RunStatus.RUNNING).exists(), timeout=60, message="the block")
        store.refresh_from_db()
        assert store.breaker_state == Store.BreakerState.OPEN, store.breaker_reason
        # While open, a tick claims nothing, even a due product.
        (probe,) = seed_tracked_products(count=1, users=[owner], prefix="B0PROBE")
        # The most overdue product, so it is the one the half-open breaker lets through.
        Product.objects.filter(pk=probe.pk).update(next_scrape_at=timezone.now() - timedelta(hours=1))
        assert services.dispatch_due_products().claimed == 0
        # After the cooldown (the clock is passed in, not waited for): one probe, which succeeds.
        after_cooldown = store.breaker_opened_at + timedelta(minutes=store.breaker_cooldown_minutes, seconds=1)
        report = services.dispatch_due_products(now=after_cooldown)
        assert report.claimed == 1
        assert Store.objects.get(pk=store.pk).breaker_state == Store.BreakerState.HALF_OPEN
        wait_until(
            lambda: Store.objects.get(pk=store.pk).breaker_state == Store.BreakerState.CLOSED,
            timeout=60,
            message="the probe to close the breaker",
        )
        assert cluster.proc is not None and cluster.proc.poll() is None
        output = cluster.output()

    assert probe.runs.get().status == RunStatus.SUCCESS
    assert Store.objects.get(pk=store.pk).breaker_reason == "probe succeeded"

    # Every run classified, each exactly as its fault says.
    others = ScrapeRun.objects.exclude(product__in=[probe, blocker]).select_related("product")
    runs = {run.product.asin: run for run in others}
    assert len(runs) == SCRAPES
    for asin, run in runs.items():
        expected = EXPECTED[fault_of[asin]] if asin in fault_of else (RunStatus.SUCCESS, ErrorKind.NONE)
        assert (run.status, run.error_kind) == expected, (asin, fault_of.get(asin), run.message)
        assert run.finished_at is not None
        if run.status != RunStatus.SUCCESS:
            assert run.message
    successes = [run for run in runs.values() if run.status == RunStatus.SUCCESS]
    assert PricePoint.objects.exclude(product__in=[probe, blocker]).count() == len(successes)

    # Backoff after a failure, the interval after a success.
    for product in Product.objects.exclude(pk__in=[probe.pk, blocker.pk]):
        run = runs[product.asin]
        if run.status == RunStatus.SUCCESS:
            assert (product.consecutive_failures, product.backoff_until) == (0, None)
            wait = product.next_scrape_at - run.finished_at
            assert timedelta(minutes=60) <= wait <= timedelta(minutes=63), (product.asin, wait)
        else:
            assert product.consecutive_failures == 1
            assert product.next_scrape_at == product.backoff_until
            wait = product.backoff_until - run.finished_at
            assert timedelta(minutes=4.5) <= wait <= timedelta(minutes=5.5), (product.asin, wait)

    # The cluster stayed healthy and its workers' memory flat.
    assert Task.objects.filter(success=False).count() == 0
    assert "Traceback" not in output, output[-3000:]
    print(f"\n{SCRAPES} scrapes ({len(fault_of)} faulted) in {elapsed:.1f}s = {SCRAPES / elapsed:.1f}/s")
    for pid in workers:
        mib = [rss[pid] / 1024 for rss in (rss_start, rss_half, rss_end)]
        print(f"worker {pid}: peak RSS {mib[0]:.1f} MiB at start, {mib[1]:.1f} half-way, {mib[2]:.1f} at the end")
    for pid in workers:
        assert rss_end[pid] < 2 * rss_start[pid], (pid, rss_start[pid], rss_end[pid])
        assert rss_end[pid] < MAX_PEAK_RSS_KIB, (pid, rss_end[pid])
