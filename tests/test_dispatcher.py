"""The dispatcher: which products are due, budgets, and claims that never collide."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.concurrency import run_concurrently
from tests.tracking_factories import make_product, make_tracker
from tracking import services
from tracking.models import Product, ScrapeRun


@pytest.fixture
def enqueued(monkeypatch):
    """Capture enqueued scrapes instead of running them."""
    calls: list[tuple[int, str]] = []
    monkeypatch.setattr(
        services.queue,
        "enqueue_scrape",
        lambda *, product_id, claim_token, trigger, requested_by_id=None, not_before=None: calls.append(
            (product_id, trigger)
        ),
    )
    return calls


def test_it_claims_due_products_only(store, alice, enqueued):
    now = timezone.now()
    due = make_product(store, "B000000001", next_scrape_at=now - timedelta(minutes=1))
    later = make_product(store, "B000000002", next_scrape_at=now + timedelta(minutes=5))
    untracked = make_product(store, "B000000003", next_scrape_at=now - timedelta(minutes=1))
    disabled = make_product(store, "B000000004", next_scrape_at=now - timedelta(minutes=1))
    for product in (due, later):
        make_tracker(alice, product)
    make_tracker(alice, disabled, enabled=False)
    report = services.dispatch_due_products()
    assert report.claimed == 1
    assert enqueued == [(due.pk, "scheduled")]
    assert untracked.pk not in {pk for pk, _ in enqueued}


def test_a_claimed_product_is_not_claimed_again_until_its_lease_expires(store, alice, enqueued):
    product = make_product(store, next_scrape_at=timezone.now() - timedelta(minutes=1))
    make_tracker(alice, product)
    assert services.dispatch_due_products().claimed == 1
    assert services.dispatch_due_products().claimed == 0
    Product.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert services.dispatch_due_products().claimed == 1


def test_it_respects_the_store_rate_and_what_is_still_in_flight(store, alice, enqueued):
    store.requests_per_minute = 5
    store.save()
    for i in range(12):
        make_tracker(alice, make_product(store, f"B0000000{i:02d}", next_scrape_at=timezone.now()))
    assert services.dispatch_due_products().claimed == 5
    # Five are still queued: the next tick adds nothing until they finish.
    assert services.dispatch_due_products().claimed == 0


def test_a_disabled_store_is_not_dispatched(store, alice, enqueued):
    store.enabled = False
    store.save()
    make_tracker(alice, make_product(store))
    assert services.dispatch_due_products().claimed == 0


def test_a_failing_product_is_dispatched_as_a_retry(store, alice, enqueued):
    product = make_product(store, consecutive_failures=2)
    make_tracker(alice, product)
    services.dispatch_due_products()
    assert enqueued == [(product.pk, "retry")]


def test_oldest_due_products_go_first(store, alice, enqueued):
    store.requests_per_minute = 2
    store.save()
    now = timezone.now()
    ids = []
    for i, minutes in enumerate([1, 30, 10, 20]):
        product = make_product(store, f"B0000000{i:02d}", next_scrape_at=now - timedelta(minutes=minutes))
        make_tracker(alice, product)
        ids.append(product.pk)
    services.dispatch_due_products()
    assert [pk for pk, _ in enqueued] == [ids[1], ids[3]]


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_at_once_claim_each_product_once(alice, enqueued):
    from scraping.models import get_store

    store = get_store("amazon.com")
    store.requests_per_minute = 10_000
    store.save()
    products = [make_product(store, f"B00000{i:04d}") for i in range(200)]
    for product in products:
        make_tracker(alice, product)
    reports = run_concurrently([services.dispatch_due_products] * 2)
    assert sum(report.claimed for report in reports) == 200
    assert len(enqueued) == 200 and len({pk for pk, _ in enqueued}) == 200


def test_a_products_interval_is_the_smallest_enabled_tracker_interval_not_below_the_store_minimum(store, alice, bob):
    store.min_interval_minutes = 30
    store.save()
    product = make_product(store)
    make_tracker(alice, product, interval_minutes=120)
    make_tracker(bob, product, interval_minutes=45)
    assert services.product_refresh_schedule(product_id=product.pk).interval_minutes == 45
    product.trackers.filter(user=bob).update(interval_minutes=10)
    assert services.product_refresh_schedule(product_id=product.pk).interval_minutes == 30
    product.trackers.update(enabled=False)
    assert services.product_refresh_schedule(product_id=product.pk).next_scrape_at is None


def test_the_whole_chain_runs_through_the_task_queue(provider, alice):
    product = make_product(Product._meta.get_field("store").related_model.objects.get(code="amazon.com"), "B000000009")
    make_tracker(alice, product)
    from django.db import transaction

    with transaction.atomic():
        services.dispatch_due_products()
    assert ScrapeRun.objects.filter(product=product).count() <= 1
