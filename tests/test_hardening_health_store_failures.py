"""Issue #11, item 9: health degrades when a store's scrapes fail, not only when it is blocked.

Before: 18 FAILED runs in the last hour and no success ever answered ``"status": "ok"``, because
only the circuit breaker (BLOCKED outcomes) could degrade a store. Now a store is degraded when
most of its recent scrapes fail, or when every attempt has failed for a long time, and the
figures behind that are in the health body and in /metrics.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.brokers.redis_broker import Redis
from django_q.signing import SignedPackage
from django_q.status import Stat, Status
from prometheus_client.parser import text_string_to_metric_families

from scraping.models import Store
from tests.tracking_factories import make_product, make_tracker, record, success
from tracking.models import Product, RunStatus, ScrapeRun

pytestmark = pytest.mark.django_db

HEALTH = "/api/health/"
METRICS = "/metrics"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cluster_alive():
    """A live cluster heartbeat, so the only thing that can degrade health is the store."""
    broker = get_broker()
    cluster_id = uuid.uuid4().hex
    status = Status(pid=4321, cluster_id=cluster_id)
    status.workers = [1, 2]
    key = Stat.get_key(cluster_id)
    broker.set_stat(key, SignedPackage.dumps(status, True), 60)
    yield
    if isinstance(broker, Redis):  # the DB cache is rolled back with the test; Redis is not
        broker.connection.delete(key)


@pytest.fixture
def tracked(store, alice) -> Product:
    """A product of amazon.com with an enabled tracker."""
    product = make_product(store, "B0HEALTH01")
    make_tracker(alice, product)
    return product


def run_at(product: Product, status: str, *, ago: timedelta, kind: str = "") -> ScrapeRun:
    """A finished run created ``ago`` (created_at is auto_now_add, so it is moved afterwards)."""
    now = timezone.now()
    run = ScrapeRun.objects.create(
        product=product, status=status, error_kind=kind, finished_at=now - ago, duration_ms=900
    )
    ScrapeRun.objects.filter(pk=run.pk).update(created_at=now - ago)
    return run


def eighteen_failures_in_the_last_hour(product: Product) -> None:
    for i in range(18):
        run_at(product, RunStatus.FAILED, ago=timedelta(minutes=3 * i + 1), kind="timeout" if i % 3 else "http_5xx")


def amazon(body: dict) -> dict:
    return body["checks"]["stores"]["stores"]["amazon.com"]


def metric_samples(client) -> dict[tuple[str, frozenset], float]:
    response = client.get(METRICS, REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200, response.content
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


# --- The scenario -------------------------------------------------------------------


def test_eighteen_failed_runs_and_no_success_ever_degrade_health_and_say_why(api_client, tracked, cluster_alive):
    eighteen_failures_in_the_last_hour(tracked)

    response = api_client.get(HEALTH)

    # Degraded is HTTP 200: the web and API still work; a load balancer must not pull them out
    # of rotation because a store fails (503 is kept for database, broker or cluster down).
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    failing = {name for name, check in body["checks"].items() if not check["ok"]}
    assert failing == {"stores"}
    store = amazon(body)
    assert store["ok"] is False
    assert store["runs_1h"] == {"finished": 18, "failed": 18, "blocked": 0, "block_rate": 0.0, "failure_rate": 1.0}
    assert store["last_success_at"] is None
    assert store["last_success_age_seconds"] is None
    assert store["failures_since_last_success"] == 18
    assert "18 of 18 scrapes in the last hour failed" in store["reason"]
    assert "timeout 12" in store["reason"] and "http_5xx 6" in store["reason"]
    assert body["checks"]["stores"]["limits"] == {
        "min_runs": 10,
        "max_failure_rate": 0.5,
        "max_failing_seconds": 3600,
        "min_failed_attempts": 3,
    }


def test_the_same_numbers_are_in_the_metrics(client, tracked):
    eighteen_failures_in_the_last_hour(tracked)

    found = metric_samples(client)

    def value(name: str, **labels: str) -> float | None:
        return found.get((name, frozenset(labels.items())))

    assert value("pricetracker_scrape_failure_rate", store="amazon.com", window="1h") == 1.0
    assert value("pricetracker_scrape_failure_rate", store="amazon.com", window="24h") == 1.0
    assert value("pricetracker_store_failures_since_last_success", store="amazon.com") == 18
    assert value("pricetracker_store_degraded", store="amazon.com", rule="failure_rate") == 1
    assert value("pricetracker_store_degraded", store="amazon.com", rule="breaker") == 0
    # Never a success: no age rather than a made-up one.
    assert value("pricetracker_store_last_success_age_seconds", store="amazon.com") is None


# --- What stays ok ----------------------------------------------------------------------------


def test_a_healthy_store_with_a_few_failures_stays_ok(api_client, client, tracked, cluster_alive):
    for minute in range(1, 41, 2):
        run_at(tracked, RunStatus.SUCCESS, ago=timedelta(minutes=minute))
    for minute in (10, 25, 50):
        run_at(tracked, RunStatus.FAILED, ago=timedelta(minutes=minute), kind="timeout")

    body = api_client.get(HEALTH).json()

    assert body["status"] == "ok"
    store = amazon(body)
    assert (store["ok"], store["reason"]) == (True, None)
    assert store["runs_1h"]["failure_rate"] == round(3 / 23, 4)
    assert 50 <= store["last_success_age_seconds"] < 600
    found = metric_samples(client)
    assert found[("pricetracker_store_degraded", frozenset({("store", "amazon.com"), ("rule", "failure_rate")}))] == 0
    age = found[("pricetracker_store_last_success_age_seconds", frozenset({("store", "amazon.com")}))]
    assert 50 <= age < 600


def test_a_store_with_no_tracked_products_is_not_degraded_by_old_failures(api_client, store, alice, cluster_alive):
    # Its only tracker was switched off after these failures: nobody waits for its prices.
    product = make_product(store, "B0HEALTH02", next_scrape_at=None)
    make_tracker(alice, product, enabled=False)
    eighteen_failures_in_the_last_hour(product)

    body = api_client.get(HEALTH).json()

    assert body["status"] == "ok"
    store_body = amazon(body)
    assert store_body["ok"] is True
    assert store_body["runs_1h"]["failure_rate"] == 1.0  # the numbers are still shown


def test_products_never_scraped_do_not_degrade_a_store(api_client, store, alice, cluster_alive):
    for i in range(5):
        make_tracker(alice, make_product(store, f"B0NEW{i:05d}", next_scrape_at=timezone.now() + timedelta(minutes=5)))

    body = api_client.get(HEALTH).json()

    assert body["status"] == "ok"
    assert amazon(body)["last_success_at"] is None
    assert amazon(body)["failures_since_last_success"] == 0


def test_a_few_failures_are_not_yet_a_failure_rate(api_client, tracked, cluster_alive):
    # Four of four failed, but four runs say little: below HEALTH_STORE_MIN_RUNS, and not failing
    # for an hour yet.
    for minute in (2, 7, 12, 20):
        run_at(tracked, RunStatus.FAILED, ago=timedelta(minutes=minute), kind="timeout")

    body = api_client.get(HEALTH).json()

    assert body["status"] == "ok"
    assert amazon(body)["runs_1h"]["failure_rate"] == 1.0


def test_one_failure_after_a_long_quiet_spell_is_not_a_failing_store(api_client, tracked, cluster_alive):
    # A product checked every six hours: the last success is old because nothing was due, and a
    # single transient failure is retried in minutes.
    run_at(tracked, RunStatus.SUCCESS, ago=timedelta(hours=5))
    run_at(tracked, RunStatus.FAILED, ago=timedelta(minutes=90), kind="timeout")

    body = api_client.get(HEALTH).json()

    assert body["status"] == "ok"
    assert amazon(body)["failures_since_last_success"] == 1


def test_a_success_ends_a_failing_streak(api_client, tracked, cluster_alive):
    for minutes in (200, 150, 100, 60):
        run_at(tracked, RunStatus.FAILED, ago=timedelta(minutes=minutes), kind="timeout")
    run_at(tracked, RunStatus.SUCCESS, ago=timedelta(minutes=5))

    body = api_client.get(HEALTH).json()

    assert body["status"] == "ok"
    assert amazon(body)["failures_since_last_success"] == 0


def test_a_paused_store_is_not_degraded_by_its_failures(api_client, tracked, store, cluster_alive):
    eighteen_failures_in_the_last_hour(tracked)
    Store.objects.filter(pk=store.pk).update(enabled=False)

    assert api_client.get(HEALTH).json()["status"] == "ok"


# --- Failing for a long time, at a low volume ------------------------------------------------


def test_a_small_store_whose_every_attempt_failed_for_over_an_hour_is_degraded(
    api_client, client, tracked, cluster_alive
):
    # Too few runs for a failure rate (backoff spaces the retries), but no price for hours.
    run_at(tracked, RunStatus.SUCCESS, ago=timedelta(hours=5))
    for minutes in (95, 85, 65, 25):
        run_at(tracked, RunStatus.FAILED, ago=timedelta(minutes=minutes), kind="parse_error")

    body = api_client.get(HEALTH).json()

    assert body["status"] == "degraded"
    store = amazon(body)
    assert store["ok"] is False
    assert store["failures_since_last_success"] == 4
    assert store["runs_1h"]["finished"] == 1  # far too few for the rate rule
    assert 5 * 3600 - 60 <= store["last_success_age_seconds"] <= 5 * 3600 + 600
    assert "no successful scrape for 5 h" in store["reason"]
    assert "4 failed attempts in a row over the last 95 min" in store["reason"]
    found = metric_samples(client)
    labels = frozenset({("store", "amazon.com"), ("rule", "failing")})
    assert found[("pricetracker_store_degraded", labels)] == 1
    age = found[("pricetracker_store_last_success_age_seconds", frozenset({("store", "amazon.com")}))]
    assert 5 * 3600 - 60 <= age <= 5 * 3600 + 600


def test_a_success_older_than_a_day_is_still_found(api_client, store, alice, cluster_alive):
    # Runs are only read within a day; the product's cached last success covers older ones.
    product = make_product(store, "B0HEALTH03")
    make_tracker(alice, product)
    run = record(product, success("10.00"))
    two_days_ago = timezone.now() - timedelta(days=2)
    ScrapeRun.objects.filter(pk=run.pk).update(created_at=two_days_ago, finished_at=two_days_ago)
    Product.objects.filter(pk=product.pk).update(last_success_at=two_days_ago)
    for minutes in (300, 200, 100):
        run_at(product, RunStatus.FAILED, ago=timedelta(minutes=minutes), kind="timeout")

    store_body = amazon(api_client.get(HEALTH).json())

    assert store_body["last_success_at"] == two_days_ago.isoformat()
    assert store_body["ok"] is False
    assert "no successful scrape for 2 days" in store_body["reason"]


# --- Thresholds ---------------------------------------------------------------------------


def test_the_thresholds_come_from_the_settings(api_client, tracked, settings, cluster_alive):
    settings.HEALTH_STORE_MIN_RUNS = 4
    settings.HEALTH_STORE_MAX_FAILURE_PERCENT = 25
    for minute in (2, 4, 6):
        run_at(tracked, RunStatus.SUCCESS, ago=timedelta(minutes=minute))
    run_at(tracked, RunStatus.BLOCKED, ago=timedelta(minutes=8), kind="captcha")

    body = api_client.get(HEALTH).json()

    # BLOCKED counts as a failure: either way no price was recorded.
    assert body["status"] == "degraded"
    assert "1 of 4 scrapes in the last hour failed (25%" in amazon(body)["reason"]

    settings.HEALTH_STORE_MAX_FAILURE_PERCENT = 26
    assert api_client.get(HEALTH).json()["status"] == "ok"


@pytest.mark.default_db_only
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "10 50 60"),
        ({"HEALTH_STORE_MIN_RUNS": "3", "HEALTH_STORE_MAX_FAILURE_PERCENT": "80"}, "3 80 60"),
        ({"HEALTH_STORE_MAX_FAILING_MINUTES": "180"}, "10 50 180"),
        ({"HEALTH_STORE_MAX_FAILURE_PERCENT": "150"}, "HEALTH_STORE_MAX_FAILURE_PERCENT=150 is above the maximum"),
        ({"HEALTH_STORE_MIN_RUNS": "few"}, "HEALTH_STORE_MIN_RUNS='few' is not a whole number"),
    ],
)
def test_the_thresholds_are_read_from_the_environment(tmp_path, env, expected):
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.HEALTH_STORE_MIN_RUNS, s.HEALTH_STORE_MAX_FAILURE_PERCENT, s.HEALTH_STORE_MAX_FAILING_MINUTES)"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("HEALTH_STORE_")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "pricetracker.settings", "DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert expected in (result.stdout + result.stderr), result.stderr[-2000:]


# --- Cost ---------------------------------------------------------------------------------


def health_queries(client) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(HEALTH).status_code == 200
    return [query["sql"] for query in captured.captured_queries]


@pytest.mark.parametrize("failures", [3, 120])
def test_health_costs_the_same_queries_for_few_or_many_failures(api_client, tracked, failures, cluster_alive):
    run_at(tracked, RunStatus.SUCCESS, ago=timedelta(hours=3))
    for i in range(failures):
        run_at(tracked, RunStatus.FAILED, ago=timedelta(seconds=40 * i + 30), kind="timeout")
    # One query for the runs of every store, then per store: its last success, the failures
    # since, and (only when a rule fires) whether anyone still tracks it.
    runs_queries = [sql for sql in health_queries(api_client) if "scrape_runs" in sql]

    assert len(runs_queries) == 3


# A whole-table (or whole-index) read in SQLite's plan; SEARCH is an index range.
FULL_SCANS = ("SCAN scrape_runs", "SCAN products", "SCAN tracking_configs")


@pytest.mark.skipif(connection.vendor != "sqlite", reason="reads SQLite's EXPLAIN QUERY PLAN")
def test_no_store_query_of_health_or_metrics_scans_the_runs_or_products(api_client, client, tracked, cluster_alive):
    run_at(tracked, RunStatus.SUCCESS, ago=timedelta(days=3))
    for i in range(30):
        run_at(tracked, RunStatus.FAILED, ago=timedelta(minutes=2 * i + 1), kind="timeout")
    with CaptureQueriesContext(connection) as captured:
        assert api_client.get(HEALTH).json()["status"] == "degraded"
        assert client.get(METRICS, REMOTE_ADDR="127.0.0.1").status_code == 200
    checked = 0
    for query in captured.captured_queries:
        if not any(table in query["sql"] for table in ('"scrape_runs"', '"products"', '"tracking_configs"')):
            continue
        checked += 1
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN QUERY PLAN {query['sql']}")
            plan = [str(row[-1]) for row in cursor.fetchall()]
        scans = [step for step in plan if step.startswith(FULL_SCANS)]
        assert not scans, (query["sql"], plan)
    assert checked >= 4
