"""Fixtures shared by the whole suite, and how it runs in parallel.

Users are Alice, Bob and Charlie (healthchecks.io style) so ownership tests read like sentences.

``uv run pytest`` runs the suite in two pytest-xdist worker processes (``-n auto`` in
pyproject.toml; :func:`pytest_xdist_auto_num_workers` decides what "auto" means). Each worker has
its own test database (pytest-django suffixes its name), its own SQLite file and, on the Redis
pass, its own Redis databases (:func:`pytest_xdist_newgateway`); nothing else is shared: the fake
store, the SMTP server and the demo take free ports, files live in ``tmp_path``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit, urlunsplit

import pytest
from rest_framework.test import APIClient

# The fake Amazon store (a loopback HTTP server) as the `fake_store` fixture.
pytest_plugins = ["tests.fakestore_fixtures"]

# Parallel runs: at most this many workers. Measured on the 2-core machines (README,
# "Development"): the suite is mostly end-to-end tests waiting on real clusters, and two workers
# took it from 10.5 minutes to 5.5; CI runs two passes side by side on the same 2 cores.
MAX_WORKERS = 2
# Environment variables naming a Redis database (redis://host:port/<db>) that each parallel
# worker must have to itself: its cache.clear() is a FLUSHDB, which would empty another
# worker's task queue and cluster stats too.
REDIS_URL_VARIABLES = ("Q_REDIS_URL", "CACHE_URL")
REDIS_DATABASES = 16  # Redis's default `databases`


def pytest_collection_modifyitems(config, items) -> None:
    """Skip ``default_db_only`` tests when the suite runs against PostgreSQL (CI's second pass):
    they run their own SQLite database or do not touch the database server at all. Start the
    end-to-end tests early (see :func:`_end_to_end_first`)."""
    from django.conf import settings

    _end_to_end_first(items)
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        return
    skip = pytest.mark.skip(reason="runs in the default (SQLite) pass only")
    for item in items:
        if item.get_closest_marker("default_db_only"):
            item.add_marker(skip)


def _end_to_end_first(items: list[pytest.Item]) -> None:
    """Move the ``e2e`` tests (a few, minutes of waiting on real clusters between them) to the
    front of the tests that run after the plain database tests.

    pytest-django runs the tests that use a plain (rolled back) database first, then the
    transactional ones, which flush it, then those without a database; that order is kept. The
    end-to-end tests are transactional or use no database, so they can lead the second group.
    Tests are handed out one at a time (``--maxschedchunk=1``: a worker holds one test besides
    the one it runs), so the end-to-end tests spread over both workers early and the many short
    tests fill in around them, instead of one worker queueing several of them or ending the run
    alone with a 90-second cluster test.
    """
    slow = [item for item in items if item.get_closest_marker("e2e")]
    if not slow:
        return
    rest = [item for item in items if not item.get_closest_marker("e2e")]
    index = next((i for i, item in enumerate(rest) if not _uses_a_rolled_back_database(item)), len(rest))
    items[:] = rest[:index] + slow + rest[index:]


def _uses_a_rolled_back_database(item: pytest.Item) -> bool:
    """Whether pytest-django runs ``item`` in a transaction rolled back afterwards (its first group)."""
    fixtures = set(getattr(item, "fixturenames", ()))
    if fixtures & {"transactional_db", "live_server", "django_db_reset_sequences"}:
        return False
    marker = item.get_closest_marker("django_db")
    if marker is not None:
        return not (marker.kwargs.get("transaction") or marker.kwargs.get("reset_sequences"))
    return "db" in fixtures


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config) -> int:
    """What ``-n auto`` means here: up to MAX_WORKERS workers when a directory is run (the whole
    suite, as ``uv run pytest`` and CI do), none (in-process, as without xdist) when only test
    files or test ids are named: starting workers and their databases costs more than a few
    files take."""
    if all(_names_tests(arg) for arg in config.args):
        return 0
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def _names_tests(arg: str) -> bool:
    """Whether a command-line argument names a test file or test id (not a directory)."""
    path = arg.split("::", 1)[0]
    return "::" in arg or path.endswith(".py") or Path(path).is_file()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_newgateway(gateway) -> None:
    """Give each parallel worker Redis databases of its own, before it loads the settings.

    Worker N uses the databases of Q_REDIS_URL and CACHE_URL plus N times the span they cover
    (``/5`` becomes ``/6`` for the second worker). Without Redis in the environment (SQLite and
    the ORM broker, the default) there is nothing to do: the broker and the cache live in each
    worker's own test database.
    """
    index = int(gateway.id.removeprefix("gw"))
    environment = worker_redis_environment(os.environ, index)
    if environment:
        gateway.remote_exec(f"import os; os.environ.update({environment!r})").waitclose()


def worker_redis_environment(environ: Mapping[str, str], index: int) -> dict[str, str]:
    """The Redis URLs parallel worker ``index`` uses in place of those in ``environ``."""
    urls = {name: environ[name] for name in REDIS_URL_VARIABLES if environ.get(name, "").startswith("redis")}
    if not urls or index == 0:
        return {}
    databases = {name: _redis_database(name, url) for name, url in urls.items()}
    span = max(databases.values()) - min(databases.values()) + 1
    moved = {name: database + index * span for name, database in databases.items()}
    if max(moved.values()) >= REDIS_DATABASES:
        raise pytest.UsageError(
            f"Parallel worker {index} would need Redis database {max(moved.values())}: give "
            f"{' and '.join(urls)} a lower database number, or run with -n 0."
        )
    return {name: _with_redis_database(urls[name], moved[name]) for name in urls}


def _redis_database(name: str, url: str) -> int:
    path = urlsplit(url).path.strip("/") or "0"
    if not path.isdigit():  # the URL itself is not printed: it may carry a password
        raise pytest.UsageError(f"{name}: parallel tests need redis://host:port/<db> URLs; or run with -n 0.")
    return int(path)


def _with_redis_database(url: str, database: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture
def api_client(db) -> APIClient:
    """An anonymous API client. Every request passes the throttles, which count in the cache
    (a database table by default), so the client comes with the database."""
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


# What makes pytest-django give a test the database (besides the django_db mark).
DATABASE_FIXTURES = frozenset(
    {"db", "transactional_db", "live_server", "django_db_reset_sequences", "django_db_serialized_rollback"}
)


@pytest.fixture(autouse=True)
def _fresh_cache(request) -> None:
    """Every test that uses the database starts with an empty cache.

    Throttle counters, mail quotas kept in the cache and django-q2's cluster stats outlive a
    test's rolled-back transaction wherever the cache is not the test database (Redis in CI's
    second pass), so a test could be refused for another test's requests.
    """
    if request.node.get_closest_marker("django_db") or DATABASE_FIXTURES & set(request.fixturenames):
        request.getfixturevalue("clear_cache")


@pytest.fixture(autouse=True)
def _fast_hashing_everywhere(settings) -> None:
    """PBKDF2 costs ~0.5 s a hash on these machines; hashing strength is not under test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _q_sync(monkeypatch) -> None:
    """Run django-q2 tasks in-process. Its Conf is read once at import, so patch it directly
    (override_settings has no effect on it: docs/decisions.md, "django-q2: Conf reads Q_CLUSTER once")."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


class VirtualClock:
    """Stands in for the ``time`` module of the code under test: ``sleep()`` returns at once and
    moves ``monotonic()`` on by what it would have slept, so a loop that polls until a monotonic
    deadline takes the same steps, instantly. Everything else is the real ``time``."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self._offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self._offset

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self._offset += max(0.0, seconds)

    def __getattr__(self, name: str):
        return getattr(time, name)


@pytest.fixture
def virtual_clock(monkeypatch):
    """``virtual_clock(module)`` replaces ``module.time`` with a :class:`VirtualClock` (for this
    test) and returns it: waits for a request slot, a due time or a deadline cost nothing."""

    def install(module: ModuleType) -> VirtualClock:
        clock = VirtualClock()
        monkeypatch.setattr(module, "time", clock)
        return clock

    return install


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
