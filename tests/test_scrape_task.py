"""The scrape task body: record, fetch, finish once; backoff, breaker, recovery."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scraping.models import Store
from scraping.results import ErrorKind, ScrapeResult, ScrapeStatus
from tests.tracking_factories import make_product, make_tracker, record, success
from tracking import services
from tracking.models import WORKER_LOST, PricePoint, Product, RunStatus, ScrapeRun


def blocked() -> ScrapeResult:
    return ScrapeResult(status=ScrapeStatus.BLOCKED, error_kind=ErrorKind.CAPTCHA, http_status=200)


def failed() -> ScrapeResult:
    return ScrapeResult(status=ScrapeStatus.FAILED, error_kind=ErrorKind.TIMEOUT)


def test_it_records_a_run_a_price_point_and_the_product_cache(provider, alice):
    product = make_product(provider_store(provider), "B000000001")
    make_tracker(alice, product)
    provider.queue("B000000001", "19.99")
    token = services.product_claim(product_id=product.pk)
    run = services.product_scrape(product_id=product.pk, claim_token=token)
    assert run is not None and run.status == RunStatus.SUCCESS
    product.refresh_from_db()
    assert product.current_price == Decimal("19.99")
    assert product.title == "Product B000000001"
    assert product.claimed_until is None and product.claim_token is None
    assert product.next_scrape_at > timezone.now() + timedelta(minutes=59)
    assert PricePoint.objects.get().run_id == run.pk


def provider_store(provider) -> Store:
    return Store.objects.get(code="amazon.com")


def test_a_redelivered_task_records_nothing_twice(provider, alice):
    product = make_product(provider_store(provider))
    make_tracker(alice, product)
    token = services.product_claim(product_id=product.pk)
    first = services.product_scrape(product_id=product.pk, claim_token=token)
    second = services.product_scrape(product_id=product.pk, claim_token=token)
    assert first is not None and second is None
    assert ScrapeRun.objects.count() == 1
    assert PricePoint.objects.count() == 1
    assert provider.calls == [product.asin]


def test_a_task_whose_claim_was_superseded_does_nothing(provider, alice):
    product = make_product(provider_store(provider))
    make_tracker(alice, product)
    old = services.product_claim(product_id=product.pk)
    Product.objects.filter(pk=product.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    new = services.product_claim(product_id=product.pk)
    assert new is not None and new != old
    assert services.product_scrape(product_id=product.pk, claim_token=old) is None
    assert services.product_scrape(product_id=product.pk, claim_token=new) is not None
    assert ScrapeRun.objects.count() == 1


def test_a_page_without_price_updates_availability_but_adds_no_price_point(store, alice):
    product = make_product(store)
    make_tracker(alice, product)
    record(product, success("10.00"))
    record(product, success(None))
    product.refresh_from_db()
    assert product.availability == "unavailable"
    assert product.current_price is None
    assert PricePoint.objects.count() == 1


def test_failures_back_off_exponentially_and_reset_on_success(store, alice):
    store.backoff_base_minutes, store.backoff_max_minutes = 5, 30
    store.save()
    product = make_product(store)
    make_tracker(alice, product)
    delays = []
    for _ in range(5):
        before = timezone.now()
        record(product, failed())
        product.refresh_from_db()
        delays.append((product.next_scrape_at - before).total_seconds() / 60)
    assert product.consecutive_failures == 5
    # 5, 10, 20, 30 (capped), 30 minutes, each +-10%.
    for delay, expected in zip(delays, [5, 10, 20, 30, 30], strict=True):
        assert expected * 0.89 <= delay <= expected * 1.11
    record(product, success("9.00"))
    product.refresh_from_db()
    assert product.consecutive_failures == 0 and product.backoff_until is None


def test_blocks_open_the_breaker_and_a_successful_probe_closes_it(store, alice):
    store.breaker_threshold, store.breaker_cooldown_minutes = 3, 30
    store.save()
    products = [make_product(store, f"B00000000{i}") for i in range(5)]
    for product in products:
        make_tracker(alice, product)
    for product in products[:2]:
        record(product, blocked())
    store.refresh_from_db()
    assert store.breaker_state == Store.BreakerState.CLOSED
    record(products[2], blocked())
    store.refresh_from_db()
    assert store.breaker_state == Store.BreakerState.OPEN
    Product.objects.update(next_scrape_at=timezone.now() - timedelta(minutes=1))
    # Open: nothing is dispatched until the cooldown ends.
    assert services.dispatch_due_products().claimed == 0
    with time_machine.travel(timezone.now() + timedelta(minutes=31)):
        report = services.dispatch_due_products()
        assert report.claimed == 1, "half-open allows exactly one probe"
        store.refresh_from_db()
        assert store.breaker_state == Store.BreakerState.HALF_OPEN
        assert services.dispatch_due_products().claimed == 0, "no second probe while one is in flight"
        probe = Product.objects.get(claim_token__isnull=False)
        run = ScrapeRun.objects.create(product=probe, claim_token=probe.claim_token, lease_until=timezone.now())
        services.run_finish(run=run, product=probe, result=success("5.00"))
        store.refresh_from_db()
        assert store.breaker_state == Store.BreakerState.CLOSED


def test_a_blocked_probe_reopens_the_breaker(store, alice):
    store.breaker_state, store.breaker_opened_at = Store.BreakerState.HALF_OPEN, timezone.now()
    store.save()
    product = make_product(store)
    make_tracker(alice, product)
    record(product, blocked())
    store.refresh_from_db()
    assert store.breaker_state == Store.BreakerState.OPEN


def test_a_run_left_running_past_its_lease_is_closed_and_its_product_is_due_after_the_backoff(store, alice):
    store.backoff_base_minutes = 5
    store.save()
    product = make_product(store)
    make_tracker(alice, product)
    token = services.product_claim(product_id=product.pk)
    run = ScrapeRun.objects.create(
        product=product, claim_token=token, lease_until=timezone.now() - timedelta(seconds=1)
    )
    before = timezone.now()
    assert services.runs_recover_stale() == 1
    run.refresh_from_db()
    product.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.error_kind == WORKER_LOST
    # A lost run is a failure like any other: counted, and the product backs off.
    assert product.claim_token is None and product.consecutive_failures == 1
    assert product.next_scrape_at == product.backoff_until
    assert before + timedelta(minutes=4.5) <= product.next_scrape_at <= timezone.now() + timedelta(minutes=5.5)
    # The worker that was only slow comes back: its late result is discarded, nothing duplicated.
    product.refresh_from_db()
    assert services.run_finish(run=run, product=product, result=success("1.00")) is None
    assert PricePoint.objects.count() == 0


def test_an_unexpected_provider_crash_is_recorded_as_a_failed_run(provider, alice, monkeypatch):
    product = make_product(provider_store(provider))
    make_tracker(alice, product)

    def boom(asin):
        raise RuntimeError("bug")

    monkeypatch.setattr(provider, "scrape", boom)
    token = services.product_claim(product_id=product.pk)
    run = services.product_scrape(product_id=product.pk, claim_token=token)
    assert run.status == RunStatus.FAILED and run.error_kind == "internal_error"
    assert "bug" not in run.message


def test_a_scrape_queued_before_the_breaker_opened_is_handed_back_unfetched(provider, alice):
    store = provider_store(provider)
    product = make_product(store)
    make_tracker(alice, product)
    token = services.product_claim(product_id=product.pk)
    store.breaker_state, store.breaker_opened_at, store.breaker_cooldown_minutes = "open", timezone.now(), 30
    store.save()
    assert services.product_scrape(product_id=product.pk, claim_token=token) is None
    product.refresh_from_db()
    assert provider.calls == [] and ScrapeRun.objects.count() == 0
    assert product.claim_token is None
    assert product.next_scrape_at >= store.breaker_opened_at + timedelta(minutes=29)


def test_scrapes_take_request_slots_spaced_by_the_store_rate(provider, alice, monkeypatch):
    store = provider_store(provider)
    Store.objects.filter(pk=store.pk).update(requests_per_minute=60, next_request_at=None)
    slept: list[float] = []
    monkeypatch.setattr(services.scrape.time, "sleep", slept.append)
    first, second = make_product(store, "B000000001"), make_product(store, "B000000002")
    for product in (first, second):
        make_tracker(alice, product)
        services.product_scrape(product_id=product.pk, claim_token=services.product_claim(product_id=product.pk))
    a, b = ScrapeRun.objects.order_by("pk")
    assert (b.started_at - a.started_at) == timedelta(seconds=1)
    # The second task waited for its slot (about a second) before fetching.
    assert len(slept) == 1 and 0.5 < slept[0] <= 1.0
    assert provider.calls == ["B000000001", "B000000002"]


def test_a_scrape_finding_no_free_slot_in_time_gives_the_product_back_unfetched(provider, alice, monkeypatch):
    store = provider_store(provider)
    Store.objects.filter(pk=store.pk).update(concurrency=1)
    busy, product = make_product(store, "B000000001"), make_product(store, "B000000002")
    make_tracker(alice, product)
    # Another worker is fetching `busy` and holds the store's only concurrent slot.
    ScrapeRun.objects.create(
        product=busy, claim_token=services.product_claim(product_id=busy.pk), trigger="scheduled",
        started_at=timezone.now(), lease_until=timezone.now() + timedelta(minutes=5),
    )  # fmt: skip
    polls: list[float] = []
    monkeypatch.setattr(services.scrape.time, "sleep", polls.append)
    monkeypatch.setattr(services.scrape, "max_slot_wait", lambda: 2.0)
    clock = iter(range(0, 100))
    monkeypatch.setattr(services.scrape.time, "monotonic", lambda: float(next(clock)))
    token = services.product_claim(product_id=product.pk)
    assert services.product_scrape(product_id=product.pk, claim_token=token) is None
    product.refresh_from_db()
    assert provider.calls == []
    assert ScrapeRun.objects.filter(product=product).count() == 0  # no failure recorded
    assert product.claim_token is None and product.consecutive_failures == 0
    assert product.next_scrape_at > timezone.now() + timedelta(seconds=50)
    assert polls and all(p == services.SLOT_POLL_SECONDS for p in polls)


def test_a_scrape_writes_in_two_transactions_one_to_start_and_one_to_finish(provider, alice):
    """On SQLite every write transaction queues for the one write lock (BENCHMARKS.md)."""
    product = make_product(provider_store(provider))
    make_tracker(alice, product, target="1.00")  # no crossing: no outbox write
    token = services.product_claim(product_id=product.pk)
    with CaptureQueriesContext(connection) as queries:
        run = services.product_scrape(product_id=product.pk, claim_token=token)
    assert run is not None and run.status == RunStatus.SUCCESS
    # The test runs inside a transaction, so each of ours shows up as a savepoint.
    sql = [q["sql"] for q in queries.captured_queries]
    assert sum(s.startswith("SAVEPOINT") for s in sql) == 2
    writes = [s for s in sql if s.split()[0] in {"INSERT", "UPDATE", "DELETE"}]
    # claim, slot, run; then run, price point, product. An armed rule above its target writes
    # nothing (its state is read with the trackers, so no no-op re-arm UPDATE any more).
    assert len(writes) == 6
