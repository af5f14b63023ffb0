"""The scrape-run admin: an audit log an admin can filter and search, cheap on a big table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scraping.models import get_store
from tests.tracking_factories import make_product
from tracking.admin import CappedCountPaginator
from tracking.models import PricePoint, RunStatus, ScrapeRun, Trigger

CHANGELIST = "/admin/tracking/scraperun/"


def make_run(product, status: str = RunStatus.SUCCESS, **fields) -> ScrapeRun:
    """A finished run (what run_finish leaves behind), without going through a worker."""
    fields.setdefault("finished_at", timezone.now())
    run = ScrapeRun.objects.create(product=product, status=status, **fields)
    if "created_at" in fields:  # auto_now_add ignores a given value
        ScrapeRun.objects.filter(pk=run.pk).update(created_at=fields["created_at"])
    return run


@pytest.fixture
def product(store):
    return make_product(store, asin="B00RUNLIST", title="Espresso machine")


def test_the_list_shows_each_runs_product_outcome_and_timings(admin_client, product):
    make_run(
        product,
        RunStatus.BLOCKED,
        error_kind="captcha",
        http_status=503,
        duration_ms=1234,
        bytes_received=2048,
        trigger=Trigger.MANUAL,
        rule="",
        message="Captcha: Amazon asked us to type the characters of an image.",
    )

    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    page = response.content.decode()
    # The product title is the ASIN link's tooltip; bytes and rule are on the run's own page.
    for expected in ("B00RUNLIST", "Espresso machine", "Blocked (captcha)", "503", "1,234 ms", "Manual", "asked us"):
        assert expected in page


def test_runs_are_audit_records_that_nobody_adds_changes_or_deletes(admin_client, product):
    run = make_run(product, RunStatus.FAILED, error_kind="timeout", message="read timed out")

    view = admin_client.get(f"{CHANGELIST}{run.pk}/change/")
    assert view.status_code == 200
    assert b"read timed out" in view.content
    assert b'name="status"' not in view.content
    assert b'name="_save"' not in view.content

    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.post(f"{CHANGELIST}{run.pk}/change/", {"status": "SUCCESS"}).status_code == 403
    assert admin_client.get(f"{CHANGELIST}{run.pk}/delete/").status_code == 403
    assert admin_client.post(f"{CHANGELIST}{run.pk}/delete/", {"post": "yes"}).status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    # Not even the bulk delete action is offered.
    assert b'value="delete_selected"' not in admin_client.get(CHANGELIST).content


def test_the_status_filter_shows_only_runs_with_that_status(admin_client, store):
    make_run(make_product(store, asin="B00000BLK1"), RunStatus.BLOCKED, error_kind="captcha")
    make_run(make_product(store, asin="B00000OK01"), RunStatus.SUCCESS)

    response = admin_client.get(CHANGELIST, {"status__exact": "BLOCKED"})

    assert response.status_code == 200
    assert b"B00000BLK1" in response.content
    assert b"B00000OK01" not in response.content


def test_the_error_kind_filter_offers_every_kind_without_reading_the_table(admin_client, store):
    make_run(make_product(store, asin="B00000TIME"), RunStatus.FAILED, error_kind="timeout")
    make_run(make_product(store, asin="B00000WAF1"), RunStatus.BLOCKED, error_kind="waf")

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST, {"error_kind": "waf"})

    assert b"B00000WAF1" in response.content
    assert b"B00000TIME" not in response.content
    # The choices come from the code, worker_lost included, not from SELECT DISTINCT.
    assert b"?error_kind=worker_lost" in response.content
    assert not any("DISTINCT" in query["sql"] for query in queries.captured_queries)


def test_the_store_filter_shows_only_that_stores_runs(admin_client, store):
    other = get_store("example.com")
    make_run(make_product(store, asin="B00000AMZN"))
    make_run(make_product(other, asin="B00000ELSE"))

    response = admin_client.get(CHANGELIST, {"store": str(other.pk)})

    assert b"B00000ELSE" in response.content
    assert b"B00000AMZN" not in response.content


def test_search_finds_runs_by_exact_asin_or_by_part_of_the_title(admin_client, store):
    make_run(make_product(store, asin="B00000AAAA", title="Grinder"))
    make_run(make_product(store, asin="B00000BBBB", title="Kettle"))

    by_asin = admin_client.get(CHANGELIST, {"q": "B00000AAAA"})
    by_title = admin_client.get(CHANGELIST, {"q": "kett"})

    assert b"B00000AAAA" in by_asin.content
    assert b"B00000BBBB" not in by_asin.content
    assert b"B00000BBBB" in by_title.content
    assert b"B00000AAAA" not in by_title.content


def test_the_date_hierarchy_drills_down_to_days_without_scanning_every_row(admin_client, product):
    make_run(product, created_at=datetime(2026, 1, 30, 10, tzinfo=UTC))
    make_run(product, created_at=datetime(2026, 3, 2, 10, tzinfo=UTC))

    with CaptureQueriesContext(connection) as queries:
        years = admin_client.get(CHANGELIST)
        months = admin_client.get(CHANGELIST, {"created_at__year": "2026", "created_at__month": "3"})

    assert b"created_at__month=1" in years.content  # one year: it starts at the months
    assert b"created_at__month=3" in years.content
    assert b"created_at__day=2" in months.content
    assert b"created_at__day=3" not in months.content  # nothing after the last run
    assert not any("DISTINCT" in query["sql"] for query in queries.captured_queries)
    day = admin_client.get(CHANGELIST, {"created_at__year": "2026", "created_at__month": "3", "created_at__day": "2"})
    assert day.status_code == 200
    assert len(day.context["cl"].result_list) == 1


def test_the_list_costs_the_same_few_queries_for_5_or_50_runs(admin_client, store, django_assert_max_num_queries):
    def queries_for(runs: int) -> int:
        ScrapeRun.objects.all().delete()
        for index in range(runs):
            # One product per run: a per-row product lookup would show as N extra queries.
            product = make_product(store, asin=f"B{runs:03d}{index:06d}")
            make_run(product, RunStatus.FAILED, error_kind="timeout", requested_by=None)
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(CHANGELIST, {"status__exact": "FAILED"}).status_code == 200
        return len(queries)

    assert queries_for(5) == queries_for(50)
    # session, user, capped count, page, products of the page, date bounds (2), stores (filter)
    with django_assert_max_num_queries(8):
        admin_client.get(CHANGELIST)


def test_the_count_is_a_limited_subquery_and_never_a_full_count(admin_client, product):
    make_run(product)

    with CaptureQueriesContext(connection) as queries:
        admin_client.get(CHANGELIST)

    counts = [query["sql"] for query in queries.captured_queries if "COUNT(" in query["sql"].upper()]
    assert len(counts) == 1
    assert f"LIMIT {CappedCountPaginator.cap + 1}" in counts[0]


def test_past_the_cap_the_list_says_more_than_and_pages_through_the_newest(admin_client, product, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "cap", 3)
    monkeypatch.setattr("tracking.admin.ScrapeRunAdmin.list_per_page", 2)
    now = timezone.now()
    for minutes in range(5):
        make_run(product, created_at=now - timedelta(minutes=minutes))

    response = admin_client.get(CHANGELIST)

    assert b"More than 3 scrape runs" in response.content
    assert response.context["cl"].paginator.num_pages == 2
    assert admin_client.get(CHANGELIST, {"p": "2"}).status_code == 200


def test_below_the_cap_the_count_is_exact(admin_client, product):
    for _ in range(3):
        make_run(product)

    response = admin_client.get(CHANGELIST)

    assert b"3 scrape runs" in response.content
    assert b"More than" not in response.content


def test_a_run_page_links_its_product_and_its_price_point(admin_client, product):
    run = make_run(product, rule="core_price")
    point = PricePoint.objects.create(
        product=product, run=run, price="12.34", currency="USD", availability="in_stock", observed_at=timezone.now()
    )

    response = admin_client.get(f"{CHANGELIST}{run.pk}/change/")

    assert f"/admin/tracking/product/{product.pk}/change/".encode() in response.content
    assert f"/admin/tracking/pricepoint/{point.pk}/change/".encode() in response.content
    assert b"$12.34" in response.content
