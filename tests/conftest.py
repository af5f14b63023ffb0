"""Fixtures shared by the whole suite.

Users are Alice, Bob and Charlie (healthchecks.io style) so ownership tests read like sentences.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient


@pytest.fixture
def api_client() -> APIClient:
    """An anonymous API client."""
    return APIClient()


@pytest.fixture
def make_user(db):
    """Create a confirmed user; ``make_user("alice@example.com")``."""
    from django.utils import timezone

    from accounts.models import User

    def make(email: str = "alice@example.com", password: str = "correct-horse-battery-9", **extra) -> User:
        extra.setdefault("email_verified_at", timezone.now())
        return User.objects.create_user(email, password, **extra)

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice@example.com")


@pytest.fixture
def bob(make_user):
    return make_user("bob@example.com")


def auth_client(user) -> APIClient:
    """An API client carrying a fresh access token for ``user``."""
    from rest_framework_simplejwt.tokens import RefreshToken

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def alice_client(alice) -> APIClient:
    return auth_client(alice)


@pytest.fixture
def bob_client(bob) -> APIClient:
    return auth_client(bob)
