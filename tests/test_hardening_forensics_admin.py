"""Admin forensics (issue #11): a run's page tells its story, titles read like sentences, times
show seconds and their zone, and the run list has a message column.

The browser half (the list fits a 1400 px window) is in tests/test_admin_browser.py.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications.models import Notification
from scraping.models import get_store
from scraping.providers import get_provider
from scraping.results import Availability, ErrorKind, ScrapeResult, ScrapeStatus
from tests.tracking_factories import make_product, make_tracker, record, success
from tracking.models import INTERNAL_ERROR, WORKER_LOST, PricePoint, RunStatus, ScrapeRun, Trigger

RUNS = "/admin/tracking/scraperun/"
# Seconds that are not zero, so a page that drops them cannot pass.
PICKED_UP = datetime(2026, 3, 2, 10, 15, 42, tzinfo=UTC)


def run_page(run: ScrapeRun) -> str:
    return f"{RUNS}{run.pk}/change/"


def text_of(response) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, whitespace collapsed."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def make_run(product, status: str = RunStatus.SUCCESS, *, created_at: datetime = PICKED_UP, **fields) -> ScrapeRun:
    """A finished run as run_finish leaves it, with a chosen creation time."""
    if status != RunStatus.RUNNING:
        fields.setdefault("finished_at", created_at + timedelta(seconds=1))
    run = ScrapeRun.objects.create(product=product, status=status, **fields)
    ScrapeRun.objects.filter(pk=run.pk).update(created_at=created_at)  # auto_now_add ignores a given value
    run.refresh_from_db()
    return run


@pytest.fixture
def product(store):
    return make_product(store, asin="B0FORENSIC", title="Milk frother")


# --- Titles ---------------------------------------------------------------------------------------


def test_a_run_is_titled_with_its_number_product_outcome_and_time_to_the_second(admin_client, product):
    run = make_run(product, RunStatus.BLOCKED, error_kind="captcha", http_status=200)
    title = f"Run #{run.pk} of B0FORENSIC: BLOCKED (captcha) at 2026-03-02 10:15:42 UTC"

    assert str(run) == title
    page = text_of(admin_client.get(run_page(run)))
    assert page.count(title) >= 2  # the heading and the breadcrumbs


def test_a_successful_run_is_titled_without_an_error_kind(product):
    run = make_run(product, RunStatus.SUCCESS, rule="core_price_display")

    assert str(run) == f"Run #{run.pk} of B0FORENSIC: SUCCESS at 2026-03-02 10:15:42 UTC"


def test_a_tracker_reads_with_its_user_target_and_alert_state(admin_client, alice, bob, product, store):
    armed = make_tracker(alice, product, target="120.00")
    disarmed = make_tracker(bob, product, target="99.50", armed=False)
    disabled = make_tracker(alice, make_product(store, asin="B0DISABLED"), target="5.00", enabled=False)

    assert str(armed) == f"tracker #{armed.pk} (alice@example.com): target 120.00, armed"
    assert str(disarmed) == f"tracker #{disarmed.pk} (bob@example.com): target 99.50, disarmed"
    assert str(disabled) == f"tracker #{disabled.pk} (alice@example.com): target 5.00, disabled"
    # The product page's tracker rows carry those titles (no "1 -> 3 <= 120.00").
    page = text_of(admin_client.get(f"/admin/tracking/product/{product.pk}/change/"))
    assert str(armed) in page
    assert str(disarmed) in page
    assert "->" not in page


def test_the_product_pages_run_rows_are_titled_like_the_runs_page(admin_client, product):
    run = make_run(product, RunStatus.FAILED, error_kind="timeout", message="Read timed out.")

    page = text_of(admin_client.get(f"/admin/tracking/product/{product.pk}/change/"))

    assert f"Run #{run.pk} of B0FORENSIC: FAILED (timeout) at 2026-03-02 10:15:42 UTC" in page


def test_a_price_point_is_titled_with_its_product_amount_and_time_to_the_second(admin_client, product):
    record(product, success("19.99"))
    point = PricePoint.objects.get()
    PricePoint.objects.filter(pk=point.pk).update(observed_at=PICKED_UP)
    point.refresh_from_db()

    assert str(point) == f"Price point #{point.pk} of B0FORENSIC: 19.99 USD at 2026-03-02 10:15:42 UTC"
    page = text_of(admin_client.get(f"/admin/tracking/pricepoint/{point.pk}/change/"))
    assert str(point) in page
    assert f"Run #{point.run_id}" in page


# --- What was fetched, when, by whom ------------------------------------------------------------


def test_the_run_page_shows_the_url_the_worker_requested(admin_client, product, settings):
    settings.AMAZON_BASE_URL = "http://127.0.0.1:8765/shop/"
    run = make_run(product)

    page = text_of(admin_client.get(run_page(run)))

    assert "URL requested: http://127.0.0.1:8765/shop/dp/B0FORENSIC" in page


def test_the_url_shown_is_the_one_the_provider_fetched(admin_client, store, fake_store):
    product = make_product(store, asin="B0FAKESTOR")
    result = get_provider("amazon.com").scrape(product.asin)  # a real request to the loopback store
    run = record(product, result)

    page = text_of(admin_client.get(run_page(run)))

    assert fake_store.counts() == {"B0FAKESTOR": 1}
    assert f"URL requested: {fake_store.url('B0FAKESTOR')}" in page
    assert f"Summary: {fake_store.url('B0FAKESTOR')} fetched by" in page


def test_the_requested_url_never_shows_credentials_of_the_base_url(admin_client, product, settings):
    settings.AMAZON_BASE_URL = "https://scraper:s3cret-pass@store.example.test:8443"
    run = make_run(product)

    response = admin_client.get(run_page(run))

    assert "https://store.example.test:8443/dp/B0FORENSIC" in text_of(response)
    assert b"s3cret-pass" not in response.content


def test_a_run_of_a_store_without_a_provider_says_so_instead_of_failing(admin_client):
    other = make_product(get_store("example.com"), asin="B0NOPROVID")
    run = make_run(other)

    response = admin_client.get(run_page(run))

    assert response.status_code == 200
    assert "URL requested: - (no provider for this store)" in text_of(response)


def test_the_run_page_shows_when_to_the_second_with_the_zone_and_which_worker(admin_client, product, alice):
    run = make_run(
        product,
        worker="scraper-7.internal:4242",
        trigger=Trigger.MANUAL,
        requested_by=alice,
        started_at=datetime(2026, 3, 2, 10, 15, 44, tzinfo=UTC),
        finished_at=datetime(2026, 3, 2, 10, 15, 46, tzinfo=UTC),
        duration_ms=1875,
    )

    page = text_of(admin_client.get(run_page(run)))

    assert "Picked up: 2026-03-02 10:15:42 UTC" in page
    assert "Request started: 2026-03-02 10:15:44 UTC" in page
    assert "Finished: 2026-03-02 10:15:46 UTC" in page
    assert "Took: 1,875 ms" in page
    assert "Worker: scraper-7.internal:4242" in page
    assert "Trigger: Manual" in page
    assert "alice@example.com" in page


def test_times_follow_the_configured_time_zone_and_name_it(admin_client, product, settings):
    settings.TIME_ZONE = "Europe/Paris"
    run = make_run(product)

    page = text_of(admin_client.get(run_page(run)))

    assert "Picked up: 2026-03-02 11:15:42 CET" in page
    assert f"Run #{run.pk} of B0FORENSIC: SUCCESS at 2026-03-02 11:15:42 CET" in page


# --- What came back -----------------------------------------------------------------------------


def test_the_run_page_shows_what_came_back_and_why_no_rule_matched_a_block_page(admin_client, product):
    run = make_run(
        product,
        RunStatus.BLOCKED,
        error_kind=ErrorKind.SERVICE_UNAVAILABLE,
        http_status=503,
        bytes_received=2345,
        message="HTTP 503: service unavailable.",
    )

    page = text_of(admin_client.get(run_page(run)))

    assert "Outcome: Blocked (service unavailable)" in page
    assert "HTTP status: 503" in page
    assert "Bytes received: 2.3 KB (2,345 bytes)" in page
    assert "Rule: None: the store refused the request; a block page is never parsed." in page
    assert "Message: HTTP 503: service unavailable." in page


@pytest.mark.parametrize(
    ("status", "kind", "because"),
    [
        (RunStatus.FAILED, ErrorKind.PARSE_ERROR, "no price rule and no known no-price state matched"),
        (RunStatus.FAILED, ErrorKind.TIMEOUT, "no complete page came back to parse"),
        (RunStatus.FAILED, ErrorKind.NOT_FOUND, "the response was not a product page, so it was not parsed"),
        (RunStatus.FAILED, WORKER_LOST, "the worker stopped before it recorded an outcome"),
        (RunStatus.FAILED, INTERNAL_ERROR, "an error in our own code ended the run"),
        (RunStatus.RUNNING, "", "None yet: the run has not finished."),
    ],
)
def test_the_run_page_says_why_no_rule_matched(admin_client, product, status, kind, because):
    run = make_run(product, status, error_kind=kind)

    assert because in text_of(admin_client.get(run_page(run)))


def test_an_unknown_error_kind_falls_back_to_the_runs_message(admin_client, product):
    run = make_run(product, RunStatus.FAILED, error_kind="something_new", message="A reason nobody foresaw.")

    page = text_of(admin_client.get(run_page(run)))

    assert "Rule: None: A reason nobody foresaw." in page
    assert "foresaw.." not in page


def test_a_successful_run_names_the_rule_that_found_the_price(admin_client, product):
    run = record(product, success("19.99", rule="core_price_display", http_status=200, bytes_received=180_000))

    page = text_of(admin_client.get(run_page(run)))

    assert "Rule: core_price_display" in page
    assert "Outcome: Success" in page


# --- What it changed ----------------------------------------------------------------------------


def test_the_run_page_links_the_price_point_and_the_alerts_it_caused(admin_client, product, alice, bob):
    alices = make_tracker(alice, product, target="25.00")
    make_tracker(bob, product, target="10.00")  # below the price: no alert
    run = record(product, success("19.99"))
    point = PricePoint.objects.get(run=run)
    alert = Notification.objects.get(price_point=point)

    response = admin_client.get(run_page(run))
    page = text_of(response)

    assert f'href="/admin/tracking/pricepoint/{point.pk}/change/"'.encode() in response.content
    assert f"Price point #{point.pk}: $19.99" in page
    assert f'href="/admin/notifications/notification/{alert.pk}/change/"'.encode() in response.content
    assert f'href="/admin/tracking/tracker/{alices.pk}/change/"'.encode() in response.content
    assert f"Alert #{alert.pk} to alice@example.com: $19.99 (target 25.00)" in page
    assert "bob@example.com" not in page
    assert "1 alert(s)" in page  # the summary line


def test_a_price_without_alerts_and_a_failure_say_why_nothing_followed(admin_client, product, alice):
    make_tracker(alice, product, target="5.00")
    quiet = record(product, success("19.99"))
    failed = make_run(product, RunStatus.FAILED, error_kind="timeout")

    quiet_page = text_of(admin_client.get(run_page(quiet)))
    failed_page = text_of(admin_client.get(run_page(failed)))

    assert "Alerts caused: None: no alert rule of an enabled tracker fired on this price." in quiet_page
    assert "Price point written: None." in failed_page
    assert "Alerts caused: None: no price point, so no tracker was checked." in failed_page


def test_the_price_point_page_links_its_alerts_too(admin_client, product, alice):
    make_tracker(alice, product, target="25.00")
    record(product, success("19.99"))
    point = PricePoint.objects.get()
    alert = Notification.objects.get(price_point=point)

    response = admin_client.get(f"/admin/tracking/pricepoint/{point.pk}/change/")

    assert f'href="/admin/notifications/notification/{alert.pk}/change/"'.encode() in response.content


def test_the_summary_line_tells_the_whole_run(admin_client, product, settings):
    settings.AMAZON_BASE_URL = "https://www.amazon.com"
    run = make_run(
        product,
        RunStatus.BLOCKED,
        error_kind="captcha",
        http_status=200,
        bytes_received=5120,
        duration_ms=812,
        worker="scraper-2:77",
        started_at=datetime(2026, 3, 2, 10, 15, 43, tzinfo=UTC),
    )

    page = text_of(admin_client.get(run_page(run)))

    assert (
        "Summary: https://www.amazon.com/dp/B0FORENSIC fetched by scraper-2:77 at 2026-03-02 10:15:43 UTC: "
        "HTTP 200, 5.0 KB in 812 ms; BLOCKED (captcha); wrote no price point, no alert."
    ) in page


def test_the_run_page_costs_the_same_queries_for_one_alert_or_many(admin_client, store, make_user):
    def queries_for(alerts: int) -> int:
        product = make_product(store, asin=f"B0ALERTS{alerts:02d}")
        for index in range(alerts):
            make_tracker(make_user(f"user{alerts}-{index}@example.com"), product, target="50.00")
        run = record(product, success("19.99"))
        assert run is not None
        assert Notification.objects.filter(price_point__run=run).count() == alerts
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(run_page(run)).status_code == 200
        return len(queries)

    assert queries_for(1) == queries_for(6)


# --- The list -----------------------------------------------------------------------------------


def test_the_list_has_a_message_column_whose_full_text_is_the_tooltip(admin_client, product):
    message = "A long explanation of what went wrong. " * 12
    make_run(product, RunStatus.FAILED, error_kind="parse_error", message=message.strip())

    response = admin_client.get(RUNS)

    assert response.status_code == 200
    assert b'class="column-message_excerpt"' in response.content
    assert f'title="{message.strip()}"'.encode() in response.content


def test_runs_can_be_filtered_by_the_error_kinds_tracking_adds(admin_client, product):
    make_run(product, RunStatus.FAILED, error_kind="unconfirmed_price", message="Not repeated.")
    make_run(product, RunStatus.FAILED, error_kind="timeout")

    response = admin_client.get(RUNS, {"error_kind": "unconfirmed_price"})

    assert [run.error_kind for run in response.context["cl"].result_list] == ["unconfirmed_price"]
    assert b"?error_kind=unconfirmed_price" in response.content


def test_the_list_shows_times_to_the_second_with_the_zone(admin_client, product):
    make_run(product)

    assert "2026-03-02 10:15:42 UTC" in text_of(admin_client.get(RUNS))


def test_a_message_cannot_inject_markup_into_the_list_or_the_page(admin_client, product):
    run = make_run(product, RunStatus.FAILED, error_kind="parse_error", message='"><script>alert(1)</script>')

    for response in (admin_client.get(RUNS), admin_client.get(run_page(run))):
        assert b"<script>alert(1)" not in response.content


# --- Times elsewhere ----------------------------------------------------------------------------


def test_product_tracker_and_store_pages_show_times_to_the_second(admin_client, product, alice, store):
    tracker = make_tracker(alice, product)
    moment = datetime(2026, 3, 2, 10, 15, 42, tzinfo=UTC)
    type(product).objects.filter(pk=product.pk).update(last_scraped_at=moment)
    type(tracker).objects.filter(pk=tracker.pk).update(last_alert_at=moment)
    type(store).objects.filter(pk=store.pk).update(breaker_opened_at=moment)

    for url in (
        "/admin/tracking/product/",
        f"/admin/tracking/product/{product.pk}/change/",
        "/admin/tracking/tracker/",
        f"/admin/tracking/tracker/{tracker.pk}/change/",
        "/admin/scraping/store/",
        f"/admin/scraping/store/{store.pk}/change/",
    ):
        assert "2026-03-02 10:15:42 UTC" in text_of(admin_client.get(url)), url


def test_a_result_without_a_price_names_its_no_price_rule(admin_client, product):
    result = ScrapeResult(
        status=ScrapeStatus.SUCCESS,
        availability=Availability.UNAVAILABLE,
        rule="no_price:currently_unavailable",
        http_status=200,
        message="No price shown (no_price:currently_unavailable).",
    )
    run = record(product, result)

    page = text_of(admin_client.get(run_page(run)))

    assert "Rule: no_price:currently_unavailable" in page
    assert "Price point written: None." in page
