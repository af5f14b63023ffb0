"""Issue #11, item 2: an attempt that cannot be recorded, or whose worker is lost, is a failure.

Before: an exception while recording (PostgreSQL's "numeric field overflow" for an absurd price)
left the run RUNNING until the sweep closed it as ``worker_lost``, which made the product due at
once without counting a failure, so it was fetched every few minutes forever. Now a failure to
record is a FAILED run (``internal_error``) and a lost run a counted failure, both backing off;
and the backoff never exceeds the product's own interval.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from scraping.models import Store
from scraping.results import ErrorKind, ScrapeResult, ScrapeStatus
from tests.tracking_factories import make_product, make_tracker, record, success
from tracking import services
from tracking.models import INTERNAL_ERROR, WORKER_LOST, PricePoint, Product, RunStatus, ScrapeRun

ABSURD = "12345678901.00"


def failed() -> ScrapeResult:
    return ScrapeResult(status=ScrapeStatus.FAILED, error_kind=ErrorKind.TIMEOUT)


def minutes_until_due(product: Product, since) -> float:
    product.refresh_from_db()
    return (product.next_scrape_at - since).total_seconds() / 60


@pytest.fixture
def policy(store) -> Store:
    store.backoff_base_minutes, store.backoff_max_minutes = 5, 1440
    store.save()
    return store


# ---- a failure to record ---------------------------------------------------------------------


def test_a_value_the_database_refuses_is_recorded_as_an_internal_error_that_backs_off(policy, alice):
    """The recording step itself, given a price the column cannot hold (no range check in front):
    PostgreSQL raises "numeric field overflow", SQLite the CHECK constraint."""
    product = make_product(policy)
    make_tracker(alice, product)
    before = timezone.now()
    run = record(product, success(ABSURD))
    assert run is not None
    run.refresh_from_db()
    assert (run.status, run.error_kind) == (RunStatus.FAILED, INTERNAL_ERROR)
    assert run.finished_at is not None and "overflow" not in run.message.lower()
    assert not PricePoint.objects.exists()
    product.refresh_from_db()
    assert product.claim_token is None and product.current_price is None
    assert (product.consecutive_failures, product.last_error_kind) == (1, INTERNAL_ERROR)
    assert 4.5 <= minutes_until_due(product, before) <= 5.6
    assert product.backoff_until == product.next_scrape_at


def test_a_crash_after_the_price_point_was_written_rolls_it_back(policy, alice, monkeypatch):
    product = make_product(policy)
    make_tracker(alice, product, target="50.00")

    def crash(**kwargs):
        raise RuntimeError("secret-looking detail")

    monkeypatch.setattr(services.record, "tracker_evaluate", crash)
    run = record(product, success("19.99"))
    assert (run.status, run.error_kind) == (RunStatus.FAILED, INTERNAL_ERROR)
    assert "secret" not in ScrapeRun.objects.get().message
    assert not PricePoint.objects.exists()
    product.refresh_from_db()
    assert product.current_price is None and product.consecutive_failures == 1


def test_a_product_whose_results_never_record_is_not_fetched_every_few_minutes(policy, alice, monkeypatch):
    """The loop from the issue, through the dispatcher: each attempt counts, each backs off longer."""
    product = make_product(policy, interval_minutes=360)
    make_tracker(alice, product, interval_minutes=360)
    monkeypatch.setattr(services.record, "tracker_evaluate", lambda **kwargs: 1 / 0)
    provider_calls = []
    monkeypatch.setattr(
        "tracking.services.scrape.get_provider",
        lambda code: type("P", (), {"scrape": lambda self, asin: provider_calls.append(asin) or success("9.99")})(),
    )
    now = timezone.now()
    for failures, expected_delay in ((1, 5), (2, 10), (3, 20)):
        with time_machine.travel(now, tick=False):
            token = services.product_claim(product_id=product.pk, now=now)
            assert token is not None
            services.product_scrape(product_id=product.pk, claim_token=token)
            product.refresh_from_db()
            assert product.consecutive_failures == failures
            delay = minutes_until_due(product, now)
            assert expected_delay * 0.89 <= delay <= expected_delay * 1.11
            # Three minutes later (what the sweep + dispatcher loop used to do) it is not due.
            assert services.dispatch_due_products(now=now + timedelta(minutes=3)).claimed == 0
        now = product.next_scrape_at + timedelta(seconds=1)
    assert len(provider_calls) == 3
    assert ScrapeRun.objects.filter(status=RunStatus.RUNNING).count() == 0


# ---- a lost run ------------------------------------------------------------------------------


def lose_a_run(product: Product) -> ScrapeRun:
    """A run whose worker died: RUNNING, its lease expired, the product's claim still its own."""
    token = services.product_claim(product_id=product.pk)
    assert token is not None
    return ScrapeRun.objects.create(
        product=product, claim_token=token, lease_until=timezone.now() - timedelta(seconds=1)
    )


def test_lost_runs_count_toward_the_backoff_like_any_failure(policy, alice):
    product = make_product(policy)
    make_tracker(alice, product)
    record(product, failed())
    record(product, failed())
    Product.objects.filter(pk=product.pk).update(next_scrape_at=timezone.now())
    lose_a_run(product)
    before = timezone.now()
    assert services.runs_recover_stale() == 1
    product.refresh_from_db()
    assert (product.consecutive_failures, product.last_error_kind) == (3, WORKER_LOST)
    assert 20 * 0.89 <= minutes_until_due(product, before) <= 20 * 1.11  # 5 x 2^2
    assert product.backoff_until == product.next_scrape_at and product.claim_token is None
    # A success afterwards resets the streak.
    record_after(product, success("9.00"))
    product.refresh_from_db()
    assert product.consecutive_failures == 0 and product.backoff_until is None


def record_after(product: Product, result: ScrapeResult) -> None:
    Product.objects.filter(pk=product.pk).update(next_scrape_at=timezone.now())
    record(product, result)


def test_a_lost_run_whose_product_was_claimed_again_leaves_the_new_claim_alone(policy, alice):
    product = make_product(policy)
    make_tracker(alice, product)
    lose_a_run(product)
    Product.objects.filter(pk=product.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    new_token = services.product_claim(product_id=product.pk)
    assert services.runs_recover_stale() == 1
    product.refresh_from_db()
    assert product.claim_token == new_token and product.consecutive_failures == 0


def test_a_started_run_keeps_its_claim_past_its_lease_so_the_sweep_gets_there_first(provider, alice, monkeypatch):
    store = Store.objects.get(code="amazon.com")
    product = make_product(store)
    make_tracker(alice, product)
    token = services.product_claim(product_id=product.pk)
    started = services.scrape._run_start(
        product_id=product.pk, claim_token=token, trigger="scheduled", requested_by_id=None
    )
    run = started[0]
    product.refresh_from_db()
    assert product.claimed_until >= run.lease_until + timedelta(minutes=1)
    just_after_the_lease = run.lease_until + timedelta(seconds=1)
    assert services.product_claim(product_id=product.pk, now=just_after_the_lease) is None
    assert services.runs_recover_stale(now=just_after_the_lease) == 1
    product.refresh_from_db()
    assert product.consecutive_failures == 1 and product.claim_token is None


# ---- the backoff is capped at the product's interval --------------------------------------------


def test_a_product_that_keeps_failing_is_checked_at_its_interval_at_least(policy, alice):
    product = make_product(policy, interval_minutes=30)
    make_tracker(alice, product, interval_minutes=30)
    delays = []
    for _ in range(6):
        before = timezone.now()
        record_after(product, failed())
        delays.append(minutes_until_due(product, before))
    # 5, 10, 20 (+-10%), then the interval instead of 40, 80, 160.
    for delay, expected in zip(delays, [5, 10, 20], strict=False):
        assert expected * 0.89 <= delay <= expected * 1.11
    assert all(29.9 <= delay <= 30.1 for delay in delays[3:]), delays
    product.refresh_from_db()
    assert product.consecutive_failures == 6


def test_the_backoff_is_never_under_a_minute(policy, alice):
    Store.objects.filter(pk=policy.pk).update(backoff_base_minutes=1, backoff_max_minutes=1)
    product = make_product(Store.objects.get(pk=policy.pk), interval_minutes=1)
    make_tracker(alice, product, interval_minutes=1)
    before = timezone.now()
    record(product, failed())
    assert minutes_until_due(product, before) >= 1


def test_a_lost_run_backs_off_at_most_the_products_interval(policy, alice):
    product = make_product(policy, interval_minutes=15, consecutive_failures=8)
    make_tracker(alice, product, interval_minutes=15)
    lose_a_run(product)
    before = timezone.now()
    services.runs_recover_stale()
    assert 14.9 <= minutes_until_due(product, before) <= 15.1


def test_the_products_price_is_unchanged_by_failures(policy, alice):
    product = make_product(policy)
    make_tracker(alice, product)
    record(product, success("12.00"))
    record_after(product, success(ABSURD))
    product.refresh_from_db()
    assert product.current_price == Decimal("12.00")
    assert PricePoint.objects.count() == 1
