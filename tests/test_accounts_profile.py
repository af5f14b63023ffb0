"""GET, PATCH /api/auth/me/: the signed-in user's profile, limits and notification address."""

from __future__ import annotations

from django.core import mail
from django.utils import timezone

URL = "/api/auth/me/"


def test_alice_reads_her_profile(alice, alice_client):
    response = alice_client.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body == {
        "id": alice.pk,
        "email": "alice@example.com",
        "notification_email": "",
        "notification_email_confirmed": False,
        "email_confirmed": True,
        "alert_email": "alice@example.com",
        "default_store": "amazon.com",
        "language": "",
        "timezone": "UTC",
        "quiet_hours": None,
        "max_alerts_per_day": None,
        "max_trackers": alice.max_trackers,
        "manual_scrapes_per_hour": alice.manual_scrapes_per_hour,
        "max_rules_per_tracker": 10,
        "date_joined": body["date_joined"],
    }
    assert body["date_joined"].startswith(str(alice.date_joined.date()))


def test_the_profile_needs_authentication(api_client):
    response = api_client.get(URL)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_limits_and_login_email_are_read_only(alice, alice_client):
    response = alice_client.patch(
        URL,
        {"max_trackers": 100_000, "manual_scrapes_per_hour": 100_000, "email": "mallory@example.com", "id": 999},
        format="json",
    )

    assert response.status_code == 200
    alice.refresh_from_db()
    assert (alice.pk, alice.email) == (response.json()["id"], "alice@example.com")
    assert alice.max_trackers == response.json()["max_trackers"] != 100_000
    assert alice.manual_scrapes_per_hour != 100_000


def test_put_is_not_allowed(alice_client):
    assert alice_client.put(URL, {"notification_email": ""}, format="json").status_code == 405


def test_a_blank_notification_email_resets_alerts_to_the_login_email(
    alice, alice_client, django_capture_on_commit_callbacks
):
    alice.notification_email = "alerts@example.com"
    alice.save()

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.patch(URL, {"notification_email": ""}, format="json")

    assert response.json()["notification_email"] == ""
    assert response.json()["alert_email"] == "alice@example.com"
    assert mail.outbox == []


def test_the_login_email_as_notification_email_needs_no_second_confirmation(
    alice_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.patch(URL, {"notification_email": "ALICE@example.com"}, format="json")

    assert response.json()["notification_email"] == ""
    assert mail.outbox == []


def test_re_entering_the_current_notification_email_keeps_it_confirmed(alice, alice_client):
    alice.notification_email = "alerts@example.com"
    alice.notification_email_verified_at = timezone.now()
    alice.save()

    response = alice_client.patch(URL, {"notification_email": "alerts@example.com"}, format="json")

    assert response.json()["notification_email_confirmed"] is True
    assert mail.outbox == []


def test_a_malformed_notification_email_is_refused(alice_client):
    response = alice_client.patch(URL, {"notification_email": "not an email"}, format="json")

    assert response.status_code == 400
    assert "notification_email" in response.json()["errors"]


def test_bob_sees_his_own_profile(alice, bob_client):
    assert bob_client.get(URL).json()["email"] == "bob@example.com"
