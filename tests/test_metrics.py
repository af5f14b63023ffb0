"""GET /metrics: who may read it, what it exports, request latency across worker processes."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from notifications.models import Notification, NotificationStatus
from scraping.models import Store
from tests.tracking_factories import make_product, make_tracker, record, success
from tracking.models import RunStatus, ScrapeRun

pytestmark = pytest.mark.django_db

URL = "/metrics"
TOKEN = "metrics-token-for-tests-0123456789"


def samples(response) -> dict[tuple[str, frozenset], float]:
    """``{(sample name, labels): value}`` of a text-format exposition."""
    assert response.status_code == 200, response.content
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def run_at(product, status: str, *, ago: timedelta, duration_ms: int = 800, kind: str = "") -> None:
    now = timezone.now()
    run = ScrapeRun.objects.create(
        product=product, status=status, error_kind=kind, finished_at=now - ago, duration_ms=duration_ms
    )
    ScrapeRun.objects.filter(pk=run.pk).update(created_at=now - ago)


# --- Access ----------------------------------------------------------------------------------


def test_loopback_clients_may_read_the_metrics(client):
    response = client.get(URL, REMOTE_ADDR="127.0.0.1")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert value(samples(response), "pricetracker_database_up") == 1


def test_ipv6_loopback_and_ipv4_mapped_loopback_are_loopback_too(client):
    assert client.get(URL, REMOTE_ADDR="::1").status_code == 200
    assert client.get(URL, REMOTE_ADDR="::ffff:127.0.0.1").status_code == 200


def test_clients_from_other_networks_are_refused(client):
    response = client.get(URL, REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 403
    assert b"pricetracker_" not in response.content


def test_the_bearer_token_opens_them_from_anywhere(client, settings):
    settings.METRICS_TOKEN = TOKEN

    response = client.get(URL, REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200


def test_a_wrong_token_is_refused_even_from_loopback(client, settings):
    settings.METRICS_TOKEN = TOKEN

    response = client.get(URL, REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x")

    assert response.status_code == 403


def test_a_token_is_refused_when_none_is_configured(client, settings):
    settings.METRICS_TOKEN = None

    assert client.get(URL, REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer anything").status_code == 403


def test_a_request_forwarded_by_a_local_proxy_needs_the_token(client, settings):
    # Behind nginx on the same host every client seems to come from 127.0.0.1.
    settings.METRICS_TOKEN = TOKEN

    assert client.get(URL, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    forwarded_with_token = client.get(
        URL, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"
    )
    assert forwarded_with_token.status_code == 200


def test_the_allowed_networks_are_configurable(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]

    assert client.get(URL, REMOTE_ADDR="10.20.30.40").status_code == 200
    assert client.get(URL, REMOTE_ADDR="127.0.0.1").status_code == 403


# --- What it exports ---------------------------------------------------------------------------


def test_it_exports_scrape_runs_by_store_and_status_failures_by_kind_and_the_block_rate(client, store):
    product = make_product(store)
    run_at(product, RunStatus.SUCCESS, ago=timedelta(minutes=5))
    run_at(product, RunStatus.SUCCESS, ago=timedelta(minutes=15))
    run_at(product, RunStatus.BLOCKED, ago=timedelta(minutes=25), kind="captcha")
    run_at(product, RunStatus.FAILED, ago=timedelta(hours=2), kind="timeout")

    found = samples(client.get(URL))

    assert value(found, "pricetracker_scrape_runs", store="amazon.com", status="SUCCESS", window="1h") == 2
    assert value(found, "pricetracker_scrape_runs", store="amazon.com", status="BLOCKED", window="1h") == 1
    assert value(found, "pricetracker_scrape_runs", store="amazon.com", status="FAILED", window="1h") == 0
    assert value(found, "pricetracker_scrape_runs", store="amazon.com", status="FAILED", window="24h") == 1
    assert value(found, "pricetracker_scrape_failures", store="amazon.com", kind="timeout", window="24h") == 1
    assert value(found, "pricetracker_scrape_failures", store="amazon.com", kind="captcha", window="1h") == 1
    assert value(found, "pricetracker_scrape_block_rate", store="amazon.com", window="1h") == pytest.approx(1 / 3)
    assert value(found, "pricetracker_scrape_block_rate", store="amazon.com", window="24h") == 0.25


def test_scrape_durations_of_the_last_hour_form_a_histogram(client, store):
    product = make_product(store)
    for duration_ms in (100, 400, 1500, 25_000):
        run_at(product, RunStatus.SUCCESS, ago=timedelta(minutes=10), duration_ms=duration_ms)
    run_at(product, RunStatus.SUCCESS, ago=timedelta(hours=3), duration_ms=50_000)  # older than the window
    run_at(product, RunStatus.FAILED, ago=timedelta(minutes=1), duration_ms=0, kind="worker_lost")  # no duration

    found = samples(client.get(URL))

    def bucket(le: str) -> float | None:
        return value(found, "pricetracker_scrape_duration_seconds_bucket", store="amazon.com", le=le)

    assert [bucket("0.25"), bucket("0.5"), bucket("2.0"), bucket("20.0"), bucket("30.0"), bucket("+Inf")] == [
        1, 2, 3, 3, 4, 4,
    ]  # fmt: skip
    assert value(found, "pricetracker_scrape_duration_seconds_gsum", store="amazon.com") == pytest.approx(27.0)


def test_openmetrics_scrapers_get_the_duration_histogram_typed_as_a_gauge_histogram(client, store):
    run_at(make_product(store), RunStatus.SUCCESS, ago=timedelta(minutes=1))

    response = client.get(URL, HTTP_ACCEPT="application/openmetrics-text; version=1.0.0; charset=utf-8")

    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert "# TYPE pricetracker_scrape_duration_seconds gaugehistogram" in response.content.decode()


def test_it_exports_breaker_state_last_success_and_overdue_products(client, store, alice):
    fresh = make_product(store, "B000000001")
    make_tracker(alice, fresh)
    run = record(fresh, success("10.00"))
    late = make_product(store, "B000000002", next_scrape_at=timezone.now() - timedelta(minutes=30))
    make_tracker(alice, late)
    Store.objects.filter(pk=store.pk).update(breaker_state=Store.BreakerState.HALF_OPEN)

    found = samples(client.get(URL))

    assert value(found, "pricetracker_store_breaker_state", store="amazon.com", state="half_open") == 1
    assert value(found, "pricetracker_store_breaker_state", store="amazon.com", state="closed") == 0
    assert value(found, "pricetracker_store_enabled", store="amazon.com") == 1
    last = value(found, "pricetracker_store_last_success_timestamp_seconds", store="amazon.com")
    assert last == pytest.approx(run.finished_at.timestamp())
    assert value(found, "pricetracker_overdue_products", store="amazon.com") == 1


def test_it_exports_alert_emails_by_status_and_the_due_backlog(client, store, alice, bob):
    product = make_product(store)
    make_tracker(alice, product)
    make_tracker(bob, product)
    record(product, success("10.00"))  # a crossing for each: two PENDING alerts
    Notification.objects.filter(user=alice).update(status=NotificationStatus.SENT, sent_at=timezone.now())
    Notification.objects.filter(user=bob).update(
        status=NotificationStatus.FAILED, sent_at=None, next_attempt_at=timezone.now() - timedelta(minutes=1)
    )

    found = samples(client.get(URL))

    assert value(found, "pricetracker_notifications", status="SENT") == 1
    assert value(found, "pricetracker_notifications", status="FAILED") == 1
    assert value(found, "pricetracker_notifications_due") == 1


def test_it_exports_queue_depth_and_live_clusters(client):
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    broker = get_broker()
    before = value(samples(client.get(URL)), "pricetracker_queue_depth")
    broker.enqueue(SignedPackage.dumps({"id": uuid.uuid4().hex, "func": "math.floor", "args": (1,), "kwargs": {}}))
    try:
        found = samples(client.get(URL))
    finally:
        broker.purge_queue()

    assert value(found, "pricetracker_queue_depth") == before + 1
    assert value(found, "pricetracker_cluster_count") is not None
    assert value(found, "pricetracker_cluster_workers") is not None


def test_a_database_failure_is_exported_as_database_down_without_its_message(client, monkeypatch):
    def broken(**kwargs):
        raise OperationalError('connection to "db-7.internal" failed: password "s3cret"')

    monkeypatch.setattr("tracking.selectors.store_runs", broken)

    response = client.get(URL)

    assert value(samples(response), "pricetracker_database_up") == 0
    assert "db-7.internal" not in response.content.decode()


# --- Request latency -----------------------------------------------------------------------------


def test_api_requests_are_timed_by_method_view_and_status(client):
    def health_requests() -> float:
        found = samples(client.get(URL))
        return (
            value(found, "pricetracker_http_request_duration_seconds_count", method="GET", view="health", status="200")
            or 0
        )

    before = health_requests()
    client.get("/api/health/")
    client.get("/api/health/")

    assert health_requests() == before + 2
    # Unknown paths share one series instead of one per probe.
    client.get("/wp-login.php")
    found = samples(client.get(URL))
    assert value(
        found, "pricetracker_http_request_duration_seconds_count", method="GET", view="unmatched", status="404"
    )


def test_latency_from_every_gunicorn_worker_is_added_up_in_multiprocess_mode(client, tmp_path, monkeypatch):
    # Another worker process records a request into the shared directory...
    worker = (
        "from prometheus_client import Histogram\n"
        "h = Histogram('pricetracker_http_request_duration_seconds', 'x', ['method', 'view', 'status'])\n"
        "h.labels('GET', 'tracker-list', '200').observe(0.3)\n"
    )
    subprocess.run(
        [sys.executable, "-c", worker], env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}, check=True, timeout=60
    )
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    # ... and this one, answering the scrape, reports it.
    found = samples(client.get(URL))

    count = value(
        found, "pricetracker_http_request_duration_seconds_count", method="GET", view="tracker-list", status="200"
    )
    assert count == 1
    assert value(found, "pricetracker_database_up") == 1
