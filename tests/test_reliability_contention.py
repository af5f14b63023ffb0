"""Reliability: API writers and a busy 8-worker cluster share one database.

Several threads create and change trackers through the real HTTP API (pytest-django's
``live_server``, a threaded WSGI server with one database connection per request thread) while
a real cluster with 8 workers scrapes a burst. The targets are moved above and below the price,
so requests and scrapes fight over the same tracker and product rows (a crossing disarms a
tracker inside the scrape's transaction; a target change re-evaluates it inside the API's).

Meant for SQLite (WAL + IMMEDIATE transactions + busy timeout, docs/decisions.md), where "database is
locked" is the failure to look for; it runs on PostgreSQL too, where the same row fight could
deadlock.
"""

from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal

import pytest
import requests
from django.utils import timezone
from django_q.models import Task
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import User
from fakestore.server import default_price
from pricetracker.schedules import register_schedules
from scraping.models import get_store
from tests.cluster import (
    clusters,
    purge_broker,
    seed_tracked_products,
    wait_for_scrapes_to_finish,
    worker_pids,
)
from tracking import services
from tracking.models import RunStatus, ScrapeRun, Tracker

pytestmark = [pytest.mark.e2e, pytest.mark.default_db_only, pytest.mark.django_db(transaction=True)]

WRITERS = 4
ROUNDS = 20  # per writer: create, raise the target, lower it, disable, enable, list
BURST = 300
ALLOWED = {200, 201}


@pytest.fixture
def _q_sync() -> None:
    """Override the suite's sync mode: tasks must travel through the real broker."""


def api_writer(base_url: str, token: str, index: int, statuses: Counter, errors: list[str]) -> None:
    """One client: each round creates a tracker for a new product and changes it four times."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    trackers = f"{base_url}/api/trackers/"

    def call(method: str, url: str, **kwargs) -> dict:
        try:
            response = session.request(method, url, timeout=60, **kwargs)
        except requests.RequestException as exc:  # a client must never see a dropped request
            errors.append(f"{method} {url}: {exc!r}")
            return {}
        statuses[response.status_code] += 1
        if response.status_code not in ALLOWED:
            errors.append(f"{method} {url}: {response.status_code} {response.text[:300]}")
            return {}
        return response.json()

    for round_ in range(ROUNDS):
        asin = f"B0API{index}{round_:04d}"
        price = default_price(asin)
        created = call("POST", trackers, json={"asin": asin, "target_price": "1.00", "interval_minutes": 60})
        if not created:
            continue
        url = f"{trackers}{created['id']}/"
        call("PATCH", url, json={"target_price": str(price + 1)})  # crossing (once its price is known)
        call("PATCH", url, json={"target_price": str(max(price - 1, Decimal("0.01")))})  # re-arms
        call("PATCH", url, json={"enabled": False})
        call("PATCH", url, json={"enabled": True})
        call("GET", trackers)


def test_api_writers_and_an_eight_worker_cluster_share_the_database_without_errors(live_server, fake_store, tmp_path):
    store = get_store("amazon.com")
    store.min_interval_minutes, store.requests_per_minute, store.concurrency = 1, 60_000, 16
    store.save()
    register_schedules()
    purge_broker()
    fake_store.configure(latency_ms=20)
    writers = [
        User.objects.create_user(
            f"writer{i}@example.com", "pw-123456789", email_verified_at=timezone.now(), max_trackers=1000
        )
        for i in range(WRITERS)
    ]
    owner = User.objects.create_user("owner@example.com", "pw-123456789", max_trackers=BURST)
    seed_tracked_products(count=BURST, users=[owner], prefix="B0CONT", crossing_every=2)
    statuses: Counter = Counter()
    errors: list[str] = []

    with clusters(tmp_path, 1, AMAZON_BASE_URL=fake_store.base_url, Q_WORKERS="8") as (cluster,):
        worker_pids(cluster, count=8)
        assert services.dispatch_due_products().claimed == BURST
        # Tokens are made here: RefreshToken.for_user writes a row, and a client thread must not
        # leave a database connection of its own behind.
        tokens = [str(RefreshToken.for_user(user).access_token) for user in writers]
        threads = [
            threading.Thread(target=api_writer, args=(live_server.url, token, i, statuses, errors))
            for i, token in enumerate(tokens)
        ]
        api_started = timezone.now()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=240)
        assert not any(thread.is_alive() for thread in threads)
        api_finished = timezone.now()
        # Every scrape, the burst's and the new trackers' first fetches, has finished.
        wait_for_scrapes_to_finish()
        assert cluster.proc is not None and cluster.proc.poll() is None
        output = cluster.output()

    # The writes really overlapped the scraping.
    concurrent_runs = ScrapeRun.objects.filter(finished_at__range=(api_started, api_finished)).count()
    print(f"\nAPI responses: {dict(statuses)}; scrapes finished while the API was written to: {concurrent_runs}")
    assert concurrent_runs >= 50
    assert errors == []
    assert sum(statuses.values()) == WRITERS * ROUNDS * 6
    assert Tracker.objects.filter(user__in=writers).count() == WRITERS * ROUNDS
    assert ScrapeRun.objects.filter(status=RunStatus.SUCCESS).count() == BURST + WRITERS * ROUNDS
    assert Task.objects.filter(success=False).count() == 0
    assert "database is locked" not in output
    assert "Traceback" not in output, output[-3000:]
