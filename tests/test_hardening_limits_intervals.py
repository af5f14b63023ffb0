"""Checks keep their interval instead of landing on the dispatcher tick after it (issue #11 item 11).

A check ends a few seconds after the tick that started it, so the next one fell due a few seconds
after a tick and waited for the following one: a 1-minute tracker was checked every 2 minutes, a
60-minute one every 61. Now the dispatcher claims what is due before its next tick and the task
waits for the due time. Simulated with a fake clock: a tick a minute, tasks starting a few
seconds after their tick (the queue), through the real enqueue path in django-q2's sync mode.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from itertools import pairwise
from types import SimpleNamespace

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from tests.tracking_factories import make_product, make_tracker
from tracking import policy, services
from tracking.models import Product

pytestmark = pytest.mark.django_db

TICK = timedelta(minutes=1)
QUEUE_DELAY = timedelta(seconds=2)  # from the tick to a worker picking the task up


@pytest.fixture(autouse=True)
def _no_jitter(monkeypatch) -> None:
    """The spread added after each check (up to 5% of the interval) is not under test here."""
    monkeypatch.setattr(policy, "jitter_seconds", lambda interval: 0.0)


@pytest.fixture
def clock():
    """A frozen clock on a tick boundary; waiting for a due time moves it on instead of sleeping."""
    start = timezone.now().replace(second=0, microsecond=0) + TICK
    with time_machine.travel(start, tick=False) as traveller:
        yield traveller


@pytest.fixture
def fetches(provider, clock, monkeypatch) -> list[datetime]:
    """When the (scripted) store was asked for a page."""
    times: list[datetime] = []
    scrape = provider.scrape

    def timed(ref: str):
        times.append(timezone.now())
        return scrape(ref)

    monkeypatch.setattr(provider, "scrape", timed)
    monkeypatch.setattr(policy, "time", SimpleNamespace(sleep=lambda seconds: clock.shift(seconds)))
    return times


def run_ticks(clock, minutes: int, django_capture_on_commit_callbacks) -> None:
    """``minutes`` dispatcher ticks, one a minute; each tick's tasks run QUEUE_DELAY later."""
    start = timezone.now()
    for minute in range(minutes):
        clock.move_to(start + minute * TICK)
        with django_capture_on_commit_callbacks() as enqueue:
            services.dispatch_due_products()
        clock.move_to(start + minute * TICK + QUEUE_DELAY)
        for send in enqueue:
            send()  # the tasks, as a worker would run them


def tracked(store, user, interval: int) -> Product:
    product = make_product(store, interval_minutes=interval, next_scrape_at=timezone.now())
    make_tracker(user, product, interval_minutes=interval)
    return product


def gaps(times: list[datetime]) -> set[timedelta]:
    return {later - earlier for earlier, later in pairwise(times)}


def test_a_one_minute_tracker_is_checked_every_minute(store, alice, clock, fetches, django_capture_on_commit_callbacks):
    tracked(store, alice, interval=1)

    run_ticks(clock, 30, django_capture_on_commit_callbacks)

    assert len(fetches) == 30  # was 15: every other tick
    assert gaps(fetches) == {timedelta(minutes=1)}


def test_a_sixty_minute_tracker_is_checked_at_sixty_minutes_not_sixty_one(
    store, alice, clock, fetches, django_capture_on_commit_callbacks
):
    tracked(store, alice, interval=60)

    run_ticks(clock, 3 * 60 + 1, django_capture_on_commit_callbacks)

    assert len(fetches) == 4
    assert gaps(fetches) == {timedelta(minutes=60)}


def test_a_product_claimed_before_it_is_due_is_not_fetched_before_it_is_due(
    store, alice, clock, fetches, django_capture_on_commit_callbacks
):
    product = tracked(store, alice, interval=60)
    due = timezone.now() + timedelta(seconds=40)
    Product.objects.filter(pk=product.pk).update(next_scrape_at=due)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.dispatch_due_products().claimed == 1

    assert fetches == [due]


def test_nothing_due_after_the_next_tick_is_claimed(store, alice, clock):
    product = tracked(store, alice, interval=60)
    Product.objects.filter(pk=product.pk).update(next_scrape_at=timezone.now() + TICK + timedelta(seconds=1))

    assert services.dispatch_due_products().claimed == 0


def test_a_task_claimed_ahead_gets_its_wait_added_to_its_timeout(store, alice, clock, monkeypatch):
    sent = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, *args, **options: sent.append((args, options)))
    now = timezone.now()
    early, overdue = tracked(store, alice, interval=60), make_product(store, "B000000002", next_scrape_at=now)
    make_tracker(alice, overdue)
    Product.objects.filter(pk=early.pk).update(next_scrape_at=now + timedelta(seconds=30))

    services.queue._send_scrapes(
        [
            services.queue._ScrapeTask(early.pk, uuid.uuid4(), "scheduled", None, now + timedelta(seconds=30)),
            services.queue._ScrapeTask(overdue.pk, uuid.uuid4(), "scheduled", None),
        ]
    )

    (early_args, early_options), (overdue_args, overdue_options) = sent
    assert early_args[-1] == (now + timedelta(seconds=30)).isoformat()
    assert early_options["timeout"] == settings.Q_CLUSTER["timeout"] + 60
    assert len(overdue_args) == 4 and "timeout" not in overdue_options  # as before the change


def test_the_look_ahead_is_one_tick_and_keeps_the_task_below_the_brokers_redelivery(settings):
    assert policy.due_lookahead() == TICK
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 10, "retry": 60}
    assert policy.due_lookahead() == timedelta(seconds=20)  # 60 - 10 - the 30 s margin


def test_a_wait_is_never_longer_than_the_look_ahead(clock, monkeypatch):
    slept = []
    monkeypatch.setattr(policy, "time", SimpleNamespace(sleep=slept.append))

    assert policy.wait_until_due(timezone.now() - timedelta(seconds=5)) == 0.0
    assert policy.wait_until_due(timezone.now() + timedelta(hours=1)) == 60.0
    assert slept == [60.0]
