"""The hourly manual scrape limit counts requests when they are accepted (issue #11, item 3).

It used to count the ScrapeRun rows the worker creates later, so ten requests in a row on ten
trackers were all accepted with a limit of two. The concurrent test uses real threads, each with
its own database connection (SQLite: the test database is a file in WAL mode with IMMEDIATE
transactions; PostgreSQL: READ COMMITTED, where only the user row lock serialises them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from scraping.models import get_store
from tests.concurrency import run_concurrently
from tests.conftest import auth_client
from tests.tracking_factories import make_product, make_tracker
from tracking.models import ManualScrapeRequest


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    """Product ids whose scrape was enqueued (nothing is fetched)."""
    calls: list[int] = []
    monkeypatch.setattr("tracking.services.queue.enqueue_scrape", lambda **kwargs: calls.append(kwargs["product_id"]))
    return calls


def trackers_of(user, store, count: int) -> list:
    return [make_tracker(user, make_product(store, f"B0MANUAL{i:02d}")) for i in range(count)]


def test_ten_requests_in_a_row_on_ten_trackers_are_limited_when_accepted(alice, alice_client, store, queued):
    alice.manual_scrapes_per_hour = 2
    alice.save()
    trackers = trackers_of(alice, store, 10)

    responses = [alice_client.post(f"/api/trackers/{tracker.pk}/scrape/") for tracker in trackers]

    assert [r.status_code for r in responses] == [202, 202] + [429] * 8
    assert {r.json()["code"] for r in responses[2:]} == {"manual_limit"}
    assert "2 manual scrapes for this hour" in responses[2].json()["message"]
    assert queued == [trackers[0].product_id, trackers[1].product_id]


def test_the_allowance_comes_back_an_hour_after_each_accepted_request(alice, store, queued):
    alice.manual_scrapes_per_hour = 1
    alice.save()
    first, second = trackers_of(alice, store, 2)
    start = timezone.now()

    def scrape_at(moment, tracker) -> int:
        with time_machine.travel(moment, tick=False):  # a token issued then (access tokens are short-lived)
            return auth_client(alice).post(f"/api/trackers/{tracker.pk}/scrape/").status_code

    assert scrape_at(start, first) == 202
    assert scrape_at(start + timedelta(minutes=59), second) == 429
    assert scrape_at(start + timedelta(minutes=61), second) == 202
    # Requests older than the window are forgotten as new ones are accepted: the table stays small.
    assert ManualScrapeRequest.objects.filter(user=alice).count() == 1


def test_a_refused_request_does_not_use_the_allowance(alice, alice_client, store, queued):
    alice.manual_scrapes_per_hour = 1
    alice.save()
    busy, free = trackers_of(alice, store, 2)
    busy.product.claimed_until = timezone.now() + timedelta(minutes=5)
    busy.product.save()

    assert alice_client.post(f"/api/trackers/{busy.pk}/scrape/").status_code == 409  # already queued
    assert alice_client.post(f"/api/trackers/{free.pk}/scrape/").status_code == 202
    assert ManualScrapeRequest.objects.filter(user=alice).count() == 1


def test_each_user_has_their_own_allowance(alice, alice_client, bob, bob_client, store, queued):
    for user in (alice, bob):
        user.manual_scrapes_per_hour = 1
        user.save()
    alices = make_tracker(alice, make_product(store, "B0MANUALAA"))
    bobs = make_tracker(bob, make_product(store, "B0MANUALBB"))

    assert alice_client.post(f"/api/trackers/{alices.pk}/scrape/").status_code == 202
    assert bob_client.post(f"/api/trackers/{bobs.pk}/scrape/").status_code == 202


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_never_exceed_the_limit_together(alice, queued):
    store = get_store("amazon.com")
    store.min_interval_minutes = 1
    store.save()
    alice.manual_scrapes_per_hour = 3
    alice.save()
    trackers = trackers_of(alice, store, 8)

    def request(tracker) -> Callable[[], int]:
        return lambda: auth_client(alice).post(f"/api/trackers/{tracker.pk}/scrape/").status_code

    statuses = run_concurrently([request(tracker) for tracker in trackers])

    assert Counter(statuses) == {202: 3, 429: 5}
    assert len(queued) == 3
    assert ManualScrapeRequest.objects.filter(user=alice).count() == 3
