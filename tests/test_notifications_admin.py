"""The notifications admin: read the outbox, see why an alert failed, resend it."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client

from accounts.models import User
from notifications.models import Notification, NotificationStatus
from tests.tracking_factories import make_product, make_tracker, record, success

CHANGELIST = "/admin/notifications/notification/"


@pytest.fixture
def admin_browser(db) -> Client:
    admin = User.objects.create_superuser("admin@example.com", "correct-horse-battery-9")
    client = Client()
    client.force_login(admin)
    return client


@pytest.fixture
def alert(store, django_capture_on_commit_callbacks):
    def make(user, asin: str = "B000000001") -> Notification:
        product = make_product(store, asin=asin, title=f"Product {asin}")
        make_tracker(user, product, target="100.00")
        with django_capture_on_commit_callbacks(execute=True):
            record(product, success("90.00"))
        return Notification.objects.get(product=product)

    return make


def test_the_outbox_lists_alerts_with_their_errors(admin_browser, alice, alert):
    notification = alert(alice)
    Notification.objects.filter(pk=notification.pk).update(
        status=NotificationStatus.FAILED,
        sent_at=None,
        last_error="SMTPServerDisconnected: Connection unexpectedly closed",
    )

    response = admin_browser.get(CHANGELIST, {"status__exact": "FAILED"})

    assert response.status_code == 200
    assert b"SMTPServerDisconnected: Connection unexpectedly closed" in response.content
    assert b"alice@example.com" in response.content


def test_an_alert_is_read_only_in_the_admin(admin_browser, alice, alert):
    notification = alert(alice)

    response = admin_browser.get(f"{CHANGELIST}{notification.pk}/change/")

    assert response.status_code == 200
    assert b'name="status"' not in response.content
    assert admin_browser.get(f"{CHANGELIST}add/").status_code == 403


def test_resend_sends_failed_and_held_alerts_again_and_skips_sent_ones(
    admin_browser, alice, bob, alert, django_capture_on_commit_callbacks
):
    failed = alert(alice, "B000000001")
    held = alert(bob, "B000000002")
    sent = alert(alice, "B000000003")
    Notification.objects.filter(pk=failed.pk).update(
        status=NotificationStatus.FAILED, sent_at=None, next_attempt_at=None, attempts=6
    )
    Notification.objects.filter(pk=held.pk).update(status=NotificationStatus.HELD, sent_at=None, attempts=0)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_browser.post(
            CHANGELIST,
            {"action": "resend", "_selected_action": [failed.pk, held.pk, sent.pk]},
            follow=True,
        )

    assert response.status_code == 200
    assert b"2 notification(s) queued for sending." in response.content
    assert b"1 skipped" in response.content
    assert sorted(message.to[0] for message in mail.outbox) == ["alice@example.com", "bob@example.com"]
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (NotificationStatus.SENT, 7)
    assert Notification.objects.get(pk=sent.pk).attempts == 1


def test_an_alert_shows_its_reasons_and_the_list_filters_by_reason_kind(admin_browser, alice, store):
    from decimal import Decimal

    product = make_product(store, asin="B0REASONS1", title="Reasoned kettle")
    make_tracker(
        alice,
        product,
        target=None,
        rules=[{"kind": "drop_percent", "percent": Decimal("10")}, {"kind": "any_change", "direction": "both"}],
    )
    record(product, success("100.00"))
    record(product, success("80.00"))  # both rules
    record(product, success("85.00"))  # a rise: any_change only
    dropped, rose = Notification.objects.order_by("pk")

    page = admin_browser.get(f"{CHANGELIST}{dropped.pk}/change/").content.decode()
    by_drop = admin_browser.get(CHANGELIST, {"reason": "drop_percent"})
    by_change = admin_browser.get(CHANGELIST, {"reason": "any_change"})
    by_stock = admin_browser.get(CHANGELIST, {"reason": "back_in_stock"})

    assert "drop_percent (rule #" in page and "-20% from 100.00, at 80.00" in page
    assert "any_change (rule #" in page and "down 20.00 from 100.00" in page
    assert [n.pk for n in by_drop.context["cl"].result_list] == [dropped.pk]
    assert sorted(n.pk for n in by_change.context["cl"].result_list) == [dropped.pk, rose.pk]
    assert list(by_stock.context["cl"].result_list) == []
