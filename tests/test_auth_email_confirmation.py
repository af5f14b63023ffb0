"""Confirming the login and notification addresses: single-use, expiring links."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import unquote

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from rest_framework.throttling import ScopedRateThrottle

from accounts.models import User
from accounts.tokens import EmailKind, make_email_confirmation_token
from tests.conftest import auth_client

URL = "/api/auth/email/confirm/"


@pytest.fixture
def unconfirmed_alice(make_user):
    return make_user("alice@example.com", email_verified_at=None)


def token_from(message) -> str:
    """The token of the confirmation link in an email."""
    match = re.search(r"[?&]token=(\S+)", message.body)
    assert match is not None, "no confirmation link"
    return unquote(match.group(1))


def test_the_emailed_link_confirms_alices_login_address(api_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post(
            "/api/auth/register/", {"email": "alice@example.com", "password": "correct-horse-battery-9"}, format="json"
        )
    token = token_from(mail.outbox[0])

    response = api_client.get(URL, {"token": token})

    assert response.status_code == 200
    assert response.json() == {"email": "alice@example.com", "kind": "login"}
    assert User.objects.get().email_confirmed


def test_a_client_app_can_post_the_token(api_client, unconfirmed_alice):
    token = make_email_confirmation_token(unconfirmed_alice, EmailKind.LOGIN)

    response = api_client.post(URL, {"token": token}, format="json")

    assert response.status_code == 200
    unconfirmed_alice.refresh_from_db()
    assert unconfirmed_alice.email_verified_at is not None


def test_a_used_link_is_refused(api_client, unconfirmed_alice):
    token = make_email_confirmation_token(unconfirmed_alice, EmailKind.LOGIN)
    assert api_client.post(URL, {"token": token}, format="json").status_code == 200

    response = api_client.post(URL, {"token": token}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_token"
    assert "invalid, expired or already used" in response.json()["message"]


def test_an_expired_link_is_refused(api_client, unconfirmed_alice, settings):
    token = make_email_confirmation_token(unconfirmed_alice, EmailKind.LOGIN)

    with time_machine.travel(timezone.now() + timedelta(seconds=settings.EMAIL_CONFIRMATION_TIMEOUT + 60)):
        response = api_client.post(URL, {"token": token}, format="json")

    assert response.status_code == 400
    unconfirmed_alice.refresh_from_db()
    assert unconfirmed_alice.email_verified_at is None


def test_a_link_still_works_just_before_it_expires(api_client, unconfirmed_alice, settings):
    token = make_email_confirmation_token(unconfirmed_alice, EmailKind.LOGIN)

    with time_machine.travel(timezone.now() + timedelta(seconds=settings.EMAIL_CONFIRMATION_TIMEOUT - 60)):
        response = api_client.post(URL, {"token": token}, format="json")

    assert response.status_code == 200


@pytest.mark.parametrize("token", ["", "garbage", "login.MQ.abc-def", "nope.MQ.abc-def", "login.%%%.x-y"])
def test_malformed_or_tampered_tokens_are_refused(api_client, unconfirmed_alice, token):
    response = api_client.post(URL, {"token": token}, format="json")

    assert response.status_code == 400


def test_alices_token_cannot_confirm_bobs_address(api_client, unconfirmed_alice, make_user):
    bob = make_user("bob@example.com", email_verified_at=None)
    kind, _, hmac = make_email_confirmation_token(unconfirmed_alice, EmailKind.LOGIN).split(".")
    bobs_uid = make_email_confirmation_token(bob, EmailKind.LOGIN).split(".")[1]

    response = api_client.post(URL, {"token": f"{kind}.{bobs_uid}.{hmac}"}, format="json")

    assert response.status_code == 400
    bob.refresh_from_db()
    assert bob.email_verified_at is None


def test_a_login_token_cannot_confirm_the_notification_address(api_client, alice):
    alice.notification_email = "alerts@example.com"
    alice.save()
    _, uid, hmac = make_email_confirmation_token(alice, EmailKind.LOGIN).split(".")

    response = api_client.post(URL, {"token": f"notification.{uid}.{hmac}"}, format="json")

    assert response.status_code == 400


def test_a_changed_notification_email_needs_a_new_confirmation(alice, django_capture_on_commit_callbacks):
    client = auth_client(alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.patch("/api/auth/me/", {"notification_email": "Alerts@Example.com"}, format="json")

    assert response.status_code == 200
    assert response.json()["notification_email"] == "alerts@example.com"
    assert response.json()["notification_email_confirmed"] is False
    # Until the new address is confirmed, alerts keep going to the confirmed login address.
    assert response.json()["alert_email"] == "alice@example.com"
    assert [m.to for m in mail.outbox] == [["alerts@example.com"]]

    response = client.get(URL, {"token": token_from(mail.outbox[0])})

    assert response.json() == {"email": "alerts@example.com", "kind": "notification"}
    alice.refresh_from_db()
    assert alice.notification_email_confirmed
    assert alice.alert_address() == "alerts@example.com"


def test_a_link_for_a_replaced_notification_address_stops_working(alice, django_capture_on_commit_callbacks):
    client = auth_client(alice)
    # Each email goes out before the next change (one still queued at the change is not sent at
    # all: tests/test_hardening_accounts_outbox.py).
    with django_capture_on_commit_callbacks(execute=True):
        client.patch("/api/auth/me/", {"notification_email": "old@example.com"}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        client.patch("/api/auth/me/", {"notification_email": "new@example.com"}, format="json")
    old_link, new_link = (token_from(m) for m in mail.outbox)

    assert client.get(URL, {"token": old_link}).status_code == 400
    assert client.get(URL, {"token": new_link}).status_code == 200
    alice.refresh_from_db()
    assert alice.alert_address() == "new@example.com"


def test_replacing_a_confirmed_notification_address_unconfirms_it(alice, django_capture_on_commit_callbacks):
    alice.notification_email = "old@example.com"
    alice.notification_email_verified_at = timezone.now()
    alice.save()

    with django_capture_on_commit_callbacks(execute=True):
        auth_client(alice).patch("/api/auth/me/", {"notification_email": "new@example.com"}, format="json")

    alice.refresh_from_db()
    assert alice.notification_email_verified_at is None
    assert alice.alert_address() == "alice@example.com"


def test_resend_sends_a_link_for_each_unconfirmed_address(unconfirmed_alice, django_capture_on_commit_callbacks):
    unconfirmed_alice.notification_email = "alerts@example.com"
    unconfirmed_alice.save()

    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client(unconfirmed_alice).post("/api/auth/email/resend/")

    assert response.status_code == 200
    assert response.json() == {"sent_to": ["alice@example.com", "alerts@example.com"]}
    assert sorted(m.to[0] for m in mail.outbox) == ["alerts@example.com", "alice@example.com"]


def test_resend_sends_nothing_when_everything_is_confirmed(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client(alice).post("/api/auth/email/resend/")

    assert response.json() == {"sent_to": []}
    assert mail.outbox == []


def test_resend_needs_authentication(api_client):
    assert api_client.post("/api/auth/email/resend/").status_code == 401


def test_resend_is_throttled(unconfirmed_alice, settings):
    # The per-client throttle, not the per-address email limit (test_hardening_accounts_mail_limits).
    settings.ACCOUNTS_CONFIRMATION_EMAIL_LIMITS = [(1000, 3600)]
    limit, _ = ScopedRateThrottle().parse_rate(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["email_confirm"])
    client = auth_client(unconfirmed_alice)
    for _ in range(limit):
        assert client.post("/api/auth/email/resend/").status_code == 200

    assert client.post("/api/auth/email/resend/").status_code == 429
