"""The notifications API: own alerts only, filters, and the test email (ok, no address, failure, throttle)."""

from __future__ import annotations

import pytest
from django.core import mail

from notifications.models import Notification, NotificationStatus
from tests.conftest import auth_client
from tests.tracking_factories import make_product, make_tracker, record, success

pytest_plugins = ["tests.smtp_server"]

LIST_URL = "/api/notifications/"
TEST_URL = "/api/notifications/test/"


@pytest.fixture
def alert(store, django_capture_on_commit_callbacks):
    """``alert(user, asin, price)``: ``user`` tracks a product at target 100 and its price drops to ``price``."""

    def make(user, asin: str = "B000000001", price: str = "90.00") -> Notification:
        product = make_product(store, asin=asin, title=f"Product {asin}")
        make_tracker(user, product, target="100.00")
        with django_capture_on_commit_callbacks(execute=True):
            record(product, success(price, title=f"Product {asin}"))
        return Notification.objects.get(product=product, user=user)

    return make


def test_a_user_lists_their_notifications_newest_first(alice, alice_client, alert):
    older = alert(alice, "B000000001", "90.00")
    newer = alert(alice, "B000000002", "80.00")

    response = alice_client.get(LIST_URL)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [item["id"] for item in body["results"]] == [newer.pk, older.pk]
    item = body["results"][1]
    assert item == {
        "id": older.pk,
        "tracker": older.tracker_id,
        "asin": "B000000001",
        "title": "Product B000000001",
        "price": "90.00",
        "observed_price": "90.00",
        "previous_price": None,
        "target_price": "100.00",
        "currency": "USD",
        "reasons": [
            {
                "kind": "below_target",
                "rule_id": older.tracker.rules.get().pk,
                "detail": "at or below your target of 100.00",
                "observed_price": "90.00",
                "observed_at": item["reasons"][0]["observed_at"],
                "suppressed": "",
            }
        ],
        "merged_into": None,
        "status": "SENT",
        "attempts": 1,
        "last_error": "",
        "to_email": "alice@example.com",
        "created_at": item["created_at"],
        "sent_at": item["sent_at"],
    }
    assert item["sent_at"] is not None


def test_the_list_is_filtered_by_status(alice, alice_client, alert):
    sent = alert(alice, "B000000001")
    failed = alert(alice, "B000000002")
    Notification.objects.filter(pk=failed.pk).update(
        status=NotificationStatus.FAILED, sent_at=None, last_error="ConnectionRefusedError: [Errno 111]"
    )

    failed_only = alice_client.get(LIST_URL, {"status": "FAILED"}).json()
    sent_only = alice_client.get(LIST_URL, {"status": "SENT"}).json()

    assert [item["id"] for item in failed_only["results"]] == [failed.pk]
    assert failed_only["results"][0]["last_error"] == "ConnectionRefusedError: [Errno 111]"
    assert [item["id"] for item in sent_only["results"]] == [sent.pk]


def test_an_unknown_status_filter_is_a_clear_400(alice_client):
    response = alice_client.get(LIST_URL, {"status": "LOST"})

    assert response.status_code == 400
    assert "status" in response.json()["message"]


def test_bob_does_not_see_alices_notifications(alice, bob_client, alert):
    alert(alice)

    assert bob_client.get(LIST_URL).json()["count"] == 0


def test_bob_gets_404_for_alices_notification(alice, bob_client, alert):
    notification = alert(alice)

    response = bob_client.get(f"{LIST_URL}{notification.pk}/")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_alice_reads_one_of_her_notifications(alice, alice_client, alert):
    notification = alert(alice)

    response = alice_client.get(f"{LIST_URL}{notification.pk}/")

    assert response.status_code == 200
    assert response.json()["id"] == notification.pk


def test_notifications_need_authentication(api_client):
    assert api_client.get(LIST_URL).status_code == 401
    assert api_client.post(TEST_URL).status_code == 401


def test_notifications_are_read_only_through_the_api(alice, alice_client, alert):
    notification = alert(alice)

    assert alice_client.delete(f"{LIST_URL}{notification.pk}/").status_code == 405
    assert alice_client.patch(f"{LIST_URL}{notification.pk}/", {"status": "PENDING"}, format="json").status_code == 405


def test_the_test_email_reaches_the_smtp_server(alice_client, smtp_server, clear_cache):
    response = alice_client.post(TEST_URL)

    assert response.status_code == 200
    assert response.json() == {
        "status": "sent",
        "to_email": "alice@example.com",
        "message": "A test email was sent to alice@example.com.",
    }
    (received,) = smtp_server.messages
    assert received.rcpt_tos == ["alice@example.com"]
    assert "test email" in received.subject
    assert "alice@example.com" in received.body("plain")
    assert "alice@example.com" in received.body("html")


def test_the_test_email_needs_a_confirmed_address(make_user, clear_cache):
    dora = make_user("dora@example.com", email_verified_at=None)

    response = auth_client(dora).post(TEST_URL)

    assert response.status_code == 400
    assert response.json()["code"] == "no_alert_address"
    assert "no confirmed email address" in response.json()["message"]
    assert mail.outbox == []


def test_a_failing_mail_server_is_reported_as_502_with_its_error(alice_client, smtp_down, clear_cache):
    response = alice_client.post(TEST_URL)

    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "email_failed"
    assert body["message"].startswith("Sending the test email to alice@example.com failed: ConnectionRefusedError")


def test_the_error_summary_never_shows_the_mail_password(alice_client, settings, clear_cache, monkeypatch):
    import smtplib

    from pricetracker.env import mailer_from_url

    settings.MAILERS = {"default": mailer_from_url("smtp://mailer:s3cret-pass@127.0.0.1:1")}

    def refuse(self, *args, **kwargs):
        raise smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials for mailer/s3cret-pass")

    monkeypatch.setattr("django.core.mail.backends.smtp.EmailBackend.send_messages", refuse)

    response = alice_client.post(TEST_URL)

    assert response.status_code == 502
    message = response.json()["message"]
    assert "SMTPAuthenticationError: 535 5.7.8 bad credentials for mailer/***" in message
    assert "s3cret-pass" not in message


def test_test_emails_are_throttled(alice_client, clear_cache):
    statuses = [alice_client.post(TEST_URL).status_code for _ in range(6)]

    assert statuses == [200] * 5 + [429]
    assert len(mail.outbox) == 5


def test_the_schema_documents_the_notification_endpoints(alice_client, api_client):
    schema = api_client.get("/api/schema/", {"format": "json"}).json()

    assert "/api/notifications/" in schema["paths"]
    assert "/api/notifications/{id}/" in schema["paths"]
    assert set(schema["paths"]["/api/notifications/test/"]["post"]["responses"]) == {"200", "400", "401", "429", "502"}
