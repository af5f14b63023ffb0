"""Hostile tokens and brute force: forged JWTs, revoked and orphaned tokens, throttles, enumeration.

tests/test_auth_tokens.py covers the ordinary life of a token (tampered signature, expiry, the
access/refresh mix-up, rotation, logout, a deactivated user) and tests/test_auth_passwords.py the
reset flow; this file adds what an attacker would try next.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import timedelta

import jwt
import pytest
import time_machine
from django.conf import settings as django_settings
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from tests.conftest import auth_client

ME = "/api/auth/me/"
TOKEN = "/api/auth/token/"
REFRESH = "/api/auth/token/refresh/"
RESET = "/api/auth/password/reset/"
CONFIRM = "/api/auth/password/reset/confirm/"
CHANGE = "/api/auth/password/change/"
EMAIL_CONFIRM = "/api/auth/email/confirm/"
PASSWORD = "correct-horse-battery-9"
NEW_PASSWORD = "tiger-lily-on-the-moon-42"


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def signing_key() -> str:
    key = django_settings.SIMPLE_JWT["SIGNING_KEY"]
    assert isinstance(key, str)
    return key


def limit_of(scope: str) -> int:
    rates = django_settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    assert isinstance(rates, dict)
    count, _ = ScopedRateThrottle().parse_rate(rates[scope])
    assert count is not None, f"no rate for {scope}"
    return count


def found(pattern: str, text: str) -> str:
    """The first group of ``pattern`` in ``text`` (which must contain it)."""
    match = re.search(pattern, text)
    assert match is not None, f"{pattern!r} not found"
    return match.group(1)


# --- forged access tokens ------------------------------------------------------------------------


def hs256_with_empty_key(claims: dict) -> str:
    # PyJWT refuses to sign with an empty key, so sign by hand.
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}"
    digest = hmac.new(b"", signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


def forged_tokens(alice) -> dict[str, str]:
    """Alice's real access-token claims, re-signed or re-headed the ways attackers try."""
    claims = claims_of(str(AccessToken.for_user(alice)))
    header, payload, signature = str(AccessToken.for_user(alice)).split(".")
    return {
        "alg none, no signature": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.",
        "alg NONE, original signature": f"{b64({'alg': 'NONE', 'typ': 'JWT'})}.{b64(claims)}.{signature}",
        "HS512 with the signing key": jwt.encode(claims, signing_key(), algorithm="HS512"),
        "HS384 with the signing key": jwt.encode(claims, signing_key(), algorithm="HS384"),
        "RS256 header, HS256 signature": f"{b64({'alg': 'RS256', 'typ': 'JWT'})}.{b64(claims)}.{signature}",
        "HS256 with SECRET_KEY": jwt.encode(claims, django_settings.SECRET_KEY, algorithm="HS256"),
        "HS256 with an empty key": hs256_with_empty_key(claims),
        "payload swapped, signature kept": f"{header}.{b64({**claims, 'user_id': str(alice.pk + 1)})}.{signature}",
        "no signature part": f"{header}.{payload}",
        "signature stripped": f"{header}.{payload}.",
    }


FORGERIES = [
    "alg none, no signature",
    "alg NONE, original signature",
    "HS512 with the signing key",
    "HS384 with the signing key",
    "RS256 header, HS256 signature",
    "HS256 with SECRET_KEY",
    "HS256 with an empty key",
    "payload swapped, signature kept",
    "no signature part",
    "signature stripped",
]


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_access_token_is_refused_without_details(alice, bob, forgery):
    token = forged_tokens(alice)[forgery]

    response = bearer(token).get(ME)

    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"message", "code"}
    assert body["code"] == "token_not_valid"
    assert "Traceback" not in response.content.decode()
    assert signing_key() not in response.content.decode()


@pytest.mark.parametrize("forgery", ["alg none, no signature", "HS512 with the signing key", "HS256 with SECRET_KEY"])
def test_a_forged_refresh_token_is_refused(api_client, alice, forgery):
    claims = claims_of(str(RefreshToken.for_user(alice)))
    token = {
        "alg none, no signature": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.",
        "HS512 with the signing key": jwt.encode(claims, signing_key(), algorithm="HS512"),
        "HS256 with SECRET_KEY": jwt.encode(claims, django_settings.SECRET_KEY, algorithm="HS256"),
    }[forgery]

    response = api_client.post(REFRESH, {"refresh": token}, format="json")

    assert response.status_code == 401
    assert "access" not in response.json()


def test_a_validly_signed_token_without_an_expiry_is_refused(alice):
    claims = claims_of(str(AccessToken.for_user(alice)))
    del claims["exp"]

    assert bearer(jwt.encode(claims, signing_key(), algorithm="HS256")).get(ME).status_code == 401


def test_a_validly_signed_token_for_a_user_who_never_existed_is_refused(alice):
    claims = {**claims_of(str(AccessToken.for_user(alice))), "user_id": "987654"}

    assert bearer(jwt.encode(claims, signing_key(), algorithm="HS256")).get(ME).status_code == 401


@pytest.mark.parametrize(
    "value", ["", "Bearer", "Bearer ", "Bearer a b", "Basic YWxpY2U6cHc=", "Token abc", "Bearer \u00e9\u00e9"]
)
def test_malformed_authorization_headers_are_a_clean_401(db, value):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=value)

    response = client.get(ME)

    assert response.status_code == 401
    assert response.json()["message"]


def test_the_token_type_claim_cannot_be_flipped_without_the_key(alice):
    refresh = str(RefreshToken.for_user(alice))
    header, _, signature = refresh.split(".")
    claims = {**claims_of(refresh), "token_type": "access"}

    assert bearer(f"{header}.{b64(claims)}.{signature}").get(ME).status_code == 401


# --- tokens of deleted, deactivated and blacklisted users ---------------------------------------


def test_tokens_of_a_deleted_user_are_refused(api_client, make_user):
    mallory = make_user("mallory@example.com")
    refresh = RefreshToken.for_user(mallory)
    access = str(refresh.access_token)
    mallory.delete()

    assert bearer(access).get(ME).status_code == 401
    assert api_client.post(REFRESH, {"refresh": str(refresh)}, format="json").status_code == 401


def test_a_deactivated_user_cannot_sign_in_refresh_or_use_an_access_token(api_client, alice):
    refresh = RefreshToken.for_user(alice)
    alice.is_active = False
    alice.save()

    assert bearer(str(refresh.access_token)).get(ME).status_code == 401
    assert api_client.post(REFRESH, {"refresh": str(refresh)}, format="json").status_code == 401
    assert api_client.post(TOKEN, {"email": alice.email, "password": PASSWORD}, format="json").status_code == 401


def test_a_blacklisted_refresh_token_stays_refused_even_before_it_expires(api_client, alice):
    refresh = RefreshToken.for_user(alice)
    refresh.blacklist()

    with time_machine.travel(timezone.now() + timedelta(days=1)):
        response = api_client.post(REFRESH, {"refresh": str(refresh)}, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_a_blacklisted_refresh_token_cannot_be_used_as_an_access_token(alice):
    refresh = RefreshToken.for_user(alice)
    refresh.blacklist()

    assert bearer(str(refresh)).get(ME).status_code == 401


def test_an_access_token_cannot_log_out_or_be_rotated(alice):
    access = str(AccessToken.for_user(alice))

    assert auth_client(alice).post("/api/auth/logout/", {"refresh": access}, format="json").status_code == 400
    assert APIClient().post(REFRESH, {"refresh": access}, format="json").status_code == 401


# --- throttles against brute force -----------------------------------------------------------


def test_guessing_passwords_is_throttled_however_the_email_is_written(api_client, alice):
    for attempt in range(limit_of("token")):
        email = "ALICE@example.com" if attempt % 2 else "alice@example.com"
        assert (
            api_client.post(TOKEN, {"email": email, "password": f"guess-{attempt}"}, format="json").status_code == 401
        )

    response = api_client.post(TOKEN, {"email": "alice@example.com", "password": PASSWORD}, format="json")

    assert response.status_code == 429
    assert response["Retry-After"]
    assert set(response.json()) == {"message", "code"}


def test_a_forged_x_forwarded_for_header_does_not_reset_the_throttle(api_client, alice):
    """Without a proxy in front (NUM_PROXIES=0), the client's own X-Forwarded-For is not its address."""
    for attempt in range(limit_of("token")):
        api_client.post(
            TOKEN,
            {"email": "alice@example.com", "password": "guess"},
            format="json",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{attempt}",
        )

    response = api_client.post(
        TOKEN, {"email": "alice@example.com", "password": PASSWORD}, format="json", HTTP_X_FORWARDED_FOR="198.51.100.7"
    )

    assert response.status_code == 429


def test_the_proxy_count_decides_which_forwarded_address_is_the_client(settings, alice):
    """Behind one proxy (NUM_PROXIES=1) the address the proxy appended identifies the client."""
    from rest_framework.settings import api_settings

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    try:
        from rest_framework.test import APIRequestFactory

        request = APIRequestFactory().get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 192.0.2.10")
        assert ScopedRateThrottle().get_ident(request) == "192.0.2.10"
    finally:
        api_settings.reload()


def test_guessing_reset_tokens_is_throttled(api_client, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post(RESET, {"email": "alice@example.com"}, format="json")
    body = str(mail.outbox[0].body)
    uid, token = found(r"uid: (\S+)", body), found(r"token: (\S+)", body)
    # The request above counted too: requests and confirmations share one budget.
    for attempt in range(limit_of("password_reset") - 1):
        response = api_client.post(
            CONFIRM, {"uid": uid, "token": f"{token[:-3]}{attempt:03d}", "new_password": NEW_PASSWORD}, format="json"
        )
        assert response.status_code == 400

    response = api_client.post(CONFIRM, {"uid": uid, "token": token, "new_password": NEW_PASSWORD}, format="json")

    assert response.status_code == 429
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_guessing_email_confirmation_tokens_is_throttled(api_client, alice):
    for attempt in range(limit_of("email_confirm")):
        assert api_client.get(EMAIL_CONFIRM, {"token": f"login.MQ.x-{attempt}"}).status_code == 400

    assert api_client.post(EMAIL_CONFIRM, {"token": "login.MQ.x"}, format="json").status_code == 429


# --- reset tokens are single-use and bound to one account and one password --------------------


@pytest.fixture
def reset_token(api_client, alice, django_capture_on_commit_callbacks) -> tuple[str, str]:
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post(RESET, {"email": "alice@example.com"}, format="json")
    body = str(mail.outbox[-1].body)
    return found(r"uid: (\S+)", body), found(r"token: (\S+)", body)


def test_a_reset_token_stops_working_once_the_password_is_changed_another_way(api_client, alice, reset_token):
    uid, token = reset_token
    auth_client(alice).post(CHANGE, {"old_password": PASSWORD, "new_password": NEW_PASSWORD}, format="json")

    response = api_client.post(
        CONFIRM, {"uid": uid, "token": token, "new_password": "another-long-pass-77"}, format="json"
    )

    assert response.status_code == 400
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)


def test_alices_reset_token_cannot_reset_bobs_password(api_client, alice, bob, reset_token):
    _, token = reset_token
    bobs_uid = base64.urlsafe_b64encode(str(bob.pk).encode()).rstrip(b"=").decode()

    response = api_client.post(CONFIRM, {"uid": bobs_uid, "token": token, "new_password": NEW_PASSWORD}, format="json")

    assert response.status_code == 400
    bob.refresh_from_db()
    assert bob.check_password(PASSWORD)


def test_a_reset_token_is_refused_for_a_deactivated_account(api_client, alice, reset_token):
    uid, token = reset_token
    alice.is_active = False
    alice.save()

    response = api_client.post(CONFIRM, {"uid": uid, "token": token, "new_password": NEW_PASSWORD}, format="json")

    assert response.status_code == 400


def test_a_used_reset_token_cannot_be_replayed_for_another_new_password(api_client, alice, reset_token):
    uid, token = reset_token
    body = {"uid": uid, "token": token, "new_password": NEW_PASSWORD}
    assert api_client.post(CONFIRM, body, format="json").status_code == 204

    replay = api_client.post(CONFIRM, {**body, "new_password": "attackers-choice-1234"}, format="json")

    assert replay.status_code == 400
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)


# --- no endpoint tells whether an address has an account ---------------------------------------


@pytest.mark.parametrize(
    "email", ["alice@example.com", "ALICE@EXAMPLE.COM", "nobody@example.com", "inactive@example.com"]
)
def test_a_password_reset_answers_the_same_for_any_address(api_client, alice, make_user, email):
    make_user("inactive@example.com", is_active=False)
    reference = APIClient().post(RESET, {"email": "nobody@example.org"}, format="json")

    response = api_client.post(RESET, {"email": email}, format="json")

    assert (response.status_code, response.content) == (reference.status_code, reference.content)


@pytest.mark.parametrize("email", ["alice@example.com", "nobody@example.com", "inactive@example.com"])
def test_signing_in_answers_the_same_for_a_wrong_password_an_unknown_or_an_inactive_address(
    api_client, alice, make_user, email
):
    make_user("inactive@example.com", is_active=False)
    reference = APIClient().post(TOKEN, {"email": "nobody@example.org", "password": "wrong"}, format="json")

    response = api_client.post(TOKEN, {"email": email, "password": "wrong-password"}, format="json")

    assert (response.status_code, response.content) == (reference.status_code, reference.content)


def test_resending_a_confirmation_does_not_reveal_other_accounts(alice, bob):
    bob.email_verified_at = None
    bob.save()

    response = auth_client(alice).post("/api/auth/email/resend/")

    assert response.status_code == 200
    assert b"bob@" not in response.content


def test_guessing_the_old_password_with_a_stolen_access_token_is_throttled(alice, clear_cache):
    from tests.conftest import auth_client

    client = auth_client(alice)
    statuses = [
        client.post(
            "/api/auth/password/change/",
            {"old_password": f"guess-{i}", "new_password": "N3w-pass-phrase!"},
            format="json",
        ).status_code
        for i in range(12)
    ]
    assert statuses[:10] == [400] * 10
    assert statuses[10:] == [429, 429]
