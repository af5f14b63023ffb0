"""Reliability: the mail server is down while a real cluster scrapes a burst of crossings.

Scraping must not care (every run SUCCESS, every price recorded); each alert is recorded as
FAILED with the error and a retry time; once the server is back, the outbox sweep delivers each
alert exactly once, even when a send task is delivered twice.
"""

from __future__ import annotations

import time

import pytest
from django.db.models import Max
from django.utils import timezone
from django_q.models import Schedule, Task
from django_q.tasks import async_task

from accounts.models import User
from notifications import services as notifications
from notifications.models import Notification, NotificationStatus
from scraping.models import get_store
from tests.cluster import clusters, purge_broker, seed_tracked_products, wait_until, worker_pids
from tracking import services
from tracking.models import PricePoint, RunStatus, ScrapeRun

pytest_plugins = ["tests.smtp_server"]
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BURST = 120
CROSSING_EVERY = 3  # 40 alerts


@pytest.fixture
def _q_sync() -> None:
    """Override the suite's sync mode: tasks must travel through the real broker."""


def test_scraping_carries_on_while_smtp_is_down_and_the_sweep_delivers_each_alert_once_it_is_back(
    fake_store, smtp_server, tmp_path
):
    store = get_store("amazon.com")
    store.min_interval_minutes, store.requests_per_minute, store.concurrency = 1, 60_000, 16
    store.save()
    # This test is the scheduler: no once-a-minute sweep in the cluster races its assertions
    # on attempts (a slow CI run could otherwise see a second failed attempt while SMTP is down).
    Schedule.objects.all().delete()
    purge_broker()
    users = [
        User.objects.create_user(f"{name}@example.com", "pw-123456789", email_verified_at=timezone.now())
        for name in ("alice", "bob", "charlie", "dave")
    ]
    seed_tracked_products(count=BURST, users=users, prefix="B0SMTP", crossing_every=CROSSING_EVERY)
    alerts = len(range(0, BURST, CROSSING_EVERY))
    smtp_server.stop()  # same port, nothing listening: connection refused

    env = {"AMAZON_BASE_URL": fake_store.base_url, "EMAIL_URL": smtp_server.url, "Q_WORKERS": "4"}
    with clusters(tmp_path, 1, **env) as (cluster,):
        worker_pids(cluster, count=4)
        assert services.dispatch_due_products().claimed == BURST

        def burst_done_and_alerts_failed() -> bool:
            finished = ScrapeRun.objects.exclude(status=RunStatus.RUNNING).count()
            failed = Notification.objects.filter(status=NotificationStatus.FAILED, attempts=1).count()
            return finished == BURST and failed == alerts

        wait_until(burst_done_and_alerts_failed, timeout=120, interval=1, message="the burst with SMTP down")

        # Scraping carried on as if nothing happened.
        assert ScrapeRun.objects.filter(status=RunStatus.SUCCESS).count() == BURST
        assert PricePoint.objects.count() == BURST
        # Every alert is recorded with what went wrong and when it will be retried.
        for row in Notification.objects.all():
            assert row.last_error.startswith("ConnectionRefusedError"), row.last_error
            # Retried with backoff: the first retry waits a minute after the failure.
            assert row.next_attempt_at is not None
            assert row.next_attempt_at >= row.created_at + notifications.RETRY_BASE
            assert row.sent_at is None
        assert smtp_server.messages == []

        smtp_server.start()
        # The sweep at the moment the last retry falls due (retry_delay(1) = 1 minute after the
        # failure): the clock is passed in rather than waited for.
        due = Notification.objects.aggregate(last=Max("next_attempt_at"))["last"]
        report = notifications.notifications_sweep(now=due)
        assert report.enqueued == alerts
        # An at-least-once broker delivering every send task a second time changes nothing.
        for pk in Notification.objects.values_list("pk", flat=True):
            async_task("notifications.tasks.send_notification", pk, group="notifications")

        wait_until(
            lambda: Notification.objects.filter(status=NotificationStatus.SENT).count() == alerts,
            timeout=60,
            message="every alert sent",
        )
        time.sleep(3)  # give a wrongly repeated email the chance to show up
        assert cluster.proc is not None and cluster.proc.poll() is None
        output = cluster.output()

    assert len(smtp_server.messages) == alerts
    assert {message.message_id for message in smtp_server.messages} == set(
        Notification.objects.values_list("message_id", flat=True)
    )
    assert set(Notification.objects.values_list("attempts", flat=True)) == {2}
    for user in users:
        expected = Notification.objects.filter(user=user).count()
        assert sum(message.rcpt_tos == [user.email] for message in smtp_server.messages) == expected
    assert Task.objects.filter(success=False).count() == 0
    assert "Traceback" not in output
