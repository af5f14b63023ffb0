"""POST /api/auth/register/: create an account and email a confirmation link."""

from __future__ import annotations

from django.core import mail
from rest_framework.throttling import ScopedRateThrottle

from accounts.models import User

URL = "/api/auth/register/"
GOOD_PASSWORD = "correct-horse-battery-9"


def test_it_registers_alice(api_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(URL, {"email": "Alice@Example.com", "password": GOOD_PASSWORD}, format="json")

    assert response.status_code == 201
    user = User.objects.get()
    assert response.json() == {"id": user.pk, "email": "alice@example.com"}
    assert user.check_password(GOOD_PASSWORD)
    assert user.email_confirmed is False


def test_it_emails_a_confirmation_link_after_commit(api_client, django_capture_on_commit_callbacks, settings):
    with django_capture_on_commit_callbacks() as callbacks:
        api_client.post(URL, {"email": "alice@example.com", "password": GOOD_PASSWORD}, format="json")
        assert mail.outbox == []  # nothing is sent before the account is committed
    for callback in callbacks:
        callback()

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.com"]
    assert f"{settings.SITE_URL}/api/auth/email/confirm/?token=" in message.body


def test_it_refuses_an_email_taken_in_another_case(api_client, alice):
    response = api_client.post(URL, {"email": "ALICE@example.COM", "password": GOOD_PASSWORD}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["errors"]["email"] == ["A user with this email address already exists."]
    assert "already exists" in body["message"]
    assert User.objects.count() == 1


def test_it_refuses_a_weak_password_under_password(api_client):
    response = api_client.post(URL, {"email": "alice@example.com", "password": "12345"}, format="json")

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == ["password"]
    assert any("too short" in message for message in errors["password"])
    assert not User.objects.exists()


def test_it_refuses_a_password_like_the_email(api_client):
    response = api_client.post(
        URL, {"email": "alice.wonderland@example.com", "password": "alicewonderland"}, format="json"
    )

    assert response.status_code == 400
    assert any("similar" in message for message in response.json()["errors"]["password"])


def test_it_refuses_a_malformed_email(api_client):
    response = api_client.post(URL, {"email": "alice@", "password": GOOD_PASSWORD}, format="json")

    assert response.status_code == 400
    assert "email" in response.json()["errors"]
    assert not User.objects.exists()


def test_it_ignores_a_stale_bearer_token(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")

    response = api_client.post(URL, {"email": "alice@example.com", "password": GOOD_PASSWORD}, format="json")

    assert response.status_code == 201


def test_it_throttles_registrations(api_client, settings):
    limit, _ = ScopedRateThrottle().parse_rate(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["register"])
    for _ in range(limit):
        assert api_client.post(URL, {"email": "not-an-email"}, format="json").status_code == 400

    response = api_client.post(URL, {"email": "alice@example.com", "password": GOOD_PASSWORD}, format="json")

    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert "Retry-After" in response.headers
    assert not User.objects.exists()
