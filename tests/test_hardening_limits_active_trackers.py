"""The active-tracker limit holds under concurrency and lives in one service (issue #11 item 4, #12).

Before: 13 parallel ``PATCH {"enabled": true}`` on SQLite gave 4 active trackers with a limit of 3
(the count ran outside the transaction), and 20 parallel creates on PostgreSQL gave 4 (count, then
insert, under READ COMMITTED). Real threads, each with its own database connection; run on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import transaction

from pricetracker.api import domain_status
from scraping.models import get_store
from tests.concurrency import run_concurrently
from tests.conftest import auth_client
from tests.tracking_factories import make_product, make_tracker
from tracking import services
from tracking.errors import TrackerLimitReached
from tracking.models import Product, Tracker


@pytest.fixture(autouse=True)
def _nothing_fetched(monkeypatch) -> None:
    """New products would be fetched at once: the scrape is not under test."""
    monkeypatch.setattr("tracking.services.queue.enqueue_scrape", lambda **kwargs: None)


def permissive_store():
    store = get_store("amazon.com")
    store.min_interval_minutes = 1
    store.save()
    return store


@pytest.mark.django_db(transaction=True)
def test_thirteen_parallel_enables_leave_exactly_the_limit_active(alice):
    alice.max_trackers = 3
    alice.save()
    store = permissive_store()
    trackers = [make_tracker(alice, make_product(store, f"B0ENABLE{i:02d}"), enabled=False) for i in range(13)]

    def enable(tracker) -> Callable[[], int]:
        return lambda: (
            auth_client(alice).patch(f"/api/trackers/{tracker.pk}/", {"enabled": True}, format="json").status_code
        )

    statuses = run_concurrently([enable(tracker) for tracker in trackers])

    assert Counter(statuses) == {200: 3, 403: 10}
    assert Tracker.objects.filter(user=alice, enabled=True).count() == 3


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_creates_leave_exactly_the_limit_active(alice):
    alice.max_trackers = 3
    alice.save()
    permissive_store()

    def create(i: int) -> Callable[[], int]:
        body = {"url": f"B0CREATE{i:02d}", "target_price": "100.00"}
        return lambda: auth_client(alice).post("/api/trackers/", body, format="json").status_code

    statuses = run_concurrently([create(i) for i in range(20)])

    assert Counter(statuses) == {201: 3, 403: 17}
    assert Tracker.objects.filter(user=alice, enabled=True).count() == 3
    # A refused create leaves no product behind (the whole create is one transaction).
    assert Product.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_enabling_the_same_tracker_twice_at_once_at_the_limit_succeeds_twice(alice):
    alice.max_trackers = 2
    alice.save()
    store = permissive_store()
    make_tracker(alice, make_product(store, "B0ENABLE00"))
    tracker = make_tracker(alice, make_product(store, "B0ENABLE01"), enabled=False)

    def enable() -> int:
        return auth_client(alice).patch(f"/api/trackers/{tracker.pk}/", {"enabled": True}, format="json").status_code

    # The second enable finds the tracker already active: it must not count itself against the limit.
    assert run_concurrently([enable, enable]) == [200, 200]
    assert Tracker.objects.filter(user=alice, enabled=True).count() == 2


def test_create_update_and_import_refuse_with_the_same_rule_and_message(alice, store):
    alice.max_trackers = 1
    alice.save()
    make_tracker(alice, make_product(store, "B0LIMIT000"))
    disabled = make_tracker(alice, make_product(store, "B0LIMIT001"), enabled=False)

    refusals = []
    for attempt in (
        lambda: services.tracker_create(user=alice, reference="B0LIMIT002", target_price=Decimal("1.00")),
        lambda: services.tracker_update(tracker=disabled, enabled=True),
        lambda: services.tracker_limit_check(user=alice),
    ):
        with pytest.raises(TrackerLimitReached) as refused, transaction.atomic():
            attempt()
        refusals.append(refused.value)

    assert {(r.code, domain_status(r), r.message) for r in refusals} == {
        (
            "tracker_limit",
            403,
            "You already have 1 active trackers, the limit for your account (1). Disable or delete one first.",
        )
    }
    assert {(r.active, r.limit) for r in refusals} == {(1, 1)}
    disabled.refresh_from_db()
    assert not disabled.enabled


def test_the_check_can_leave_out_the_tracker_being_changed(alice, store):
    alice.max_trackers = 1
    alice.save()
    active = make_tracker(alice, make_product(store, "B0LIMIT000"))

    services.tracker_limit_check(user=alice, exclude_tracker_id=active.pk)  # what the admin form asks
    with pytest.raises(TrackerLimitReached):
        services.tracker_limit_check(user=alice)


def test_a_raised_limit_is_read_at_the_time_of_the_check(alice, store):
    alice.max_trackers = 1
    alice.save()
    make_tracker(alice, make_product(store, "B0LIMIT000"))
    stale = type(alice).objects.get(pk=alice.pk)
    alice.max_trackers = 2
    alice.save()

    services.tracker_limit_check(user=stale)  # the locked row, not the caller's copy, decides
