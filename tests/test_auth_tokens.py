"""JWT: sign in, refresh rotation, logout, and what access tokens are accepted."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

TOKEN = "/api/auth/token/"
REFRESH = "/api/auth/token/refresh/"
LOGOUT = "/api/auth/logout/"
ME = "/api/auth/me/"
PASSWORD = "correct-horse-battery-9"
GENERIC_401 = "No active account found with the given credentials"


def bearer(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def sign_in(client: APIClient, email: str = "alice@example.com", password: str = PASSWORD) -> dict[str, str]:
    response = client.post(TOKEN, {"email": email, "password": password}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def test_alice_signs_in_with_her_email_in_any_case(api_client, alice):
    pair = sign_in(api_client, email="ALICE@Example.COM")

    assert set(pair) == {"access", "refresh"}
    assert bearer(pair["access"]).get(ME).json()["email"] == "alice@example.com"


def test_signing_in_does_not_need_a_confirmed_email(api_client, make_user):
    make_user("alice@example.com", email_verified_at=None)

    assert sign_in(api_client)["access"]


def test_a_wrong_password_and_an_inactive_user_get_the_same_401(api_client, alice, make_user):
    make_user("bob@example.com", is_active=False)

    wrong = api_client.post(TOKEN, {"email": "alice@example.com", "password": "wrong-password"}, format="json")
    inactive = api_client.post(TOKEN, {"email": "bob@example.com", "password": PASSWORD}, format="json")
    unknown = api_client.post(TOKEN, {"email": "carol@example.com", "password": PASSWORD}, format="json")

    assert wrong.status_code == inactive.status_code == unknown.status_code == 401
    assert wrong.json() == inactive.json() == unknown.json()
    assert wrong.json()["message"] == GENERIC_401


def test_signing_in_needs_both_fields(api_client):
    response = api_client.post(TOKEN, {"email": "alice@example.com"}, format="json")

    assert response.status_code == 400
    assert "password" in response.json()["errors"]


def test_signing_in_is_throttled(api_client, alice, settings):
    limit, _ = ScopedRateThrottle().parse_rate(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["token"])
    for _ in range(limit):
        api_client.post(TOKEN, {"email": "alice@example.com", "password": "guess"}, format="json")

    response = api_client.post(TOKEN, {"email": "alice@example.com", "password": PASSWORD}, format="json")

    assert response.status_code == 429


def test_refresh_rotates_the_pair(api_client, alice):
    pair = sign_in(api_client)

    response = api_client.post(REFRESH, {"refresh": pair["refresh"]}, format="json")

    assert response.status_code == 200
    new = response.json()
    assert set(new) == {"access", "refresh"}
    assert new["refresh"] != pair["refresh"]
    assert bearer(new["access"]).get(ME).status_code == 200
    # The new refresh token works in turn.
    assert api_client.post(REFRESH, {"refresh": new["refresh"]}, format="json").status_code == 200


def test_a_rotated_refresh_token_cannot_be_used_again(api_client, alice):
    pair = sign_in(api_client)
    assert api_client.post(REFRESH, {"refresh": pair["refresh"]}, format="json").status_code == 200

    response = api_client.post(REFRESH, {"refresh": pair["refresh"]}, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"
    assert "blacklisted" in response.json()["message"]


def test_refresh_works_for_a_token_minted_without_an_outstanding_row(api_client, alice):
    refresh = RefreshToken.for_user(alice)
    OutstandingToken.objects.filter(jti=refresh["jti"]).delete()

    assert api_client.post(REFRESH, {"refresh": str(refresh)}, format="json").status_code == 200
    assert api_client.post(REFRESH, {"refresh": str(refresh)}, format="json").status_code == 401


def test_refresh_is_refused_once_alice_is_deactivated(api_client, alice):
    refresh = str(RefreshToken.for_user(alice))
    alice.is_active = False
    alice.save()

    response = api_client.post(REFRESH, {"refresh": refresh}, format="json")

    assert response.status_code == 401


def test_an_expired_refresh_token_is_refused(api_client, alice, settings):
    refresh = str(RefreshToken.for_user(alice))

    with time_machine.travel(timezone.now() + settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"] + timedelta(minutes=1)):
        response = api_client.post(REFRESH, {"refresh": refresh}, format="json")

    assert response.status_code == 401


def test_an_access_token_is_not_a_refresh_token(api_client, alice):
    access = str(RefreshToken.for_user(alice).access_token)

    assert api_client.post(REFRESH, {"refresh": access}, format="json").status_code == 401


def test_logout_then_refresh_is_refused(api_client, alice):
    pair = sign_in(api_client)

    response = bearer(pair["access"]).post(LOGOUT, {"refresh": pair["refresh"]}, format="json")

    assert response.status_code == 204
    assert api_client.post(REFRESH, {"refresh": pair["refresh"]}, format="json").status_code == 401


def test_logout_needs_authentication(api_client, alice):
    pair = sign_in(api_client)

    assert api_client.post(LOGOUT, {"refresh": pair["refresh"]}, format="json").status_code == 401


def test_bob_cannot_log_out_alices_session(api_client, alice, bob_client):
    pair = sign_in(api_client)

    response = bob_client.post(LOGOUT, {"refresh": pair["refresh"]}, format="json")

    assert response.status_code == 400
    assert api_client.post(REFRESH, {"refresh": pair["refresh"]}, format="json").status_code == 200


def test_logout_with_a_garbage_token_is_a_400(alice_client):
    response = alice_client.post(LOGOUT, {"refresh": "garbage"}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"refresh": ["Invalid, expired or already revoked refresh token."]}


def test_a_tampered_access_token_is_refused(alice):
    header, payload, signature = str(RefreshToken.for_user(alice).access_token).split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"

    response = bearer(tampered).get(ME)

    assert response.status_code == 401
    assert response.json()["message"]
    assert "Traceback" not in response.content.decode()


def test_an_expired_access_token_is_refused(alice, settings):
    access = str(RefreshToken.for_user(alice).access_token)

    with time_machine.travel(timezone.now() + settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"] + timedelta(seconds=5)):
        response = bearer(access).get(ME)

    assert response.status_code == 401


def test_a_refresh_token_is_not_an_access_token(alice):
    assert bearer(str(RefreshToken.for_user(alice))).get(ME).status_code == 401


def test_an_inactive_users_access_token_is_refused(alice):
    access = str(RefreshToken.for_user(alice).access_token)
    alice.is_active = False
    alice.save()

    assert bearer(access).get(ME).status_code == 401
