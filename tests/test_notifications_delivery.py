"""Delivering alerts through a real SMTP server on loopback: content, failures, retries, races.

django-q2 runs tasks in-process (conftest ``_q_sync``), so an enqueued send happens when the
transaction's on-commit callbacks run.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import User
from accounts.services import user_confirm_email
from accounts.tokens import EmailKind, make_email_confirmation_token
from notifications import services
from notifications.models import Notification, NotificationStatus
from pricetracker.env import mailer_from_url
from tests.concurrency import run_concurrently
from tests.tracking_factories import make_product, make_tracker, record, success
from tracking.models import PricePoint

pytest_plugins = ["tests.smtp_server"]


@pytest.fixture
def product(store):
    return make_product(store, asin="B0EXAMPLE1", title="Acme Noise-Cancelling Headphones, Wireless, Black")


@pytest.fixture
def observe(product, django_capture_on_commit_callbacks):
    """``observe("89.99")``: a worker finishes a successful scrape of ``product`` at that price."""

    def run(price: str | None):
        with django_capture_on_commit_callbacks(execute=True):
            return record(product, success(price, title=product.title))

    return run


@pytest.fixture
def sweep(django_capture_on_commit_callbacks):
    """Run the outbox sweep as the schedule does, executing what it enqueues."""

    def run() -> services.SweepReport:
        with django_capture_on_commit_callbacks(execute=True):
            return services.notifications_sweep()

    return run


def test_the_settings_fixture_points_djangos_default_mailer_at_the_smtp_server(smtp_server):
    backend = mail.mailers.default

    assert type(backend).__name__ == "EmailBackend"
    assert type(backend).__module__ == "django.core.mail.backends.smtp"
    assert (backend.host, backend.port) == ("127.0.0.1", smtp_server.port)


def test_outside_the_fixture_django_collects_mail_in_locmem():
    assert type(mail.mailers.default).__module__ == "django.core.mail.backends.locmem"


def test_an_alert_arrives_with_subject_bodies_message_id_and_recipient(alice, product, observe, smtp_server):
    tracker = make_tracker(alice, product, target="90.00")
    observe("120.00")
    observe("100.00")

    observe("89.99")

    assert len(smtp_server.messages) == 1
    received = smtp_server.messages[0]
    notification = Notification.objects.get()
    assert received.rcpt_tos == ["alice@example.com"]
    assert received.message["To"] == "alice@example.com"
    assert (
        received.subject
        == "Price drop: Acme Noise-Cancelling Headphones, Wireless, Black is now $89.99 (target $90.00)"
    )
    assert (
        received.message_id
        == f"<notification-{notification.pk}.crossing-{tracker.pk}-{notification.price_point_id}@localhost>"
    )
    text = received.body("plain")
    html = received.body("html")
    for body in (text, html):
        assert "$89.99" in body
        assert "$90.00" in body
        assert "https://www.amazon.com/dp/B0EXAMPLE1" in body
        assert f"http://127.0.0.1:8000/api/trackers/{tracker.pk}/" in body
    assert "Lowest price seen:  $89.99" in text
    assert "PATCH" in text and "DELETE" in text
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT
    assert notification.to_email == "alice@example.com"
    assert notification.attempts == 1
    assert notification.sent_at is not None
    assert notification.message_id == received.message_id


def test_the_lowest_price_seen_is_the_all_time_low(alice, product, observe, smtp_server):
    make_tracker(alice, product, target="90.00")
    observe("70.00")  # first crossing (alert 1), then back up
    observe("120.00")

    observe("85.00")

    assert len(smtp_server.messages) == 2
    assert "Lowest price seen:  $70.00" in smtp_server.messages[1].body("plain")


def test_a_long_title_is_shortened_in_the_subject_but_not_in_the_body(
    alice, store, smtp_server, django_capture_on_commit_callbacks
):
    title = "Very long product title " * 10
    product = make_product(store, title=title.strip())
    make_tracker(alice, product, target="50.00")

    with django_capture_on_commit_callbacks(execute=True):
        record(product, success("40.00", title=title.strip()))

    received = smtp_server.messages[0]
    assert len(received.subject) < 120
    assert "…" in received.subject
    assert title.strip() in received.body("plain")


def test_html_in_a_product_title_is_escaped_in_the_html_body(
    alice, store, smtp_server, django_capture_on_commit_callbacks
):
    title = '<script>alert("x")</script> & <b>Deal</b>'
    product = make_product(store, title=title)
    make_tracker(alice, product, target="50.00")

    with django_capture_on_commit_callbacks(execute=True):
        record(product, success("40.00", title=title))

    received = smtp_server.messages[0]
    html = received.body("html")
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "&amp; &lt;b&gt;Deal&lt;/b&gt;" in html
    # The plain-text body is not HTML: it shows the title as it is.
    assert title in received.body("plain")


def test_an_alert_goes_to_the_confirmed_notification_address(make_user, product, observe, smtp_server):
    user = make_user(
        "carol@example.com", notification_email="alerts@example.org", notification_email_verified_at=timezone.now()
    )
    make_tracker(user, product, target="90.00")

    observe("80.00")

    assert smtp_server.messages[0].rcpt_tos == ["alerts@example.org"]


def test_when_smtp_is_down_the_alert_fails_and_scraping_carries_on(
    alice, product, observe, smtp_server, smtp_down, settings, sweep, time_machine
):
    settings.MAILERS = {"default": mailer_from_url(smtp_down)}
    make_tracker(alice, product, target="90.00")

    run = observe("80.00")

    assert run is not None and run.status == "SUCCESS"
    assert PricePoint.objects.filter(run=run).exists()
    notification = Notification.objects.get()
    assert notification.status == NotificationStatus.FAILED
    assert notification.attempts == 1
    assert notification.last_error.startswith("ConnectionRefusedError")
    assert notification.next_attempt_at is not None
    assert smtp_server.messages == []

    # The next scrape is recorded as usual while the alert waits for its retry.
    later = observe("79.00")
    assert later is not None and PricePoint.objects.filter(run=later).exists()

    # SMTP comes back; once the retry is due, the sweep delivers the alert exactly once.
    settings.MAILERS = {"default": mailer_from_url(smtp_server.url)}
    assert sweep().enqueued == 0  # not due yet: the backoff is respected
    time_machine.move_to(notification.next_attempt_at + timedelta(seconds=1))
    sweep()
    sweep()

    assert len(smtp_server.messages) == 1
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT
    assert notification.attempts == 2


def test_a_server_that_was_stopped_and_restarted_gets_the_retry(
    alice, product, observe, smtp_server, sweep, time_machine
):
    make_tracker(alice, product, target="90.00")
    smtp_server.stop()

    observe("80.00")
    assert Notification.objects.get().status == NotificationStatus.FAILED

    smtp_server.start()
    time_machine.move_to(timezone.now() + timedelta(minutes=2))
    sweep()

    assert len(smtp_server.messages) == 1
    assert Notification.objects.get().status == NotificationStatus.SENT


def test_retries_back_off_and_stop_for_good_after_the_last_attempt(
    alice, product, observe, smtp_down, sweep, time_machine
):
    make_tracker(alice, product, target="90.00")
    observe("80.00")
    notification = Notification.objects.get()
    delays = []

    for _ in range(services.MAX_ATTEMPTS - 1):
        notification.refresh_from_db()
        delays.append(notification.next_attempt_at - timezone.now())
        time_machine.move_to(notification.next_attempt_at + timedelta(seconds=1))
        sweep()

    notification.refresh_from_db()
    assert notification.status == NotificationStatus.FAILED
    assert notification.attempts == services.MAX_ATTEMPTS
    assert notification.next_attempt_at is None
    assert [round(delay.total_seconds() / 60) for delay in delays] == [1, 2, 4, 8, 16]

    time_machine.move_to(timezone.now() + timedelta(days=1))
    assert sweep().enqueued == 0
    notification.refresh_from_db()
    assert notification.attempts == services.MAX_ATTEMPTS


def test_a_worker_killed_while_sending_is_replaced_by_the_sweep_and_delivers_once(
    alice, product, observe, smtp_server, sweep, time_machine, monkeypatch
):
    from django_q.conf import Conf

    make_tracker(alice, product, target="90.00")
    monkeypatch.setattr(Conf, "SYNC", False)  # the task is queued, not run
    observe("80.00")
    notification = Notification.objects.get()
    monkeypatch.setattr(Conf, "SYNC", True)

    # A worker claimed the row and died before the server answered.
    Notification.objects.filter(pk=notification.pk).update(
        status=NotificationStatus.SENDING, attempts=1, lease_until=timezone.now() + services.SEND_LEASE
    )
    assert sweep().leases_expired == 0  # its lease is still running: nobody else touches it
    time_machine.move_to(timezone.now() + services.SEND_LEASE + timedelta(seconds=1))

    report = sweep()

    assert report.leases_expired == 1
    assert len(smtp_server.messages) == 1
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT
    assert notification.attempts == 2
    # The dead worker's task, delivered again by the broker, finds nothing to do.
    assert services.notification_send(notification_id=notification.pk) == services.SendOutcome.SKIPPED
    assert len(smtp_server.messages) == 1


def test_a_send_that_outlives_its_lease_is_recorded_once(
    alice, product, observe, smtp_server, time_machine, monkeypatch
):
    from django.core.mail import EmailMultiAlternatives
    from django_q.conf import Conf

    make_tracker(alice, product, target="90.00")
    with monkeypatch.context() as patch:
        patch.setattr(Conf, "SYNC", False)  # queued for a worker, not run
        observe("80.00")
    notification = Notification.objects.get()
    real_send = EmailMultiAlternatives.send

    def slow_send(message, *args, **kwargs):
        # The server takes longer than the lease; meanwhile the sweep takes the row back.
        time_machine.move_to(timezone.now() + services.SEND_LEASE + timedelta(seconds=1))
        assert services.notifications_sweep().leases_expired == 1
        return real_send(message, *args, **kwargs)

    monkeypatch.setattr(EmailMultiAlternatives, "send", slow_send)
    assert services.notification_send(notification_id=notification.pk) == services.SendOutcome.SENT
    monkeypatch.setattr(EmailMultiAlternatives, "send", real_send)

    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (NotificationStatus.SENT, 1)
    # The send the sweep queued finds the row already sent.
    assert services.notification_send(notification_id=notification.pk) == services.SendOutcome.SKIPPED
    assert len(smtp_server.messages) == 1


def test_a_resend_after_a_crash_following_the_servers_ok_carries_the_same_message_id(
    alice, product, observe, smtp_server, sweep, time_machine
):
    make_tracker(alice, product, target="90.00")
    observe("80.00")
    notification = Notification.objects.get()
    # The worker crashed after the server's OK but before recording SENT.
    Notification.objects.filter(pk=notification.pk).update(
        status=NotificationStatus.SENDING, sent_at=None, lease_until=timezone.now()
    )
    time_machine.move_to(timezone.now() + timedelta(seconds=1))

    sweep()

    first, second = smtp_server.messages
    assert first.message_id == second.message_id  # so the receiver drops the duplicate


def test_a_lost_enqueue_is_recovered_by_the_sweep(
    alice, product, observe, smtp_server, sweep, time_machine, monkeypatch
):
    make_tracker(alice, product, target="90.00")
    with monkeypatch.context() as patch:
        patch.setattr("notifications.services.notification_enqueue", lambda **kwargs: None)
        observe("80.00")
    assert Notification.objects.get().status == NotificationStatus.PENDING

    assert sweep().enqueued == 0  # a fresh PENDING row's task may still be on its way
    time_machine.move_to(timezone.now() + services.ENQUEUE_GRACE + timedelta(seconds=1))
    sweep()

    assert len(smtp_server.messages) == 1
    assert Notification.objects.get().status == NotificationStatus.SENT


def test_a_redelivered_scrape_sends_one_email(alice, product, smtp_server, django_capture_on_commit_callbacks):
    from tracking import services as tracking_services
    from tracking.models import ScrapeRun

    make_tracker(alice, product, target="90.00")
    token = tracking_services.product_claim(product_id=product.pk)
    run = ScrapeRun.objects.create(
        product=product, claim_token=token, lease_until=timezone.now() + timedelta(minutes=5)
    )

    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            tracking_services.run_finish(run=run, product=product, result=success("80.00"))

    assert len(smtp_server.messages) == 1
    assert Notification.objects.count() == 1


def test_the_alert_handler_called_twice_for_one_observation_keeps_one_row(
    alice, product, observe, smtp_server, django_capture_on_commit_callbacks
):
    from tracking.hooks import AlertOutcome, AlertReason, TrackerAlert

    tracker = make_tracker(alice, product, target="90.00")
    observe("80.00")
    point = PricePoint.objects.get()
    rule = tracker.rules.get()
    alert = TrackerAlert(
        tracker=tracker,
        point=point,
        reasons=(AlertReason(kind="below_target", rule_id=rule.pk, detail="at or below your target of 90.00"),),
        previous_price=None,
        target_price=Decimal("90.00"),
    )

    with django_capture_on_commit_callbacks(execute=True):
        again = services.notification_create_for_alert(alert)

    assert again == AlertOutcome.DUPLICATE
    assert Notification.objects.count() == 1
    assert len(smtp_server.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_eight_workers_racing_on_one_notification_send_one_email(alice, product, smtp_server, monkeypatch):
    from django_q.conf import Conf

    make_tracker(alice, product, target="90.00")
    monkeypatch.setattr(Conf, "SYNC", False)  # queued for the cluster; the "workers" below race for it
    record(product, success("80.00"))
    notification = Notification.objects.get()
    assert notification.status == NotificationStatus.PENDING

    outcomes = run_concurrently([lambda: services.notification_send(notification_id=notification.pk)] * 8)

    assert sorted(outcomes) == sorted([services.SendOutcome.SENT] + [services.SendOutcome.SKIPPED] * 7)
    assert len(smtp_server.messages) == 1
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (NotificationStatus.SENT, 1)


def test_an_alert_for_an_unconfirmed_user_is_held_and_released_after_confirmation(
    make_user, product, observe, smtp_server, sweep
):
    dora = make_user("dora@example.com", email_verified_at=None)
    make_tracker(dora, product, target="90.00")

    observe("80.00")

    notification = Notification.objects.get()
    assert notification.status == NotificationStatus.HELD
    assert notification.attempts == 0
    assert "No confirmed email address" in notification.last_error
    assert smtp_server.messages == []
    assert sweep().released == 0

    user_confirm_email(token=make_email_confirmation_token(dora, EmailKind.LOGIN))
    sweep()

    assert len(smtp_server.messages) == 1
    assert smtp_server.messages[0].rcpt_tos == ["dora@example.com"]
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (NotificationStatus.SENT, 1)


def test_a_held_alert_is_not_sent_to_an_unconfirmed_notification_address(
    make_user, product, observe, smtp_server, sweep
):
    erin = make_user("erin@example.com", email_verified_at=None, notification_email="erin.alerts@example.org")
    make_tracker(erin, product, target="90.00")

    observe("80.00")
    sweep()

    assert Notification.objects.get().status == NotificationStatus.HELD
    assert smtp_server.messages == []


def test_a_held_alert_gives_up_after_seven_days(make_user, product, observe, smtp_server, sweep, time_machine):
    dora = make_user("dora@example.com", email_verified_at=None)
    make_tracker(dora, product, target="90.00")
    observe("80.00")

    time_machine.move_to(timezone.now() + services.HOLD_LIMIT + timedelta(minutes=1))
    report = sweep()

    assert report.gave_up == 1
    notification = Notification.objects.get()
    assert notification.status == NotificationStatus.FAILED
    assert notification.next_attempt_at is None
    assert "7 days" in notification.last_error
    User.objects.filter(pk=dora.pk).update(email_verified_at=timezone.now())
    sweep()
    assert smtp_server.messages == []


def test_without_required_verification_an_unconfirmed_address_gets_alerts(
    make_user, product, observe, smtp_server, settings
):
    settings.ACCOUNTS_REQUIRE_EMAIL_VERIFICATION = False
    dora = make_user("dora@example.com", email_verified_at=None)
    make_tracker(dora, product, target="90.00")

    observe("80.00")

    assert smtp_server.messages[0].rcpt_tos == ["dora@example.com"]


def test_a_deleted_tracker_keeps_its_notification_record(alice, product, observe, smtp_server):
    from tracking.services import tracker_delete

    tracker = make_tracker(alice, product, target="90.00")
    observe("80.00")

    tracker_delete(tracker=tracker)

    notification = Notification.objects.get()
    assert notification.tracker is None
    assert notification.price == Decimal("80.00")
    assert notification.status == NotificationStatus.SENT


def test_a_held_alert_of_a_deleted_tracker_is_sent_without_the_stop_link(
    make_user, product, observe, smtp_server, sweep
):
    from tracking.services import tracker_delete

    dora = make_user("dora@example.com", email_verified_at=None)
    tracker = make_tracker(dora, product, target="90.00")
    observe("80.00")
    tracker_delete(tracker=tracker)
    User.objects.filter(pk=dora.pk).update(email_verified_at=timezone.now())

    sweep()

    assert len(smtp_server.messages) == 1
    assert "/api/trackers/" not in smtp_server.messages[0].body("plain")
