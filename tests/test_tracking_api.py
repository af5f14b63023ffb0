"""The trackers API: create, read, change, delete, manual scrapes, history, stats, runs."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from scraping.models import Store
from scraping.results import ErrorKind, ScrapeResult, ScrapeStatus
from tests.tracking_factories import make_product, make_tracker, record, success
from tracking.models import ManualScrapeRequest, PricePoint, Product, ScrapeRun, Tracker

URL = "https://www.amazon.com/Some-Thing/dp/B0823MDHDJ/ref=sr_1_1?th=1&psc=1"


def create(client, **body):
    body.setdefault("target_price", "100.00")
    return client.post("/api/trackers/", body, format="json")


def test_alice_creates_a_tracker_by_url_and_sees_title_and_price_at_once(
    alice_client, provider, django_capture_on_commit_callbacks
):
    provider.queue("B0823MDHDJ", "159.00")
    with django_capture_on_commit_callbacks(execute=True):
        response = create(alice_client, url=URL, interval_minutes=60)
    assert response.status_code == 201, response.json()
    tracker = alice_client.get(f"/api/trackers/{response.json()['id']}/").json()
    product = tracker["product"]
    assert product["asin"] == "B0823MDHDJ"
    assert product["url"] == "https://www.amazon.com/dp/B0823MDHDJ"
    assert product["current_price"] == "159.00"
    assert product["title"] == "Product B0823MDHDJ"
    assert product["last_scrape_status"] == "SUCCESS"
    assert tracker["target_price"] == "100.00" and tracker["armed"] is True
    assert ScrapeRun.objects.get().trigger == "initial"


def test_a_tracker_can_be_created_by_asin(alice_client, provider):
    response = create(alice_client, asin="b0823mdhdj")
    assert response.status_code == 201
    assert response.json()["product"]["asin"] == "B0823MDHDJ"


@pytest.mark.parametrize(
    "body",
    [
        {"url": "https://amazon.com.evil.example/dp/B0823MDHDJ"},
        {"url": "https://www.amazon.cn/dp/B0823MDHDJ"},
        {"url": "javascript:alert(1)"},
        {"asin": "not-an-asin"},
        {},
        {"url": URL, "asin": "B0823MDHDJ"},
    ],
)
def test_bad_product_references_get_a_clear_400_and_store_nothing(alice_client, provider, body):
    response = create(alice_client, **body)
    assert response.status_code == 400
    data = response.json()
    assert data["message"] and "url" in data["errors"]
    assert Tracker.objects.count() == 0


@pytest.mark.parametrize("price", ["0", "-5", "abc", "1e400", "12.345", "99999999999"])
def test_absurd_target_prices_are_refused(alice_client, provider, price):
    response = create(alice_client, asin="B0823MDHDJ", target_price=price)
    assert response.status_code == 400
    assert "target_price" in response.json()["errors"]


def test_an_interval_below_the_store_minimum_is_refused(alice_client, store, provider):
    store.min_interval_minutes = 30
    store.save()
    response = create(alice_client, asin="B0823MDHDJ", interval_minutes=10)
    assert response.status_code == 400
    assert "minimum interval" in response.json()["errors"]["interval_minutes"][0]


def test_tracking_the_same_product_twice_is_a_clear_conflict(alice_client, provider):
    first = create(alice_client, asin="B0823MDHDJ")
    second = create(alice_client, url=URL)
    assert second.status_code == 409
    assert second.json()["code"] == "duplicate_tracker"
    assert second.json()["tracker_id"] == first.json()["id"]


def test_the_active_tracker_limit_is_enforced(alice, alice_client, provider):
    alice.max_trackers = 1
    alice.save()
    assert create(alice_client, asin="B0823MDHDJ").status_code == 201
    response = create(alice_client, asin="B075CYMYK6")
    assert response.status_code == 403
    assert response.json()["code"] == "tracker_limit"


def test_alice_lists_only_her_trackers(alice, bob, alice_client, store):
    mine = make_tracker(alice, make_product(store, "B000000001"))
    make_tracker(bob, make_product(store, "B000000002"))
    data = alice_client.get("/api/trackers/").json()
    assert data["count"] == 1 and data["results"][0]["id"] == mine.pk


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", ""), ("patch", ""), ("delete", ""), ("post", "scrape/"), ("get", "history/"), ("get", "stats/")],
)
def test_bobs_tracker_is_a_404_for_alice(bob, alice_client, store, method, suffix):
    tracker = make_tracker(bob, make_product(store))
    response = getattr(alice_client, method)(f"/api/trackers/{tracker.pk}/{suffix}")
    assert response.status_code == 404
    assert Tracker.objects.filter(pk=tracker.pk).exists()


def test_anonymous_clients_are_refused(api_client):
    assert api_client.get("/api/trackers/").status_code == 401


def test_patch_changes_target_interval_and_enabled(alice, alice_client, store):
    tracker = make_tracker(alice, make_product(store))
    body = {"target_price": "80.00", "interval_minutes": 120, "enabled": False}
    response = alice_client.patch(f"/api/trackers/{tracker.pk}/", body, format="json")
    assert response.status_code == 200, response.json()
    tracker.refresh_from_db()
    assert (tracker.target_price, tracker.interval_minutes, tracker.enabled) == (Decimal("80.00"), 120, False)


def test_patch_refuses_fields_that_cannot_change(alice, alice_client, store):
    tracker = make_tracker(alice, make_product(store))
    response = alice_client.patch(f"/api/trackers/{tracker.pk}/", {"armed": False}, format="json")
    assert response.status_code == 400 and "armed" in response.json()["errors"]


def test_raising_the_target_above_the_current_price_fires_once(alice, alice_client, store):
    product = make_product(store)
    tracker = make_tracker(alice, product, "50.00")
    record(product, success("60.00"))
    tracker.refresh_from_db()
    assert tracker.armed
    alice_client.patch(f"/api/trackers/{tracker.pk}/", {"target_price": "70.00"}, format="json")
    tracker.refresh_from_db()
    assert not tracker.armed and tracker.last_alert_at is not None


def test_deleting_a_tracker_keeps_the_products_history(alice, bob, alice_client, store):
    product = make_product(store)
    tracker = make_tracker(alice, product)
    make_tracker(bob, product)
    record(product, success("10.00"))
    assert alice_client.delete(f"/api/trackers/{tracker.pk}/").status_code == 204
    assert Product.objects.filter(pk=product.pk).exists()
    assert PricePoint.objects.filter(product=product).count() == 1


def test_a_manual_scrape_is_queued_with_202(alice, alice_client, provider, django_capture_on_commit_callbacks):
    tracker = make_tracker(alice, make_product(Store.objects.get(code="amazon.com")))
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(f"/api/trackers/{tracker.pk}/scrape/")
    assert response.status_code == 202
    run = ScrapeRun.objects.get()
    assert run.trigger == "manual" and run.requested_by_id == alice.pk and run.status == "SUCCESS"


def test_a_manual_scrape_too_soon_after_the_last_is_refused_with_a_reason(alice, alice_client, store):
    store.min_interval_minutes = 60
    store.save()
    product = make_product(store)
    tracker = make_tracker(alice, product)
    record(product, success("10.00"))
    response = alice_client.post(f"/api/trackers/{tracker.pk}/scrape/")
    assert response.status_code == 429
    assert response.json()["code"] == "too_soon" and response.json()["retry_after_seconds"] > 0
    assert int(response["Retry-After"]) == response.json()["retry_after_seconds"]


def test_the_manual_scrape_limit_per_user_is_enforced(alice, alice_client, store):
    alice.manual_scrapes_per_hour = 2
    alice.save()
    tracker = make_tracker(alice, make_product(store))
    for _ in range(2):
        ManualScrapeRequest.objects.create(user=alice)  # accepted requests count, not runs (issue #11)
    response = alice_client.post(f"/api/trackers/{tracker.pk}/scrape/")
    assert response.status_code == 429 and response.json()["code"] == "manual_limit"
    # The oldest request leaves the one-hour window in just under an hour.
    assert 3500 < int(response["Retry-After"]) <= 3600


def test_a_manual_scrape_is_refused_while_the_breaker_is_open(alice, alice_client, store):
    store.breaker_state = Store.BreakerState.OPEN
    store.breaker_opened_at = timezone.now()
    store.breaker_cooldown_minutes = 10
    store.save()
    tracker = make_tracker(alice, make_product(store))
    response = alice_client.post(f"/api/trackers/{tracker.pk}/scrape/")
    assert response.status_code == 503 and response.json()["code"] == "store_paused"
    # Retry when the breaker's cooldown ends and its probe may go.
    assert 590 < int(response["Retry-After"]) <= 600


def test_a_manual_scrape_while_one_is_queued_is_a_conflict(alice, alice_client, store, monkeypatch):
    monkeypatch.setattr("tracking.services.queue.enqueue_scrape", lambda **kwargs: None)
    tracker = make_tracker(alice, make_product(store))
    assert alice_client.post(f"/api/trackers/{tracker.pk}/scrape/").status_code == 202
    assert alice_client.post(f"/api/trackers/{tracker.pk}/scrape/").status_code == 409


def observe_series(product, prices, start):
    for i, price in enumerate(prices):
        with time_machine.travel(start + timedelta(hours=i), tick=False):
            record(product, success(price))


def test_history_is_paginated_filtered_by_window_and_exported_as_csv(alice, alice_client, store):
    product = make_product(store)
    tracker = make_tracker(alice, product)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    observe_series(product, [str(10 + i) for i in range(60)], start)
    page = alice_client.get(f"/api/trackers/{tracker.pk}/history/").json()
    assert page["count"] == 60 and len(page["results"]) == 50 and page["next"]
    assert page["results"][0]["price"] == "10.00"
    window = alice_client.get(
        f"/api/trackers/{tracker.pk}/history/", {"from": "2026-01-01T10:00:00Z", "to": "2026-01-01T12:00:00Z"}
    ).json()
    assert [p["price"] for p in window["results"]] == ["20.00", "21.00", "22.00"]
    response = alice_client.get(f"/api/trackers/{tracker.pk}/history/", {"format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [
        "observed_at",
        "price",
        "currency",
        "list_price",
        "availability",
        "price_formatted",
        "list_price_formatted",
    ]
    assert len(rows) == 61 and rows[1][1] == "10.00" and rows[1][5] == "$10.00"


def test_history_refuses_a_malformed_window(alice, alice_client, store):
    tracker = make_tracker(alice, make_product(store))
    response = alice_client.get(f"/api/trackers/{tracker.pk}/history/", {"from": "yesterday"})
    assert response.status_code == 400 and "from" in response.json()["errors"]


def test_stats_cover_the_window_and_the_all_time_low(alice, alice_client, store):
    product = make_product(store)
    tracker = make_tracker(alice, product, "1.00")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    observe_series(product, ["30.00", "10.00", "20.00", "40.00", "25.00"], start)
    stats = alice_client.get(f"/api/trackers/{tracker.pk}/stats/").json()
    assert stats["min"] == "10.00" and stats["max"] == "40.00" and stats["avg"] == "25.00"
    assert stats["count"] == 5 and stats["current"] == "25.00"
    assert stats["all_time_low"] == "10.00"
    assert stats["all_time_low_at"].startswith("2026-03-01T01:00")
    window = alice_client.get(f"/api/trackers/{tracker.pk}/stats/", {"from": "2026-03-01T02:00:00Z"}).json()
    assert window["min"] == "20.00" and window["count"] == 3 and window["all_time_low"] == "10.00"


def test_stats_of_a_product_never_observed_are_empty_not_an_error(alice, alice_client, store):
    tracker = make_tracker(alice, make_product(store))
    stats = alice_client.get(f"/api/trackers/{tracker.pk}/stats/").json()
    assert stats["count"] == 0 and stats["min"] is None and stats["current"] is None


def test_scrape_runs_list_covers_the_users_products_and_filters_by_status(alice, bob, alice_client, store):
    mine = make_product(store, "B000000001")
    theirs = make_product(store, "B000000002")
    make_tracker(alice, mine)
    make_tracker(bob, theirs)
    record(mine, success("5.00"))
    record(mine, ScrapeResult(status=ScrapeStatus.BLOCKED, error_kind=ErrorKind.CAPTCHA))
    record(theirs, success("6.00"))
    runs = alice_client.get("/api/scrape-runs/").json()
    assert runs["count"] == 2 and {r["asin"] for r in runs["results"]} == {"B000000001"}
    blocked = alice_client.get("/api/scrape-runs/", {"status": "BLOCKED"}).json()
    assert blocked["count"] == 1 and blocked["results"][0]["error_kind"] == "captcha"
    assert alice_client.get("/api/scrape-runs/", {"status": "NOPE"}).status_code == 400


def test_the_fast_tracker_rendering_matches_drfs_field_by_field(alice, store):
    from tracking.serializers import TrackerSerializer

    product = make_product(store, list_price=Decimal("12.5"), current_price=Decimal("10"))
    tracker = make_tracker(alice, product, "9.90")
    record(product, success("8.00"))
    tracker = Tracker.objects.select_related("product__store").get(pk=tracker.pk)
    serializer = TrackerSerializer()
    assert serializer.to_representation(tracker) == serializer.generic_representation(tracker)
    empty = make_tracker(alice, make_product(store, "B000000002", next_scrape_at=None), "5")
    empty = Tracker.objects.select_related("product__store").get(pk=empty.pk)
    assert serializer.to_representation(empty) == serializer.generic_representation(empty)
