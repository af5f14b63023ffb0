"""Password change, reset request and reset confirmation."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle
from rest_framework_simplejwt.tokens import RefreshToken

from tests.conftest import auth_client

CHANGE = "/api/auth/password/change/"
RESET = "/api/auth/password/reset/"
CONFIRM = "/api/auth/password/reset/confirm/"
REFRESH = "/api/auth/token/refresh/"
OLD = "correct-horse-battery-9"
NEW = "tiger-lily-on-the-moon-42"


@pytest.fixture
def reset_email(api_client, alice, django_capture_on_commit_callbacks):
    """Alice asks for a reset; returns ``(uid, token)`` from the email she receives."""
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post(RESET, {"email": "Alice@Example.com"}, format="json")
    (message,) = mail.outbox
    return re.search(r"uid: (\S+)", message.body).group(1), re.search(r"token: (\S+)", message.body).group(1)


def refresh_works(refresh: str) -> bool:
    return APIClient().post(REFRESH, {"refresh": refresh}, format="json").status_code == 200


# --- change ---------------------------------------------------------------------------------


def test_alice_changes_her_password_and_other_sessions_end(alice):
    other_session = str(RefreshToken.for_user(alice))

    response = auth_client(alice).post(CHANGE, {"old_password": OLD, "new_password": NEW}, format="json")

    assert response.status_code == 200
    alice.refresh_from_db()
    assert alice.check_password(NEW)
    assert not refresh_works(other_session)
    # The client that changed the password got a fresh pair and stays signed in.
    assert refresh_works(response.json()["refresh"])


def test_a_wrong_old_password_is_refused(alice, alice_client):
    response = alice_client.post(CHANGE, {"old_password": "nope", "new_password": NEW}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"old_password": ["Your old password was entered incorrectly."]}
    alice.refresh_from_db()
    assert alice.check_password(OLD)


def test_a_weak_new_password_is_refused_under_new_password(alice, alice_client):
    response = alice_client.post(CHANGE, {"old_password": OLD, "new_password": "password"}, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["new_password"]
    alice.refresh_from_db()
    assert alice.check_password(OLD)


def test_changing_the_password_needs_authentication(api_client):
    assert api_client.post(CHANGE, {"old_password": OLD, "new_password": NEW}, format="json").status_code == 401


# --- reset request --------------------------------------------------------------------------


def test_a_reset_for_an_unknown_email_looks_the_same_and_sends_nothing(
    api_client, alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        unknown = api_client.post(RESET, {"email": "mallory@example.com"}, format="json")
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        known = api_client.post(RESET, {"email": "alice@example.com"}, format="json")

    assert unknown.status_code == known.status_code == 202
    assert unknown.json() == known.json()
    assert unknown.content == known.content
    assert len(mail.outbox) == 1


def test_an_inactive_user_gets_no_reset_email(api_client, make_user, django_capture_on_commit_callbacks):
    make_user("alice@example.com", is_active=False)

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(RESET, {"email": "alice@example.com"}, format="json")

    assert response.status_code == 202
    assert mail.outbox == []


def test_the_reset_email_goes_to_the_login_address_with_uid_and_token(reset_email, settings):
    (message,) = mail.outbox

    assert message.to == ["alice@example.com"]
    assert f"{settings.SITE_URL}/api/auth/password/reset/confirm/" in message.body


def test_reset_requests_are_throttled(api_client, settings):
    limit, _ = ScopedRateThrottle().parse_rate(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["password_reset"])
    for _ in range(limit):
        assert api_client.post(RESET, {"email": "alice@example.com"}, format="json").status_code == 202

    assert api_client.post(RESET, {"email": "alice@example.com"}, format="json").status_code == 429


# --- reset confirm --------------------------------------------------------------------------


def test_alice_resets_her_password_and_all_sessions_end(api_client, alice, reset_email):
    uid, token = reset_email
    session = str(RefreshToken.for_user(alice))

    response = api_client.post(CONFIRM, {"uid": uid, "token": token, "new_password": NEW}, format="json")

    assert response.status_code == 204
    alice.refresh_from_db()
    assert alice.check_password(NEW)
    assert not refresh_works(session)


def test_a_reset_confirms_an_unconfirmed_login_address(api_client, make_user, django_capture_on_commit_callbacks):
    alice = make_user("alice@example.com", email_verified_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post(RESET, {"email": "alice@example.com"}, format="json")
    body = mail.outbox[0].body
    uid, token = re.search(r"uid: (\S+)", body).group(1), re.search(r"token: (\S+)", body).group(1)

    api_client.post(CONFIRM, {"uid": uid, "token": token, "new_password": NEW}, format="json")

    alice.refresh_from_db()
    assert alice.email_confirmed


@pytest.mark.parametrize(
    ("uid", "token"),
    [
        ("good", "1-wrong"),
        ("good", "garbage"),
        ("MTIzNDU2", "good"),
        ("!!", "good"),
        ("OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "good"),
    ],
)
def test_a_wrong_reset_token_or_uid_is_refused(api_client, alice, reset_email, uid, token):
    good_uid, good_token = reset_email

    response = api_client.post(
        CONFIRM,
        {
            "uid": good_uid if uid == "good" else uid,
            "token": good_token if token == "good" else token,
            "new_password": NEW,
        },
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_token"
    assert "invalid, expired or already used" in response.json()["message"]
    alice.refresh_from_db()
    assert alice.check_password(OLD)


def test_a_used_reset_token_is_refused(api_client, alice, reset_email):
    uid, token = reset_email
    assert api_client.post(CONFIRM, {"uid": uid, "token": token, "new_password": NEW}, format="json").status_code == 204

    response = api_client.post(CONFIRM, {"uid": uid, "token": token, "new_password": OLD + "x"}, format="json")

    assert response.status_code == 400
    alice.refresh_from_db()
    assert alice.check_password(NEW)


def test_an_expired_reset_token_is_refused(api_client, alice, reset_email, settings):
    uid, token = reset_email

    with time_machine.travel(timezone.now() + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT + 60)):
        response = api_client.post(CONFIRM, {"uid": uid, "token": token, "new_password": NEW}, format="json")

    assert response.status_code == 400
    alice.refresh_from_db()
    assert alice.check_password(OLD)


def test_a_weak_password_does_not_use_up_the_reset_token(api_client, alice, reset_email):
    uid, token = reset_email

    weak = api_client.post(CONFIRM, {"uid": uid, "token": token, "new_password": "123"}, format="json")
    strong = api_client.post(CONFIRM, {"uid": uid, "token": token, "new_password": NEW}, format="json")

    assert weak.status_code == 400
    assert "new_password" in weak.json()["errors"]
    assert strong.status_code == 204
