"""The offline demo: ``uv run python manage.py serve --demo``.

Everything runs on this machine and nothing touches the internet or your data:

1. ``serve --demo`` deletes and re-creates its own SQLite file, ``$DATA_DIR/demo.sqlite3``
   (``var/demo.sqlite3`` by default), then re-executes itself with the demo environment
   (:func:`demo_environ`): that database, the ORM broker and the database cache inside it (any
   ``Q_REDIS_URL`` / ``CACHE_URL`` is dropped), console email, ``DEBUG`` on. Re-executing is the
   simple way to switch databases: settings are loaded before a command runs, and the web and
   cluster processes inherit the same environment.
2. The re-executed process starts a fake amazon.com (:class:`fakestore.server.FakeStore`) in a
   thread on a free loopback port and points ``AMAZON_BASE_URL`` at it, migrates, and seeds
   (:func:`seed`): a permissive store policy (1-minute minimum interval), a demo user and an
   admin with confirmed emails and fresh random passwords, and one tracker per
   :data:`DEMO_PRODUCTS` entry. Their fake prices move with wall-clock time and cross the
   targets within a few minutes; one is below target from the start (an alert at the first
   check), one is out of stock, one meets a captcha once (a BLOCKED run).
3. The web server and a qcluster start as usual. The logins, API docs, admin, health and metrics
   URLs are printed; alert emails appear on this console (console mailer, printed by the
   cluster). Ctrl-C stops the web server, the cluster and the fake store.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from fakestore.server import FakeStore

# Set in the re-executed process's environment; its absence means "re-execute first".
DEMO_FLAG = "PRICETRACKER_DEMO"
DEMO_DATABASE = "demo.sqlite3"
DEMO_USER_EMAIL = "demo@example.com"
DEMO_ADMIN_EMAIL = "admin@example.com"
DEMO_WORKERS = "2"
# Prices move this often; with 1-minute intervals each step is seen by one or two checks.
STEP_SECONDS = 60


@dataclass(frozen=True, slots=True)
class DemoProduct:
    """One fake product and the demo user's tracker for it."""

    asin: str
    title: str
    target: str
    prices: tuple[str, ...] = ()
    availability: str = "in_stock"
    fault: str | None = None


DEMO_PRODUCTS: tuple[DemoProduct, ...] = (
    # Below target at the first check: an alert within seconds of start-up.
    DemoProduct("B0DEMO0001", "FakeBrand Mechanical Keyboard, 87 Keys", "80.00", ("74.99",)),
    # Falls through its target after about two minutes.
    DemoProduct(
        "B0DEMO0002", "FakeBrand Noise-Cancelling Headphones", "200.00", ("249.99", "229.99", "199.00", "189.99")
    ),
    # Crosses, goes back up (re-arms), crosses again: two alerts.
    DemoProduct(
        "B0DEMO0003",
        "FakeBrand Espresso Machine with Milk Frother",
        "120.00",
        ("139.99", "134.99", "119.99", "129.99", "114.99"),
    ),
    # No price while out of stock: nothing to alert on.
    DemoProduct("B0DEMO0004", "FakeBrand E-Reader, 6-inch", "99.99", availability="out_of_stock"),
    # The first request meets a captcha: a BLOCKED run, then a normal one after the backoff.
    DemoProduct("B0DEMO0005", "FakeBrand Robot Vacuum", "150.00", ("179.99", "149.00"), fault="captcha"),
)


@dataclass(frozen=True, slots=True)
class DemoLogins:
    """The accounts seeded for this run (passwords are new each run)."""

    user_email: str
    user_password: str
    admin_email: str
    admin_password: str


def demo_database(data_dir: Path) -> Path:
    """The demo's own SQLite file, beside (never instead of) the real one."""
    return Path(data_dir).resolve() / DEMO_DATABASE


def reset_demo_database(path: Path) -> None:
    """Delete the demo database and its WAL files: every demo starts from scratch."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def demo_environ(base: Mapping[str, str], *, database: Path, site_url: str) -> dict[str, str]:
    """The environment of the re-executed demo process and its children."""
    # Anything that could reach shared infrastructure goes: the broker and cache live in the demo
    # database, and sync mode would bypass the cluster the demo is meant to show.
    dropped = {"CACHE_URL", "Q_REDIS_URL", "Q_SYNC", "SCRAPE_PROXY_URL"}
    env = {key: value for key, value in base.items() if key not in dropped}
    env.update(
        {
            DEMO_FLAG: "1",
            "DATABASE_URL": f"sqlite:///{database}",
            "DEBUG": "1",
            "EMAIL_URL": "consolemail://",
            "SITE_URL": site_url,
            "Q_WORKERS": DEMO_WORKERS,
            "Q_SCHEDULER": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def start_fake_store() -> FakeStore:
    """A started fake amazon.com on a free loopback port, scripted with :data:`DEMO_PRODUCTS`."""
    store = FakeStore("127.0.0.1", 0).start()
    for product in DEMO_PRODUCTS:
        changes: dict[str, object] = {"title": product.title, "availability": product.availability}
        if product.prices:
            changes.update(script=list(product.prices), advance="time", step_seconds=STEP_SECONDS)
        if product.fault:
            changes.update(fault=product.fault, fault_times=1)
        store.set_product(product.asin, **changes)
    return store


def seed() -> DemoLogins:
    """Store policy, users and trackers for the demo (run once, on the fresh demo database).

    The trackers are created through the normal service, so each product's first check is
    enqueued at once and runs as soon as the cluster starts.
    """
    from accounts.models import User
    from scraping.models import get_store
    from scraping.services import store_update_policy
    from tracking.services import DEFAULT_STORE, tracker_create

    logins = DemoLogins(
        user_email=DEMO_USER_EMAIL,
        user_password=secrets.token_urlsafe(12),
        admin_email=DEMO_ADMIN_EMAIL,
        admin_password=secrets.token_urlsafe(12),
    )
    with transaction.atomic():
        # Permissive enough to see prices move within minutes; still rate-limited and polite.
        store_update_policy(
            store=get_store(DEFAULT_STORE),
            min_interval_minutes=1,
            requests_per_minute=30,
            concurrency=2,
            backoff_base_minutes=1,
            backoff_max_minutes=5,
        )
        user = User.objects.create_user(logins.user_email, logins.user_password, email_verified_at=timezone.now())
        User.objects.create_superuser(logins.admin_email, logins.admin_password)
        for product in DEMO_PRODUCTS:
            tracker_create(user=user, reference=product.asin, target_price=Decimal(product.target), interval_minutes=1)
    return logins
