"""The product admin: state at a glance, the price chart, and the two actions an operator needs."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from scraping.models import Store
from tests.tracking_factories import make_product, make_tracker, record, success
from tracking.models import Product, RunStatus, ScrapeRun, Trigger

CHANGELIST = "/admin/tracking/product/"


def change_page(product: Product) -> str:
    return f"{CHANGELIST}{product.pk}/change/"


@pytest.fixture
def enqueued(monkeypatch) -> list[dict]:
    """Scrape tasks the admin enqueued (captured instead of sent to the queue)."""
    calls: list[dict] = []
    monkeypatch.setattr("tracking.services.queue.enqueue_scrape", lambda **kwargs: calls.append(kwargs))
    return calls


def test_the_list_shows_price_availability_and_schedule_state(admin_client, store):
    later = timezone.now() + timedelta(hours=2)
    make_product(
        store,
        asin="B00PRODLST",
        title="Milk frother",
        current_price="24.99",
        currency="USD",
        availability="in_stock",
        last_scrape_status=RunStatus.FAILED,
        consecutive_failures=3,
        backoff_until=later,
    )

    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    row = next(row for row in response.context["cl"].result_list if row.asin == "B00PRODLST")
    assert row.consecutive_failures == 3
    page = response.content.decode()
    for expected in ("B00PRODLST", "Milk frother", "$24.99", "In stock", "FAILED"):
        assert expected in page


def test_products_are_filtered_by_last_status_and_availability_and_searched(admin_client, store):
    make_product(store, asin="B0000000OK", title="Toaster", last_scrape_status="SUCCESS", availability="in_stock")
    make_product(store, asin="B00000FAIL", title="Blender", last_scrape_status="BLOCKED", availability="unknown")

    blocked = admin_client.get(CHANGELIST, {"last_scrape_status": "BLOCKED"})
    in_stock = admin_client.get(CHANGELIST, {"availability__exact": "in_stock"})
    by_title = admin_client.get(CHANGELIST, {"q": "blend"})
    by_asin = admin_client.get(CHANGELIST, {"q": "B0000000OK"})

    assert [p.asin for p in blocked.context["cl"].result_list] == ["B00000FAIL"]
    assert [p.asin for p in in_stock.context["cl"].result_list] == ["B0000000OK"]
    assert [p.asin for p in by_title.context["cl"].result_list] == ["B00000FAIL"]
    assert [p.asin for p in by_asin.context["cl"].result_list] == ["B0000000OK"]


def test_the_product_page_charts_the_price_history_with_the_trackers_targets(admin_client, store, alice, bob):
    product = make_product(store, asin="B00CHART01", title="Kettle")
    make_tracker(alice, product, target="18.00")
    make_tracker(bob, product, target="18.00")
    make_tracker(bob, make_product(store, asin="B00CHART02"), target="5.00")  # another product's
    for price in ("20.00", "19.00", "17.50", "21.00"):
        record(product, success(price))

    response = admin_client.get(change_page(product))

    assert response.status_code == 200
    page = response.content.decode()
    svg = re.search(r"<svg [^>]*class=\"price-chart\".*?</svg>", page, re.S)
    assert svg is not None
    points = re.search(r'<polyline points="([^"]+)"', svg.group(0))
    assert points is not None
    assert len(points.group(1).split()) == 4
    assert "target 18.00 USD (2 trackers)" in svg.group(0)
    assert "5.00" not in svg.group(0)
    assert "4 observation(s)" in page


def test_the_chart_escapes_a_malicious_title(admin_client, store):
    product = make_product(store, asin="B00XSS0001")
    record(product, success("10.00", title='<script>alert("owned")</script>'))

    page = admin_client.get(change_page(product)).content.decode()

    assert '<script>alert("owned")</script>' not in page
    assert "&lt;script&gt;" in page


def test_a_product_never_observed_shows_an_empty_chart(admin_client, store):
    product = make_product(store, asin="B00EMPTY01")

    response = admin_client.get(change_page(product))

    assert response.status_code == 200
    assert b"No price observations yet." in response.content


def test_the_product_page_lists_the_latest_20_runs_and_its_trackers(admin_client, store, alice):
    product = make_product(store, asin="B00INLINE1")
    make_tracker(alice, product, target="42.00")
    for _ in range(25):
        ScrapeRun.objects.create(
            product=product, status=RunStatus.FAILED, error_kind="timeout", finished_at=timezone.now()
        )

    response = admin_client.get(change_page(product))

    assert response.status_code == 200
    inlines = {formset.opts.model.__name__: formset for formset in response.context["inline_admin_formsets"]}
    assert len(inlines["ScrapeRun"].formset.forms) == 20
    assert len(inlines["Tracker"].formset.forms) == 1
    assert b"alice@example.com" in response.content
    assert b"42.00" in response.content


def test_the_product_page_is_view_only(admin_client, store):
    product = make_product(store, asin="B00VIEWONL", title="Original title")

    page = admin_client.get(change_page(product))
    post = admin_client.post(change_page(product), {"title": "Changed"})

    assert b'name="_save"' not in page.content
    assert b'name="title"' not in page.content
    assert post.status_code == 403
    product.refresh_from_db()
    assert product.title == "Original title"
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.get(f"{change_page(product)}../delete/").status_code == 403


def test_the_product_page_costs_the_same_queries_however_long_the_history(
    admin_client, store, django_assert_max_num_queries
):
    product = make_product(store, asin="B00QUERIES")
    for price in ("10.00", "11.00"):
        record(product, success(price))
    with django_assert_max_num_queries(12) as few:
        admin_client.get(change_page(product))
    for _ in range(30):
        record(product, success("12.00"))

    with django_assert_max_num_queries(len(few.captured_queries)):
        admin_client.get(change_page(product))


def test_scrape_now_queues_idle_products_and_leaves_claimed_ones_alone(admin_client, admin_user, store, enqueued):
    idle = make_product(store, asin="B00IDLE001")
    busy = make_product(store, asin="B00BUSY001")
    Product.objects.filter(pk=busy.pk).update(claimed_until=timezone.now() + timedelta(minutes=5))

    response = admin_client.post(
        CHANGELIST, {"action": "scrape_now", "_selected_action": [idle.pk, busy.pk]}, follow=True
    )

    assert response.status_code == 200
    assert [(call["product_id"], call["trigger"], call["requested_by_id"]) for call in enqueued] == [
        (idle.pk, Trigger.MANUAL, admin_user.pk)
    ]
    idle.refresh_from_db()
    assert enqueued[0]["claim_token"] == idle.claim_token
    messages = [str(message) for message in response.context["messages"]]
    assert "1 product(s) queued for scraping." in messages
    assert "1 already queued or running, left alone." in messages


def test_scrape_now_skips_a_store_whose_breaker_is_open(admin_client, store, enqueued):
    product = make_product(store, asin="B00PAUSED1")
    Store.objects.filter(pk=store.pk).update(breaker_state=Store.BreakerState.OPEN)

    response = admin_client.post(CHANGELIST, {"action": "scrape_now", "_selected_action": [product.pk]}, follow=True)

    assert enqueued == []
    product.refresh_from_db()
    assert product.claim_token is None
    messages = [str(message) for message in response.context["messages"]]
    assert any("scraping amazon.com is paused" in message for message in messages)


def test_reset_backoff_forgets_the_failures_and_makes_tracked_products_due_now(admin_client, store, alice):
    later = timezone.now() + timedelta(hours=6)
    tracked = make_product(store, asin="B00BACKOFF", consecutive_failures=4, backoff_until=later, next_scrape_at=later)
    make_tracker(alice, tracked)
    untracked = make_product(store, asin="B00NOBODY1", consecutive_failures=2, backoff_until=later, next_scrape_at=None)

    before = timezone.now()
    response = admin_client.post(
        CHANGELIST, {"action": "reset_backoff", "_selected_action": [tracked.pk, untracked.pk]}, follow=True
    )

    assert response.status_code == 200
    tracked.refresh_from_db()
    untracked.refresh_from_db()
    assert (tracked.consecutive_failures, tracked.backoff_until) == (0, None)
    assert before <= tracked.next_scrape_at <= timezone.now()
    assert (untracked.consecutive_failures, untracked.backoff_until, untracked.next_scrape_at) == (0, None, None)
    assert "Backoff reset for 2 product(s)." in [str(message) for message in response.context["messages"]]
