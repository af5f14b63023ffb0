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
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from django.db import connection

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
            [sys.executable, str(ROOT / "manage.py"), "qcluster"],
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
