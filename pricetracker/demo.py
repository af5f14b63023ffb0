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
   :data:`DEMO_PRODUCTS` entry, with alert rules of every kind. Their fake prices move with
   wall-clock time and fire the rules within a few minutes: one is below target from the start
   (an alert at the first check), one drops by more than 5%, one reaches new lows, one is out of
   stock and comes back (back in stock), one meets a captcha once (a BLOCKED run) and then
   changes price.
3. The web server and a qcluster start as usual. The logins, API docs, admin, health and metrics
   URLs are printed; alert emails appear on this console (console mailer, printed by the
   cluster). Ctrl-C stops the web server, the cluster and the fake store.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from fakestore.server import FakeStore

if TYPE_CHECKING:
    from tracking.services import RuleSpec

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
    """One fake product and the demo user's tracker for it: a target and other alert rules."""

    asin: str
    title: str
    target: str
    prices: tuple[str, ...] = ()
    availability: str = "in_stock"
    fault: str | None = None
    rules: tuple[dict[str, object], ...] = ()
    # Out of stock at first, back in stock at this price after RETURN_AFTER_STEPS price steps.
    returns_at: str | None = None


RETURN_AFTER_STEPS = 3


DEMO_PRODUCTS: tuple[DemoProduct, ...] = (
    # Below target at the first check: an alert within seconds of start-up.
    DemoProduct("B0DEMO0001", "FakeBrand Mechanical Keyboard, 87 Keys", "80.00", ("74.99",)),
    # Drops 8% after a minute (drop_percent), then falls through its target (with another drop).
    DemoProduct(
        "B0DEMO0002",
        "FakeBrand Noise-Cancelling Headphones",
        "200.00",
        ("249.99", "229.99", "199.00", "189.99"),
        rules=({"kind": "drop_percent", "percent": "5"},),
    ),
    # New lows, crosses its target, goes back up (re-arms), crosses again.
    DemoProduct(
        "B0DEMO0003",
        "FakeBrand Espresso Machine with Milk Frother",
        "120.00",
        ("139.99", "134.99", "119.99", "129.99", "114.99"),
        rules=({"kind": "new_low", "days": 30},),
    ),
    # No price while out of stock; back in stock, below its target, after a few minutes.
    DemoProduct(
        "B0DEMO0004",
        "FakeBrand E-Reader, 6-inch",
        "99.99",
        availability="out_of_stock",
        rules=({"kind": "back_in_stock"},),
        returns_at="94.99",
    ),
    # The first request meets a captcha: a BLOCKED run, then a normal one after the backoff (about
    # a minute, still the first price: FAILED and BLOCKED runs are not observations), then a
    # price change (any_change) that also crosses the target.
    DemoProduct(
        "B0DEMO0005",
        "FakeBrand Robot Vacuum",
        "150.00",
        ("179.99", "179.99", "149.00"),
        fault="captcha",
        rules=({"kind": "any_change", "direction": "down"},),
    ),
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
        if product.returns_at is not None:
            # A daemon timer: it never keeps the demo from stopping.
            back = threading.Timer(
                STEP_SECONDS * RETURN_AFTER_STEPS,
                store.set_product,
                args=(product.asin,),
                kwargs={"availability": "in_stock", "price": product.returns_at},
            )
            back.daemon = True
            back.start()
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
            tracker_create(
                user=user,
                reference=product.asin,
                target_price=Decimal(product.target),
                rules=[demo_rule(rule) for rule in product.rules],
                interval_minutes=1,
            )
    return logins


def demo_rule(rule: Mapping[str, object]) -> RuleSpec:
    """A :data:`DEMO_PRODUCTS` rule as the services take it (decimals from their strings)."""
    from tracking.services import RuleSpec

    values = dict(rule)
    if "percent" in values:
        values["percent"] = Decimal(str(values["percent"]))
    return RuleSpec(**values)  # type: ignore[arg-type]
