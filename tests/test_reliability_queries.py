"""The read endpoints cost a fixed number of queries, and history never answers an unbounded page.

An N+1 query shows up here as a count that grows with the data: each endpoint is measured with
little and with a lot of data and must issue the same, locked-in number of queries. The load
figures these protect are in BENCHMARKS.md ("Load").
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications.models import Notification
from pricetracker.api import Pagination
from tests.tracking_factories import make_product, make_tracker
from tracking.models import PricePoint, RunStatus, ScrapeRun, Tracker

pytestmark = pytest.mark.django_db

# user (JWT authentication), COUNT for the paginator, one page with product and store joined, the
# page's alert rules (one prefetch: the tracker JSON lists its rules)
LIST_QUERIES = 4
# user, the tracker (owner-scoped), COUNT, one page of points
HISTORY_QUERIES = 4
# user, the tracker, the window's min/max/avg/count, the all-time low, the current price
STATS_QUERIES = 5
# user, COUNT, one page (runs with their product joined; alerts with their product joined)
RUNS_QUERIES = 3
NOTIFICATIONS_QUERIES = 3


def observe(tracker: Tracker, points: int) -> None:
    """Record ``points`` successful observations of the tracker's product, one minute apart."""
    now = timezone.now()
    runs = ScrapeRun.objects.bulk_create(
        ScrapeRun(product=tracker.product, status=RunStatus.SUCCESS, finished_at=now) for _ in range(points)
    )
    PricePoint.objects.bulk_create(
        PricePoint(
            product=tracker.product,
            run=run,
            price=Decimal(20 + i % 7),
            currency="USD",
            availability="in_stock",
            observed_at=now - timedelta(minutes=i),
        )
        for i, run in enumerate(runs)
    )


def queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content[:300]
    return len(captured.captured_queries)


@pytest.mark.parametrize("count", [1, 60])
def test_the_tracker_list_costs_the_same_queries_for_one_tracker_or_sixty(alice, alice_client, store, count):
    for i in range(count):
        tracker = make_tracker(alice, make_product(store, f"B0QLIST{i:03d}"))
        observe(tracker, 1)
    assert queries_for(alice_client, "/api/trackers/") == LIST_QUERIES


@pytest.mark.parametrize("points", [1, 500])
def test_history_and_stats_cost_the_same_queries_for_one_point_or_five_hundred(alice, alice_client, store, points):
    tracker = make_tracker(alice, make_product(store))
    observe(tracker, points)
    assert queries_for(alice_client, f"/api/trackers/{tracker.pk}/history/") == HISTORY_QUERIES
    assert queries_for(alice_client, f"/api/trackers/{tracker.pk}/history/?from=2000-01-01") == HISTORY_QUERIES
    assert queries_for(alice_client, f"/api/trackers/{tracker.pk}/stats/") == STATS_QUERIES


@pytest.mark.parametrize("count", [1, 30])
def test_the_scrape_run_and_notification_lists_cost_the_same_queries_for_one_row_or_thirty(
    alice, alice_client, store, count
):
    for i in range(count):
        tracker = make_tracker(alice, make_product(store, f"B0QRUNS{i:03d}"))
        observe(tracker, 1)
        point = PricePoint.objects.get(product=tracker.product)
        Notification.objects.create(
            user=alice,
            tracker=tracker,
            product=tracker.product,
            price_point=point,
            price=point.price,
            target_price=tracker.target_price,
            idempotency_key=f"crossing-{tracker.pk}-{point.pk}",
        )
    assert queries_for(alice_client, "/api/scrape-runs/") == RUNS_QUERIES
    assert queries_for(alice_client, "/api/notifications/") == NOTIFICATIONS_QUERIES


@pytest.mark.skipif(connection.vendor != "sqlite", reason="reads SQLite's EXPLAIN QUERY PLAN")
def test_no_read_endpoint_scans_a_table_or_sorts_a_whole_history(alice, alice_client, store):
    """Every query of list, history and stats is an index search: none reads a whole table
    (``SCAN``) or sorts all of a product's points (``TEMP B-TREE FOR ORDER BY``). A sort of the
    last ORDER BY column among rows already in index order (``RIGHT PART OF``) is fine."""
    tracker = make_tracker(alice, make_product(store))
    observe(tracker, 200)
    for i in range(5):
        make_tracker(alice, make_product(store, f"B0QPLAN{i:03d}"))
    for url in ("/api/trackers/", f"/api/trackers/{tracker.pk}/history/?page=2", f"/api/trackers/{tracker.pk}/stats/"):
        with CaptureQueriesContext(connection) as captured:
            assert alice_client.get(url).status_code == 200
        for query in captured.captured_queries:
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN QUERY PLAN {query['sql']}")
                plan = [str(row[-1]) for row in cursor.fetchall()]
            assert not [step for step in plan if step.startswith("SCAN ")], (url, query["sql"], plan)
            assert "USE TEMP B-TREE FOR ORDER BY" not in plan, (url, query["sql"], plan)


def test_a_history_page_never_holds_more_than_the_page_size_and_the_page_size_is_capped(alice, alice_client, store):
    tracker = make_tracker(alice, make_product(store))
    observe(tracker, Pagination.max_page_size + 50)
    url = f"/api/trackers/{tracker.pk}/history/"

    default = alice_client.get(url).json()
    assert default["count"] == Pagination.max_page_size + 50
    assert len(default["results"]) == 50  # REST_FRAMEWORK["PAGE_SIZE"]
    assert default["next"] is not None

    asked = alice_client.get(url, {"page_size": 20}).json()
    assert len(asked["results"]) == 20

    greedy = alice_client.get(url, {"page_size": 100_000}).json()
    assert len(greedy["results"]) == Pagination.max_page_size == 200
    last = alice_client.get(url, {"page_size": 100_000, "page": 2}).json()
    assert len(last["results"]) == 50 and last["next"] is None
