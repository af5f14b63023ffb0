"""Issue 11, item 13: account emails go through the outbox, so a mail server outage loses none.

The confirmation email sent at registration used to be handed to the mail server once, after
commit; with the server down at that moment it was lost for good (the failure was only
logged). Confirmation and password reset emails are now outbox rows like alerts: claimed,
sent, recorded, retried with backoff by the sweep, delivered once.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from django.db.models import Max
from django_q.tasks import async_task

from accounts.models import User
from notifications import services
from notifications.models import Notification, NotificationKind, NotificationStatus
from tests.conftest import auth_client

pytest_plugins = ["tests.smtp_server"]

PASSWORD = "correct-horse-battery-9"


@pytest.fixture
def sweep_when_due(django_capture_on_commit_callbacks):
    """Run the sweep at the moment the latest retry falls due, executing what it enqueues."""

    def run() -> services.SweepReport:
        due = Notification.objects.aggregate(last=Max("next_attempt_at"))["last"]
        with django_capture_on_commit_callbacks(execute=True):
            return services.notifications_sweep(now=due)

    return run


def test_a_confirmation_email_sent_while_smtp_is_down_arrives_once_when_it_is_back(
    api_client, smtp_server, settings, sweep_when_due, django_capture_on_commit_callbacks
):
    smtp_server.stop()  # same port, nothing listening
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            "/api/auth/register/", {"email": "alice@example.com", "password": PASSWORD}, format="json"
        )

    assert response.status_code == 201
    row = Notification.objects.get()
    assert (row.kind, row.status, row.attempts, row.to_email) == (
        NotificationKind.CONFIRM_LOGIN,
        NotificationStatus.FAILED,
        1,
        "alice@example.com",
    )
    assert row.last_error.startswith("ConnectionRefusedError")
    assert row.next_attempt_at is not None
    assert smtp_server.messages == []

    smtp_server.start()
    report = sweep_when_due()
    # A second sweep and a redelivered send task change nothing.
    sweep_when_due()
    with django_capture_on_commit_callbacks(execute=True):
        async_task("notifications.tasks.send_notification", row.pk)

    assert report.enqueued == 1
    (received,) = smtp_server.messages
    assert received.rcpt_tos == ["alice@example.com"]
    row.refresh_from_db()
    assert (row.status, row.attempts) == (NotificationStatus.SENT, 2)
    assert received.message_id == row.message_id
    token = unquote(re.search(r"[?&]token=(\S+)", received.body("plain")).group(1))
    assert api_client.get("/api/auth/email/confirm/", {"token": token}).status_code == 200
    assert User.objects.get().email_confirmed


def test_a_password_reset_email_sent_while_smtp_is_down_arrives_once_when_it_is_back(
    api_client, alice, smtp_server, sweep_when_due, django_capture_on_commit_callbacks
):
    smtp_server.stop()
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post("/api/auth/password/reset/", {"email": "alice@example.com"}, format="json")
    assert response.status_code == 202
    assert Notification.objects.get().status == NotificationStatus.FAILED

    smtp_server.start()
    sweep_when_due()
    sweep_when_due()

    (received,) = smtp_server.messages
    body = received.body("plain")
    uid, token = re.search(r"uid: (\S+)", body).group(1), re.search(r"token: (\S+)", body).group(1)
    response = api_client.post(
        "/api/auth/password/reset/confirm/",
        {"uid": uid, "token": token, "new_password": "tiger-lily-on-the-moon-42"},
        format="json",
    )
    assert response.status_code == 204


def test_the_outbox_row_keeps_no_token(api_client, alice, smtp_down, django_capture_on_commit_callbacks):
    """Links are made when the email is sent: a database reader or an admin finds no usable token."""
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post("/api/auth/password/reset/", {"email": "alice@example.com"}, format="json")
        auth_client(alice).patch("/api/auth/me/", {"notification_email": "alerts@example.com"}, format="json")

    for row in Notification.objects.values():
        assert not any("token" in str(value) for value in row.values())


def test_a_link_for_an_address_replaced_before_it_went_out_is_never_sent(
    alice, smtp_server, settings, sweep_when_due, django_capture_on_commit_callbacks
):
    client = auth_client(alice)
    smtp_server.stop()
    with django_capture_on_commit_callbacks(execute=True):
        client.patch("/api/auth/me/", {"notification_email": "old@example.com"}, format="json")
        client.patch("/api/auth/me/", {"notification_email": "new@example.com"}, format="json")
    smtp_server.start()

    sweep_when_due()

    assert [message.rcpt_tos for message in smtp_server.messages] == [["new@example.com"]]
    old = Notification.objects.get(to_email="old@example.com")
    assert old.status == NotificationStatus.CANCELLED
    assert "changed" in old.last_error


def test_account_emails_are_not_listed_as_alerts(api_client, alice, smtp_server, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        auth_client(alice).patch("/api/auth/me/", {"notification_email": "alerts@example.com"}, format="json")
    assert Notification.objects.filter(kind=NotificationKind.CONFIRM_NOTIFICATION).count() == 1

    response = auth_client(alice).get("/api/notifications/")

    assert response.status_code == 200
    assert response.json()["count"] == 0


def test_the_account_email_row_is_visible_to_admins(admin_client, alice, smtp_down, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        auth_client(alice).patch("/api/auth/me/", {"notification_email": "alerts@example.com"}, format="json")
    row = Notification.objects.get()

    changelist = admin_client.get("/admin/notifications/notification/", {"kind__exact": row.kind})
    change = admin_client.get(f"/admin/notifications/notification/{row.pk}/change/")

    assert changelist.status_code == change.status_code == 200
    assert b"alerts@example.com" in changelist.content
