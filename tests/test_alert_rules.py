"""The alert rule: one email per crossing from above the target to at/below it
(docs/decisions.md, "Alerts: one email per crossing").

Driven through ``tracking.services.run_finish`` like a worker finishing a scrape; django-q2 runs
tasks in-process (conftest ``_q_sync``) and Django's locmem mailer collects the emails.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail

from notifications.models import Notification, NotificationStatus
from scraping.results import ErrorKind, ScrapeResult, ScrapeStatus
from tests.tracking_factories import make_product, make_tracker, record, success
from tracking import services


@pytest.fixture
def product(store):
    return make_product(store, title="Noise-cancelling headphones")


@pytest.fixture
def observe(product, django_capture_on_commit_callbacks):
    """``observe("90.00")`` records a successful scrape of ``product``; ``observe(None)`` one with no price."""

    def run(price: str | None, *, of=None) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            record(of or product, success(price))

    return run


def emails_to(address: str) -> list[mail.EmailMessage]:
    return [message for message in mail.outbox if message.to == [address]]


def test_a_tracker_is_armed_when_created(alice, product):
    assert make_tracker(alice, product).armed is True


def test_a_steady_fall_below_target_sends_one_email(alice, product, observe):
    make_tracker(alice, product, target="100.00")

    for price in ["110.00", "90.00", "89.00", "88.00"]:
        observe(price)

    assert len(mail.outbox) == 1
    assert "$90.00" in mail.outbox[0].subject
    assert Notification.objects.get().status == NotificationStatus.SENT


def test_going_back_above_target_rearms_and_the_next_drop_sends_again(alice, product, observe):
    make_tracker(alice, product, target="100.00")

    for price in ["110.00", "90.00", "110.00", "90.00"]:
        observe(price)

    assert len(mail.outbox) == 2
    assert Notification.objects.count() == 2


def test_a_first_observation_already_below_target_sends_one_email(alice, product, observe):
    make_tracker(alice, product, target="100.00")

    observe("80.00")
    observe("79.00")

    assert len(mail.outbox) == 1


def test_a_price_exactly_at_target_counts_as_a_crossing(alice, product, observe):
    make_tracker(alice, product, target="100.00")

    observe("100.00")

    assert len(mail.outbox) == 1


def test_an_unknown_price_neither_rearms_nor_alerts(alice, product, observe):
    tracker = make_tracker(alice, product, target="100.00")

    observe("90.00")
    observe(None)  # unavailable: no price on the page
    observe("90.00")

    assert len(mail.outbox) == 1
    tracker.refresh_from_db()
    assert tracker.armed is False


def test_an_unknown_price_does_not_count_as_a_crossing(alice, product, observe):
    make_tracker(alice, product, target="100.00")

    observe("110.00")
    observe(None)

    assert mail.outbox == []


def test_failed_and_blocked_scrapes_change_nothing(alice, product, observe, django_capture_on_commit_callbacks):
    tracker = make_tracker(alice, product, target="100.00")
    observe("90.00")

    for status, kind in [(ScrapeStatus.BLOCKED, ErrorKind.CAPTCHA), (ScrapeStatus.FAILED, ErrorKind.TIMEOUT)]:
        with django_capture_on_commit_callbacks(execute=True):
            record(product, ScrapeResult(status=status, error_kind=kind))
    observe("90.00")

    assert len(mail.outbox) == 1
    tracker.refresh_from_db()
    assert tracker.armed is False


def test_a_disabled_tracker_never_notifies(alice, product, observe):
    make_tracker(alice, product, target="100.00", enabled=False)

    observe("110.00")
    observe("90.00")

    assert mail.outbox == []
    assert not Notification.objects.exists()


def test_two_users_tracking_one_product_each_get_their_own_single_email(alice, bob, product, observe):
    make_tracker(alice, product, target="100.00")
    make_tracker(bob, product, target="95.00")

    for price in ["110.00", "90.00", "89.00"]:
        observe(price)

    assert len(emails_to("alice@example.com")) == 1
    assert len(emails_to("bob@example.com")) == 1
    assert len(mail.outbox) == 2


def test_each_tracker_crosses_at_its_own_target(alice, bob, product, observe):
    make_tracker(alice, product, target="100.00")
    make_tracker(bob, product, target="80.00")

    observe("90.00")

    assert len(emails_to("alice@example.com")) == 1
    assert emails_to("bob@example.com") == []


def test_raising_the_target_above_the_current_price_alerts_at_once(
    alice, product, observe, django_capture_on_commit_callbacks
):
    tracker = make_tracker(alice, product, target="100.00")
    observe("110.00")
    assert mail.outbox == []

    with django_capture_on_commit_callbacks(execute=True):
        services.tracker_update(tracker=tracker, target_price=Decimal("120.00"))

    assert len(mail.outbox) == 1
    assert "(target $120.00)" in mail.outbox[0].subject


def test_lowering_the_target_below_the_current_price_rearms_for_the_next_drop(
    alice, product, observe, django_capture_on_commit_callbacks
):
    tracker = make_tracker(alice, product, target="100.00")
    observe("90.00")
    assert len(mail.outbox) == 1
    tracker.refresh_from_db()  # as the API loads it: the scrape has disarmed it

    with django_capture_on_commit_callbacks(execute=True):
        services.tracker_update(tracker=tracker, target_price=Decimal("80.00"))
    tracker.refresh_from_db()
    assert tracker.armed is True
    assert len(mail.outbox) == 1

    observe("79.00")

    assert len(mail.outbox) == 2


def test_changing_only_the_interval_does_not_alert_again(alice, product, observe, django_capture_on_commit_callbacks):
    tracker = make_tracker(alice, product, target="100.00")
    observe("90.00")

    with django_capture_on_commit_callbacks(execute=True):
        services.tracker_update(tracker=tracker, interval_minutes=120)

    assert len(mail.outbox) == 1


def test_a_scrape_finished_twice_records_one_notification(alice, product, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from tracking.models import ScrapeRun

    make_tracker(alice, product, target="100.00")
    token = services.product_claim(product_id=product.pk)
    run = ScrapeRun.objects.create(
        product=product, claim_token=token, lease_until=timezone.now() + timedelta(minutes=5)
    )

    with django_capture_on_commit_callbacks(execute=True):
        first = services.run_finish(run=run, product=product, result=success("90.00"))
        second = services.run_finish(run=run, product=product, result=success("90.00"))

    assert first is not None
    assert second is None
    assert Notification.objects.count() == 1
    assert len(mail.outbox) == 1
