"""Shared plumbing for the benchmarks: a throwaway database and broker, Django set-up, /proc readings.

Benchmarks are not tests: they build their own database (a fresh SQLite file under /tmp, or a
PostgreSQL database they create and drop), point the settings at it through the environment
before Django loads, and print what they measured. Production-like settings: ``DEBUG=0`` (no query
log), an explicit ``SECRET_KEY`` (shared with the qcluster subprocesses, which must verify the
signed task packages).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
REDIS_DB = 9
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BENCH_SECRET_KEY = "bench-only-secret-key-" + "x" * 48


@dataclass
class BenchDatabase:
    """Where a benchmark's data lives; :meth:`close` removes it all."""

    engine: str  # "sqlite" or "postgres"
    broker: str  # "orm" or "redis"
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    pg_name: str | None = None

    def close(self) -> None:
        from django.db import connections

        connections.close_all()
        if self.pg_name is not None:
            _pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
        if self.broker == "redis":
            _redis_flush()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def prepare_database(
    engine: str, broker: str, *, workers: int = 4, extra_env: dict[str, str] | None = None
) -> BenchDatabase:
    """Create an empty database and set the environment for it; call before :func:`django_setup`.

    ``extra_env`` (e.g. ``Q_SAVE_LIMIT=100`` or ``DB_CONN_MAX_AGE=0``) goes to this process and
    the subprocesses.
    """
    extra_env = dict(extra_env or {})
    data_dir = Path(tempfile.mkdtemp(prefix="pricetracker-bench-"))
    env = {
        "DATA_DIR": str(data_dir),
        "DEBUG": "0",
        "SECRET_KEY": BENCH_SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "warning",
        "Q_WORKERS": str(workers),
        "Q_SYNC": "0",
        "DJANGO_SETTINGS_MODULE": "pricetracker.settings",
    }
    pg_name = None
    if engine == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{data_dir / 'bench.sqlite3'}"
    elif engine == "postgres":
        pg_name = f"bench_{os.getpid()}"
        _pg_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        _pg_admin(f'CREATE DATABASE "{pg_name}"')
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{pg_name}"
    else:
        raise ValueError(f"unknown engine {engine!r}")
    if broker == "redis":
        env["Q_REDIS_URL"] = f"redis://127.0.0.1:6379/{REDIS_DB}"
        _redis_flush()
    elif broker != "orm":
        raise ValueError(f"unknown broker {broker!r}")
    env.update(extra_env)
    os.environ.pop("Q_REDIS_URL", None)
    os.environ.update(env)
    return BenchDatabase(engine=engine, broker=broker, data_dir=data_dir, env=env, pg_name=pg_name)


def django_setup(*, migrate: bool = True) -> None:
    """Load Django with the environment set by :func:`prepare_database`; migrate the empty database."""
    import django
    from django.core.management import call_command

    django.setup()
    if migrate:
        call_command("migrate", verbosity=0)


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql)


def _redis_flush() -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()


# --- /proc readings ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcSample:
    """One process: its own CPU seconds (user + system, all threads) and memory high-water mark."""

    pid: int
    ppid: int
    cpu_seconds: float
    hwm_kib: int
    rss_kib: int
    title: str


def read_proc(pid: int) -> ProcSample | None:
    """Read one process from /proc; None if it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Fields after the command name, which is in parentheses and may contain spaces.
    fields = stat[stat.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    # Own time only: a reaped child's time moves into its parent's cutime, and callers that
    # track every process of a tree would count it twice.
    utime, stime = int(fields[11]), int(fields[12])
    memory = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            memory[key] = int(value.split()[0])
    return ProcSample(
        pid=pid,
        ppid=ppid,
        cpu_seconds=(utime + stime) / CLOCK_TICKS,
        hwm_kib=memory.get("VmHWM", 0),
        rss_kib=memory.get("VmRSS", 0),
        title=cmdline.strip(),
    )


def process_tree(root_pid: int) -> list[ProcSample]:
    """``root_pid`` and all its descendants (one scan of /proc)."""
    samples: dict[int, ProcSample] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            sample = read_proc(int(entry.name))
            if sample is not None:
                samples[sample.pid] = sample
    tree: list[ProcSample] = []
    frontier = [root_pid]
    while frontier:
        pid = frontier.pop()
        if pid in samples:
            tree.append(samples[pid])
            frontier.extend(s.pid for s in samples.values() if s.ppid == pid)
    return tree


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the main process only (docs/decisions.md: a group SIGTERM can hang qcluster)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)


def median(values: Iterable[float]) -> float:
    """The median, or NaN for no values."""
    data = list(values)
    return statistics.median(data) if data else float("nan")


def spread(values: Iterable[float]) -> str:
    """``min-max`` of the values, for noting the noise beside a median."""
    data = list(values)
    return f"{min(data):.1f}-{max(data):.1f}" if data else "-"
