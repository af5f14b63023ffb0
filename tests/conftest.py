"""Fixtures shared by the whole suite.

Users are Alice, Bob and Charlie (healthchecks.io style) so ownership tests read like sentences.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

# The fake Amazon store (a loopback HTTP server) as the `fake_store` fixture.
pytest_plugins = ["tests.fakestore_fixtures"]


def pytest_collection_modifyitems(config, items) -> None:
    """Skip ``default_db_only`` tests when the suite runs against PostgreSQL (CI's second pass):
    they run their own SQLite database or do not touch the database server at all."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        return
    skip = pytest.mark.skip(reason="runs in the default (SQLite) pass only")
    for item in items:
        if item.get_closest_marker("default_db_only"):
            item.add_marker(skip)


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


@pytest.fixture
def fast_password_hashing(settings) -> None:
    """MD5 instead of PBKDF2 (~0.5 s a hash here): for tests that create or check many passwords."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def clear_cache(db) -> None:
    """Empty the cache (the DB cache table holds DRF throttle counters) before a test."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _fast_hashing_everywhere(settings) -> None:
    """PBKDF2 costs ~0.5 s a hash on these machines; hashing strength is not under test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _q_sync(monkeypatch) -> None:
    """Run django-q2 tasks in-process. Its Conf is read once at import, so patch it directly
    (override_settings has no effect on it, FINDINGS.md)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def store(db):
    """The amazon.com store with a permissive policy, so tests never wait for request slots."""
    from scraping.models import get_store

    row = get_store("amazon.com")
    row.min_interval_minutes = 1
    row.requests_per_minute = 60_000
    row.concurrency = 50
    row.save()
    return row


class ScriptedProvider:
    """A provider that returns scripted results per ASIN, with the real input validation."""

    code = "amazon.com"
    display_name = "Amazon.com (scripted)"

    def __init__(self) -> None:
        from collections import defaultdict

        self.script: dict[str, list] = defaultdict(list)
        self.calls: list[str] = []

    def normalize(self, text: str) -> str:
        from scraping.inputs import normalize_product_reference

        return normalize_product_reference(text)

    def product_url(self, ref: str) -> str:
        from scraping.inputs import canonical_url

        return canonical_url(ref)

    def queue(self, asin: str, *results) -> None:
        """Append results (ScrapeResult, or a price string for a plain success) for ``asin``."""
        for result in results:
            self.script[asin].append(result)

    def scrape(self, ref: str):
        from decimal import Decimal

        from scraping.results import Availability, ScrapeResult, ScrapeStatus

        self.calls.append(ref)
        item = self.script[ref].pop(0) if self.script[ref] else "10.00"
        if isinstance(item, ScrapeResult):
            return item
        return ScrapeResult(
            status=ScrapeStatus.SUCCESS,
            asin=ref,
            title=f"Product {ref}",
            price=Decimal(item),
            currency="USD",
            availability=Availability.IN_STOCK,
            rule="scripted",
            bytes_received=1000,
            duration_ms=5,
        )


@pytest.fixture
def provider(monkeypatch, store) -> ScriptedProvider:
    """Replace the amazon.com provider seen by tracking with a scripted one."""
    scripted = ScriptedProvider()
    monkeypatch.setattr("tracking.services.scrape.get_provider", lambda code: scripted)
    return scripted
