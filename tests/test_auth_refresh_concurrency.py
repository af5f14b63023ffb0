"""Eight clients refreshing one token at once: exactly one gets a new pair.

simplejwt's own rotation let all eight through (docs/decisions.md). Real threads, each with its own
database connection, hit the view through the test client; the SQLite test database is a file
in WAL mode with IMMEDIATE transactions, as in production.
"""

from __future__ import annotations

from collections import Counter

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from tests.concurrency import run_concurrently

CLIENTS = 8


def refresh_all_at_once(refresh: str) -> list[tuple[int, dict]]:
    def refresh_once() -> tuple[int, dict]:
        response = APIClient().post("/api/auth/token/refresh/", {"refresh": refresh}, format="json")
        return response.status_code, response.json()

    return run_concurrently([refresh_once] * CLIENTS)


@pytest.mark.django_db(transaction=True)
def test_eight_concurrent_refreshes_of_one_token_give_exactly_one_new_pair(alice):
    refresh = RefreshToken.for_user(alice)

    results = refresh_all_at_once(str(refresh))

    assert len(results) == CLIENTS
    assert Counter(status for status, _ in results) == {200: 1, 401: CLIENTS - 1}
    (winner,) = [body for status, body in results if status == 200]
    assert set(winner) == {"access", "refresh"}
    assert all(body["code"] == "token_not_valid" for status, body in results if status == 401)
    # One claim on the old token; one new outstanding token besides it.
    assert BlacklistedToken.objects.filter(token__jti=refresh["jti"]).count() == 1
    assert OutstandingToken.objects.filter(user=alice).count() == 2
