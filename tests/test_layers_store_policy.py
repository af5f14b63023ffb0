"""The store's behaviour next to the Store model (issue 12, item 4).

A change of policy goes through one service, ``scraping.services.store_update_policy``, which
calls the handlers registered in ``scraping.hooks`` (tracking re-derives its products'
intervals): no save signals. The breaker and the request slot are ``scraping.policy``'s, which
asks tracking for the counts only tracking has.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, transaction
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from scraping import hooks, policy
from scraping.models import Store
from scraping.results import ScrapeStatus
from scraping.services import store_update_policy
from tests.tracking_factories import make_product, make_tracker
from tracking import policy as tracking_policy
from tracking.models import RunStatus, ScrapeRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def register(monkeypatch):
    """Register a min-interval handler for one test only."""
    monkeypatch.setattr(hooks, "_min_interval_handlers", list(hooks.min_interval_handlers()))
    return hooks.register_min_interval_handler


# --- The minimum interval travels through the service, not through signals -------------------


def test_raising_the_minimum_through_the_service_slows_tracked_products_down_to_it(store, alice):
    last = timezone.now() - timedelta(minutes=10)
    due = last + timedelta(minutes=30)
    product = make_product(store, interval_minutes=30, last_scraped_at=last, next_scrape_at=due)
    make_tracker(alice, product, interval_minutes=30)

    store_update_policy(store=store, min_interval_minutes=120)

    product.refresh_from_db()
    assert (product.interval_minutes, product.next_scrape_at) == (120, last + timedelta(minutes=120))
    assert Store.objects.get(pk=store.pk).min_interval_minutes == 120


def test_a_stale_store_object_changes_only_what_it_was_asked_to(store):
    """A worker opened the breaker and took a request slot after the object was read: both stay."""
    stale = Store.objects.get(pk=store.pk)
    opened_at, slot = timezone.now(), timezone.now() + timedelta(seconds=5)
    Store.objects.filter(pk=store.pk).update(
        breaker_state=Store.BreakerState.OPEN, breaker_opened_at=opened_at, next_request_at=slot
    )

    store_update_policy(store=stale, requests_per_minute=9)

    row = Store.objects.get(pk=store.pk)
    assert (row.requests_per_minute, row.breaker_state, row.breaker_opened_at, row.next_request_at) == (
        9,
        Store.BreakerState.OPEN,
        opened_at,
        slot,
    )


@pytest.mark.parametrize("field", ["breaker_state", "next_request_at", "code", "nonsense"])
def test_fields_that_are_not_policy_are_refused(store, field):
    with pytest.raises(ValueError, match=field):
        store_update_policy(store=store, **{field: "x"})


def test_the_handlers_run_only_when_the_minimum_changes(store, register):
    calls: list[int] = []
    register(lambda *, store_id: calls.append(store_id))

    store_update_policy(store=store, requests_per_minute=7)
    store_update_policy(store=store, min_interval_minutes=store.min_interval_minutes)
    store_update_policy(store=store, min_interval_minutes=store.min_interval_minutes + 5)

    assert calls == [store.pk]


def test_a_failing_handler_rolls_the_change_back(store, register):
    """The new minimum and the schedules under it commit together, or not at all."""

    def broken(*, store_id: int) -> None:
        raise DatabaseError("the products could not be updated")

    register(broken)
    before = store.min_interval_minutes

    with pytest.raises(DatabaseError):
        store_update_policy(store=store, min_interval_minutes=before + 30)

    assert Store.objects.get(pk=store.pk).min_interval_minutes == before


def test_registering_a_handler_twice_calls_it_once(store, register):
    calls: list[int] = []

    def handler(*, store_id: int) -> None:
        calls.append(store_id)

    register(handler)
    register(handler)
    store_update_policy(store=store, min_interval_minutes=store.min_interval_minutes + 1)

    assert calls == [store.pk]


def test_tracking_registers_its_handler_at_start_up():
    from tracking.services import store_apply_min_interval

    assert store_apply_min_interval in hooks.min_interval_handlers()


def test_no_save_signal_of_the_store_carries_the_change_any_more():
    assert not pre_save.has_listeners(Store)
    assert not post_save.has_listeners(Store)


def test_a_new_store_is_inserted_whole(register):
    calls: list[int] = []
    register(lambda *, store_id: calls.append(store_id))

    store = store_update_policy(store=Store(code="example.test", name="Example"), min_interval_minutes=45)

    assert Store.objects.get(code="example.test").min_interval_minutes == 45 == store.min_interval_minutes
    assert calls == []  # a new store has no products to re-derive


# --- The breaker's state machine, in scraping, fed counts by tracking --------------------------


def test_blocks_up_to_the_threshold_open_the_breaker_with_the_count_tracking_gives(store):
    Store.objects.filter(pk=store.pk).update(breaker_threshold=3, breaker_window_minutes=15)
    now = timezone.now()
    asked: list[timedelta] = []

    def blocks_since(since):
        asked.append(now - since)
        return 3

    moved = policy.breaker_record(store_id=store.pk, status=ScrapeStatus.BLOCKED, now=now, blocks_since=blocks_since)

    assert moved == Store.BreakerState.OPEN
    assert asked == [timedelta(minutes=15)]
    row = Store.objects.get(pk=store.pk)
    assert (row.breaker_state, row.breaker_opened_at, row.breaker_reason) == (
        Store.BreakerState.OPEN,
        now,
        "3 blocked responses within 15 min",
    )


def test_the_block_count_is_only_asked_for_a_block_while_closed(store):
    def never(since):
        raise AssertionError("not needed")

    now = timezone.now()
    assert policy.breaker_record(store_id=store.pk, status=ScrapeStatus.SUCCESS, now=now, blocks_since=never) is None
    Store.objects.filter(pk=store.pk).update(breaker_state=Store.BreakerState.HALF_OPEN)
    assert (
        policy.breaker_record(store_id=store.pk, status=ScrapeStatus.BLOCKED, now=now, blocks_since=never)
        == Store.BreakerState.OPEN
    )
    assert Store.objects.get(pk=store.pk).breaker_reason == "probe was blocked"


def test_tracking_counts_the_blocked_runs_of_the_store_in_the_window(store):
    Store.objects.filter(pk=store.pk).update(breaker_threshold=2, breaker_window_minutes=10)
    product = make_product(store)
    now = timezone.now()
    ScrapeRun.objects.create(product=product, status=RunStatus.BLOCKED, finished_at=now - timedelta(minutes=30))
    ScrapeRun.objects.create(product=product, status=RunStatus.BLOCKED, finished_at=now - timedelta(minutes=1))

    assert tracking_policy.breaker_record(store_id=store.pk, status=RunStatus.BLOCKED, now=now) is None

    ScrapeRun.objects.create(product=product, status=RunStatus.BLOCKED, finished_at=now)
    assert tracking_policy.breaker_record(store_id=store.pk, status=RunStatus.BLOCKED, now=now) == "open"


def test_an_open_breaker_lets_one_probe_go_after_its_cooldown(store):
    now = timezone.now()
    Store.objects.filter(pk=store.pk).update(
        breaker_state=Store.BreakerState.OPEN,
        breaker_opened_at=now - timedelta(minutes=31),
        breaker_cooldown_minutes=30,
        breaker_reason="5 blocked",
    )
    store.refresh_from_db()
    assert store.breaker_cooldown_ends_at() == now - timedelta(minutes=1)

    assert policy.breaker_dispatch_budget(store, now=now, in_flight=0) == 1

    row = Store.objects.get(pk=store.pk)
    assert (row.breaker_state, row.breaker_reason) == (Store.BreakerState.HALF_OPEN, "5 blocked")
    assert row.breaker_cooldown_ends_at() == now - timedelta(minutes=1)  # probing: the cooldown is over
    assert policy.breaker_dispatch_budget(row, now=now, in_flight=1) == 0  # one probe at a time


def test_a_closed_breaker_has_no_cooldown_and_allows_manual_scrapes_unless_the_store_is_paused(store):
    assert store.breaker_cooldown_ends_at() is None
    assert store.allows_manual_scrape()
    store.enabled = False
    assert not store.allows_manual_scrape()


def test_manual_open_and_close_set_the_state_the_reason_and_when_it_opened(store):
    opened = policy.breaker_set(store_ids=[store.pk], state=Store.BreakerState.OPEN, reason="maintenance " * 40)
    row = Store.objects.get(pk=store.pk)
    assert opened == 1
    assert row.breaker_state == Store.BreakerState.OPEN and row.breaker_opened_at is not None
    assert len(row.breaker_reason) == 200
    assert not row.allows_manual_scrape()

    policy.breaker_set(store_ids=[store.pk], state=Store.BreakerState.CLOSED, reason="done")
    closed = Store.objects.get(pk=store.pk)
    assert (closed.breaker_state, closed.breaker_opened_at, closed.breaker_reason) == (
        Store.BreakerState.CLOSED,
        row.breaker_opened_at,
        "done",
    )
    assert closed.allows_manual_scrape()


# --- Request slots: the count of fetches in flight is taken under the store row lock ----------


def test_a_request_slot_is_refused_when_the_fetches_in_flight_reach_the_concurrency(store):
    Store.objects.filter(pk=store.pk).update(concurrency=2, requests_per_minute=60, next_request_at=None)
    now = timezone.now()

    with transaction.atomic():
        assert policy.take_request_slot(store_id=store.pk, now=now, max_wait_seconds=5, fetching=lambda: 2) is None
        assert policy.take_request_slot(store_id=store.pk, now=now, max_wait_seconds=5, fetching=lambda: 1) == now
        # The next slot is a second away: too long for a fetch that may wait half a second.
        assert policy.take_request_slot(store_id=store.pk, now=now, max_wait_seconds=0.5, fetching=lambda: 1) is None
        assert Store.objects.get(pk=store.pk).next_request_at == now + timedelta(seconds=1)


def test_tracking_counts_its_runs_that_are_fetching(store):
    Store.objects.filter(pk=store.pk).update(concurrency=1, next_request_at=None)
    product = make_product(store)
    now = timezone.now()
    ScrapeRun.objects.create(product=product, started_at=now, lease_until=now + timedelta(minutes=5))

    with transaction.atomic():
        assert tracking_policy.take_request_slot(store_id=store.pk, now=now, max_wait_seconds=5) is None
    ScrapeRun.objects.update(lease_until=now - timedelta(seconds=1))  # its lease ran out: no longer counted
    with transaction.atomic():
        assert tracking_policy.take_request_slot(store_id=store.pk, now=now, max_wait_seconds=5) == now


def test_the_backoff_doubles_per_failure_up_to_the_cap(store):
    Store.objects.filter(pk=store.pk).update(backoff_base_minutes=5, backoff_max_minutes=60)
    store.refresh_from_db()
    for failures, minutes in ((1, 5), (2, 10), (4, 40), (5, 60), (500, 60)):
        delay = policy.backoff_delay(store, failures)
        assert timedelta(minutes=minutes * 0.9) <= delay <= timedelta(minutes=minutes * 1.1)
