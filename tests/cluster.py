"""Run real ``manage.py qcluster`` subprocesses against the test database (end-to-end tests).

The test database is a file (SQLite) or a real server (PostgreSQL), so a subprocess sees what the
test wrote once it is committed: end-to-end tests use ``django_db(transaction=True)``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from django.db import connection

if TYPE_CHECKING:
    from django_q.status import Stat

    from accounts.models import User
    from tracking.models import Product

ROOT = Path(__file__).resolve().parent.parent


def database_url_for_subprocess() -> str:
    """A DATABASE_URL that points a subprocess at the database this test process uses."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = settings.get("USER") or "postgres"
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


def cluster_env(**extra: str) -> dict[str, str]:
    """The environment of a worker subprocess: this process's, pointed at the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        DATABASE_URL=database_url_for_subprocess(),
        DJANGO_SETTINGS_MODULE="pricetracker.settings",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="info",
    )
    env.update(extra)
    return env


class Cluster:
    """One ``qcluster`` subprocess with its output in a log file."""

    def __init__(self, log_path: Path, env: dict[str, str]) -> None:
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Cluster:
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._log = log
        self.proc = subprocess.Popen(
            qcluster_command(self.env),
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill_hard(self) -> None:
        """``kill -9`` the whole cluster (main process, guard, workers): a machine crash."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM the main process only (a group SIGTERM can hang qcluster), then wait."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        else:
            # Reap anything the main process left behind.
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def clusters(tmp_path: Path, count: int = 1, **env: str) -> Iterator[list[Cluster]]:
    """Start ``count`` clusters sharing the work; stop them all afterwards."""
    started = [Cluster(tmp_path / f"cluster-{i}.log", cluster_env(**env)).start() for i in range(count)]
    try:
        yield started
    finally:
        for cluster in started:
            cluster.stop()


def wait_until(predicate, *, timeout: float, interval: float = 1.0, message: str = "condition") -> None:
    """Poll ``predicate`` until it is true; fail with ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message}")


def wait_for_scrapes_to_finish(*, timeout: float = 120) -> None:
    """Wait until no run is RUNNING and no product is claimed (queued or fetching)."""
    from tracking.models import Product, RunStatus, ScrapeRun

    wait_until(
        lambda: (
            not ScrapeRun.objects.filter(status=RunStatus.RUNNING).exists()
            and not Product.objects.filter(claimed_until__isnull=False).exists()
        ),
        timeout=timeout,
        message="in-flight scrapes to finish",
    )


# --- Additions for the reliability tests (tests/test_reliability_*.py) -------------------------

# Test-only lease overrides, applied inside a qcluster subprocess before it forks its workers:
# ``{environment variable: (module, attribute)}``. Q_TIMEOUT shortens the run lease through the
# settings; these two are module constants, and waiting minutes for them is not worth a test.
TEST_LEASE_OVERRIDES: dict[str, tuple[str, str]] = {
    "TEST_CLAIM_LEASE_SECONDS": ("tracking.services", "CLAIM_LEASE"),
    "TEST_SEND_LEASE_SECONDS": ("notifications.services", "SEND_LEASE"),
}


def qcluster_command(env: dict[str, str]) -> list[str]:
    """``manage.py qcluster``, or this module's bootstrap when the env asks for test leases."""
    if any(name in env for name in TEST_LEASE_OVERRIDES):
        return [sys.executable, "-m", "tests.cluster"]
    return [sys.executable, str(ROOT / "manage.py"), "qcluster"]


def _run_qcluster_with_test_leases() -> None:
    """``python -m tests.cluster``: apply TEST_LEASE_OVERRIDES, then run ``qcluster`` as manage.py
    would. Workers are forked from this process, so they inherit the patched constants."""
    import importlib
    from datetime import timedelta

    import django
    from django.core.management import call_command

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricetracker.settings")
    django.setup()
    for name, (module, attribute) in TEST_LEASE_OVERRIDES.items():
        if name in os.environ:
            setattr(importlib.import_module(module), attribute, timedelta(seconds=int(os.environ[name])))
    call_command("qcluster")


def cluster_stat(cluster: Cluster) -> Stat | None:
    """The django-q2 ``Stat`` this cluster publishes (every guard cycle, through the broker's
    cache or Redis), or None before it has published one. ``.workers`` lists the worker pids."""
    from django_q.status import Stat

    assert cluster.proc is not None
    for stat in Stat.get_all():
        if stat.pid == cluster.proc.pid:
            return stat
    return None


def worker_pids(cluster: Cluster, *, count: int, timeout: float = 60) -> list[int]:
    """The pids of the cluster's ``count`` workers, once it reports them all alive."""
    found: list[int] = []

    def ready() -> bool:
        nonlocal found
        stat = cluster_stat(cluster)
        found = [pid for pid in (stat.workers if stat else []) if Path(f"/proc/{pid}").exists()]
        return len(found) == count

    wait_until(ready, timeout=timeout, interval=0.5, message=f"{count} workers of the cluster")
    return found


def peak_rss_kib(pid: int) -> int:
    """A process's peak resident set size (``VmHWM`` in /proc/<pid>/status), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for pid {pid}")


def pids_connected_to(port: int, pids: list[int]) -> set[int]:
    """Which of ``pids`` hold an established TCP connection to 127.0.0.1:``port`` (a worker in
    the middle of a fetch from the fake store). Reads /proc: no psutil needed."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01":  # 01 = ESTABLISHED
                    inodes.add(fields[9])
    holders: set[int] = set()
    for pid in pids:
        with suppress(FileNotFoundError, ProcessLookupError, PermissionError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with suppress(FileNotFoundError):
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        holders.add(pid)
    return holders


def run_periodic_jobs() -> dict[str, str]:
    """Run every job of ``pricetracker.schedules`` once, here, as the cluster's scheduler does
    every minute. Tests call it every few seconds instead of waiting for the next minute."""
    import pydoc

    from pricetracker.schedules import SCHEDULES

    results = {}
    for spec in SCHEDULES:
        func = pydoc.locate(spec.func)  # how django-q2 finds a schedule's function
        assert callable(func), spec.func
        results[spec.name] = str(func())
    return results


def purge_broker() -> None:
    """Empty the task queue (ORM rows or the Redis list) so no earlier test's task leaks in."""
    from django_q.brokers import get_broker

    get_broker().purge_queue()


def seed_tracked_products(*, count: int, users: Sequence[User], prefix: str, crossing_every: int = 0) -> list[Product]:
    """``count`` products, due now, each tracked by one of ``users`` in turn (60-minute interval).

    Every ``crossing_every``-th tracker gets a target just above the price the fake store serves
    for its product (``default_price``), so the product's first scrape is a crossing; the others
    target 1.00 and never alert. Bulk inserts, so no initial scrape is enqueued: the test decides
    when the burst starts (``services.dispatch_due_products()``).
    """
    from decimal import Decimal

    from django.utils import timezone

    from fakestore.server import default_price
    from scraping.models import get_store
    from tracking.models import AlertRule, Product, Tracker

    assert len(prefix) + len(str(count - 1)) <= 10, "ASINs have 10 characters"
    digits = 10 - len(prefix)
    store = get_store("amazon.com")
    now = timezone.now()
    products = Product.objects.bulk_create(
        Product(store=store, asin=f"{prefix}{i:0{digits}d}", interval_minutes=60, next_scrape_at=now)
        for i in range(count)
    )
    trackers = Tracker.objects.bulk_create(
        Tracker(user=users[i % len(users)], product=product, interval_minutes=60) for i, product in enumerate(products)
    )
    AlertRule.objects.bulk_create(
        AlertRule(
            tracker=tracker,
            kind="below_target",
            repeat="once",
            price=default_price(tracker.product.asin) + 1
            if crossing_every and i % crossing_every == 0
            else Decimal("1.00"),
        )
        for i, tracker in enumerate(trackers)
    )
    return products


if __name__ == "__main__":
    _run_qcluster_with_test_leases()
