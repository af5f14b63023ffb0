"""GET /api/health/: status rules, cluster heartbeat, queue, overdue products, stores, outbox."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.brokers.redis_broker import Redis
from django_q.models import Schedule, Task
from django_q.signing import SignedPackage
from django_q.status import Stat, Status

from notifications.models import Notification, NotificationStatus
from pricetracker.schedules import register_schedules
from scraping.models import Store
from tests.tracking_factories import make_product, make_tracker, record, success
from tracking.models import RunStatus, ScrapeRun

pytestmark = pytest.mark.django_db

URL = "/api/health/"


@pytest.fixture
def heartbeat():
    """Publish a cluster heartbeat the way a running qcluster does (signed Stat in the cache)."""
    broker = get_broker()
    keys: list[str] = []

    def beat(cluster_id: str | None = None, workers: int = 4) -> None:
        cluster_id = cluster_id or uuid.uuid4().hex
        status = Status(pid=4321, cluster_id=cluster_id)
        status.workers = list(range(workers))
        key = Stat.get_key(cluster_id)
        keys.append(key)
        broker.set_stat(key, SignedPackage.dumps(status, True), 60)

    yield beat
    for key in keys:
        # The DB cache is rolled back with the test; Redis is not.
        if isinstance(broker, Redis):
            broker.connection.delete(key)


@pytest.fixture
def require_cluster(settings):
    settings.HEALTH_REQUIRE_CLUSTER = True


def finished_dispatch(*, ago: timedelta) -> None:
    """Record that a worker finished the dispatcher task ``ago`` (as django-q2 would)."""
    register_schedules()
    now = timezone.now()
    task = Task.objects.create(
        id=uuid.uuid4().hex,
        name="dispatch",
        func="tracking.tasks.dispatch_due_products",
        started=now - ago - timedelta(seconds=1),
        stopped=now - ago,
        success=True,
    )
    Schedule.objects.filter(name="tracking.dispatch").update(task=task.pk)


def run_at(product, status: str, *, ago: timedelta, kind: str = "") -> ScrapeRun:
    """A finished run created ``ago`` (created_at is auto_now_add, so it is moved afterwards)."""
    now = timezone.now()
    run = ScrapeRun.objects.create(
        product=product, status=status, error_kind=kind, finished_at=now - ago, duration_ms=800
    )
    ScrapeRun.objects.filter(pk=run.pk).update(created_at=now - ago)
    return run


def test_it_reports_ok_when_the_database_broker_and_a_cluster_are_fine(api_client, store, heartbeat, require_cluster):
    heartbeat(workers=4)

    response = api_client.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "queue", "cluster", "overdue_products", "stores", "outbox"}
    assert all(check["ok"] for check in body["checks"].values())
    assert response["Cache-Control"] == "no-store"


def test_it_counts_live_clusters_their_workers_and_the_heartbeat_age(api_client, heartbeat):
    heartbeat(workers=4)
    heartbeat(workers=2)

    cluster = api_client.get(URL).json()["checks"]["cluster"]

    assert cluster["clusters"] == 2
    assert cluster["workers"] == 6
    assert 0 <= cluster["heartbeat_age_seconds"] < 60


def test_it_is_unhealthy_without_a_cluster_when_workers_are_expected(api_client, require_cluster):
    response = api_client.get(URL)

    assert response.status_code == 503
    assert response["Retry-After"] == "60"
    body = response.json()
    assert body["status"] == "unhealthy"
    cluster = body["checks"]["cluster"]
    assert (cluster["ok"], cluster["required"], cluster["clusters"]) == (False, True, 0)


def test_it_is_only_degraded_without_a_cluster_when_none_is_required(api_client, settings):
    settings.HEALTH_REQUIRE_CLUSTER = False

    response = api_client.get(URL)

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["cluster"]["ok"] is False


def test_a_recent_dispatcher_run_counts_as_a_sign_of_life_without_a_heartbeat(api_client, require_cluster):
    finished_dispatch(ago=timedelta(minutes=2))

    response = api_client.get(URL)

    assert response.status_code == 200
    cluster = response.json()["checks"]["cluster"]
    assert cluster["ok"] is True
    assert 110 <= cluster["last_dispatch_age_seconds"] <= 200


def test_a_dispatcher_run_older_than_the_allowed_silence_does_not(api_client, require_cluster, settings):
    settings.HEALTH_CLUSTER_MAX_SILENCE_MINUTES = 5
    finished_dispatch(ago=timedelta(minutes=6))

    response = api_client.get(URL)

    assert response.status_code == 503
    assert response.json()["checks"]["cluster"]["max_silence_seconds"] == 300


def test_it_is_unhealthy_when_the_database_is_down_and_does_not_say_where_it_is(api_client, monkeypatch):
    def broken_cursor(*args, **kwargs):
        raise OperationalError('could not connect to server at "db-7.internal" (10.1.2.3), user "pt" password "s3cret"')

    monkeypatch.setattr("pricetracker.health.connection.cursor", broken_cursor)

    response = api_client.get(URL)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["queue"] == {"ok": False, "skipped": "database unavailable"}
    for secret in ("db-7.internal", "10.1.2.3", "s3cret"):
        assert secret not in response.content.decode()


def test_a_broken_broker_makes_it_unhealthy_without_revealing_its_address(api_client, monkeypatch):
    def unreachable() -> int:
        raise ConnectionError("Error 111 connecting to redis://:hunter2@redis.internal:6379/0")

    monkeypatch.setattr("pricetracker.health.queue_depth", unreachable)

    response = api_client.get(URL)

    assert response.status_code == 503
    assert response.json()["checks"]["queue"] == {"ok": False, "error": "check failed; see the server log"}
    assert "hunter2" not in response.content.decode()
    assert "redis.internal" not in response.content.decode()


def test_queue_depth_counts_tasks_waiting_for_a_worker(api_client):
    broker = get_broker()
    before = api_client.get(URL).json()["checks"]["queue"]["depth"]
    broker.enqueue(SignedPackage.dumps({"id": "a", "func": "math.floor", "args": (1,), "kwargs": {}}))
    broker.enqueue(SignedPackage.dumps({"id": "b", "func": "math.floor", "args": (2,), "kwargs": {}}))
    try:
        assert api_client.get(URL).json()["checks"]["queue"]["depth"] == before + 2
    finally:
        broker.purge_queue()


def test_products_due_for_more_than_ten_minutes_are_overdue(api_client, store, alice, settings):
    settings.HEALTH_REQUIRE_CLUSTER = False
    now = timezone.now()
    late = make_product(store, "B000000001", next_scrape_at=now - timedelta(minutes=11))
    make_tracker(alice, late)
    slightly_late = make_product(store, "B000000002", next_scrape_at=now - timedelta(minutes=5))
    make_tracker(alice, slightly_late)
    in_flight = make_product(
        store, "B000000003", next_scrape_at=now - timedelta(hours=1), claimed_until=now + timedelta(minutes=5)
    )
    make_tracker(alice, in_flight)
    nobody_wants_it = make_product(store, "B000000004", next_scrape_at=now - timedelta(hours=1))
    make_tracker(alice, nobody_wants_it, enabled=False)

    body = api_client.get(URL).json()

    assert body["checks"]["overdue_products"] == {"ok": False, "count": 1, "older_than_minutes": 10}
    assert body["checks"]["stores"]["stores"]["amazon.com"]["overdue_products"] == 1
    assert body["status"] == "degraded"


def test_products_of_a_paused_store_are_not_overdue(api_client, store, alice):
    product = make_product(store, next_scrape_at=timezone.now() - timedelta(hours=2))
    make_tracker(alice, product)
    Store.objects.filter(pk=store.pk).update(enabled=False)

    assert api_client.get(URL).json()["checks"]["overdue_products"]["count"] == 0


def test_it_reports_the_block_rate_per_store_over_the_last_hour_and_day(api_client, store):
    product = make_product(store)
    run_at(product, RunStatus.BLOCKED, ago=timedelta(minutes=10), kind="captcha")
    for minutes in (5, 20, 40):
        run_at(product, RunStatus.SUCCESS, ago=timedelta(minutes=minutes))
    for hours in (3, 5, 7, 9):
        run_at(product, RunStatus.FAILED, ago=timedelta(hours=hours), kind="timeout")
    run_at(product, RunStatus.BLOCKED, ago=timedelta(hours=30), kind="captcha")  # outside both windows
    ScrapeRun.objects.create(product=product, claim_token=uuid.uuid4())  # still running: not counted

    amazon = api_client.get(URL).json()["checks"]["stores"]["stores"]["amazon.com"]

    assert amazon["runs_1h"] == {"finished": 4, "failed": 0, "blocked": 1, "block_rate": 0.25, "failure_rate": 0.25}
    assert amazon["runs_24h"] == {"finished": 8, "failed": 4, "blocked": 1, "block_rate": 0.125, "failure_rate": 0.625}


def test_a_store_without_runs_has_no_block_rate_rather_than_zero(api_client, store):
    amazon = api_client.get(URL).json()["checks"]["stores"]["stores"]["amazon.com"]

    assert amazon["runs_1h"] == {"finished": 0, "failed": 0, "blocked": 0, "block_rate": None, "failure_rate": None}
    assert amazon["last_success_at"] is None


def test_it_shows_when_the_store_last_scraped_successfully(api_client, store, alice):
    product = make_product(store)
    make_tracker(alice, product)
    run = record(product, success("10.00"))

    amazon = api_client.get(URL).json()["checks"]["stores"]["stores"]["amazon.com"]

    assert amazon["last_success_at"] == run.finished_at.isoformat()


def test_an_open_breaker_degrades_health_and_says_why(api_client, store, heartbeat):
    heartbeat()
    opened = timezone.now() - timedelta(minutes=3)
    Store.objects.filter(pk=store.pk).update(
        breaker_state=Store.BreakerState.OPEN, breaker_opened_at=opened, breaker_reason="5 blocked responses"
    )

    body = api_client.get(URL).json()

    assert body["status"] == "degraded"
    assert body["checks"]["stores"]["ok"] is False
    assert body["checks"]["stores"]["stores"]["amazon.com"]["breaker"] == {
        "state": "open",
        "opened_at": opened.isoformat(),
        "reason": "5 blocked responses",
    }
    assert body["checks"]["stores"]["stores"]["amazon.com"]["reason"] == (
        f"circuit breaker open since {opened.isoformat()}: 5 blocked responses"
    )


def test_alert_emails_stuck_in_the_outbox_degrade_health(api_client, store, alice, bob, heartbeat):
    heartbeat()
    product = make_product(store)
    make_tracker(alice, product)
    make_tracker(bob, product)
    record(product, success("10.00"))  # a crossing for each: two PENDING alerts
    alert_for_alice, alert_for_bob = Notification.objects.order_by("user__email")
    Notification.objects.filter(pk=alert_for_alice.pk).update(
        status=NotificationStatus.FAILED, sent_at=None, next_attempt_at=timezone.now() - timedelta(minutes=20)
    )
    Notification.objects.filter(pk=alert_for_bob.pk).update(
        status=NotificationStatus.FAILED, sent_at=None, next_attempt_at=None
    )

    body = api_client.get(URL).json()

    assert body["status"] == "degraded"
    outbox = body["checks"]["outbox"]
    assert outbox["ok"] is False
    assert outbox["due"] == 1
    assert outbox["oldest_due_age_seconds"] >= 20 * 60
    assert outbox["failed_permanently"] == 1


def test_a_fresh_pending_alert_is_not_a_problem(api_client, store, alice, heartbeat):
    heartbeat()
    product = make_product(store)
    make_tracker(alice, product)
    record(product, success("10.00"))  # a crossing: one PENDING alert
    Notification.objects.update(next_attempt_at=timezone.now())

    outbox = api_client.get(URL).json()["checks"]["outbox"]

    assert outbox["ok"] is True
    assert outbox["due"] == 1
