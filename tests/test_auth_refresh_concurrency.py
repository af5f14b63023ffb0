"""Eight clients refreshing one token at once: exactly one gets a new pair.

simplejwt's own rotation let all eight through (FINDINGS.md). Real threads, each with its own
database connection, hit the view through the test client; the SQLite test database is a file
in WAL mode with IMMEDIATE transactions, as in production.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connections
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

CLIENTS = 8


@pytest.fixture(autouse=True)
def _isolated(fast_password_hashing, clear_cache) -> None:
    """Fast hashing; throttle counters from other tests cleared."""


def refresh_all_at_once(refresh: str) -> list[tuple[int, dict]]:
    barrier = threading.Barrier(CLIENTS)
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            client = APIClient()
            barrier.wait(timeout=10)
            response = client.post("/api/auth/token/refresh/", {"refresh": refresh}, format="json")
            with lock:
                results.append((response.status_code, response.json()))
        finally:
            # Each thread opened its own connection; close it so the test database can be flushed.
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


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
