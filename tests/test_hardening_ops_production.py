"""The README's production shape works from a fresh database: ``migrate`` is enough.

Production runs ``migrate``, ``collectstatic``, gunicorn and ``qcluster`` (README, "Production
shape"), never ``serve``, which used to be the only thing creating the database cache's table:
registration and sign-in (throttles) then answered 500 and /api/health/ 503 (cluster stats).
``tests/production_smoke.sh`` runs the whole shape in CI; these tests pin the cause.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from tests.cluster import ROOT

pytestmark = pytest.mark.default_db_only

CACHE_TABLE = "cache_table"


def fresh_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment on a new SQLite database and the default database cache."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    for name in ("DATABASE_URL", "CACHE_URL", "Q_REDIS_URL"):
        env.pop(name, None)
    env.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="pricetracker.settings", **extra)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def tables(database: Path) -> set[str]:
    with closing(sqlite3.connect(database)) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_migrate_on_a_fresh_database_creates_the_cache_table_and_again_changes_nothing(tmp_path):
    env = fresh_env(tmp_path)

    first = manage(env, "migrate", "--no-input")
    second = manage(env, "migrate", "--no-input")

    assert first.returncode == 0, first.stderr[-2000:]
    assert CACHE_TABLE in tables(tmp_path / "db.sqlite3")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "No migrations to apply" in second.stdout


def test_the_cache_works_right_after_migrate_in_production_settings(tmp_path):
    env = fresh_env(tmp_path, DEBUG="0", SECRET_KEY="s" * 64, ALLOWED_HOSTS="tracker.example.com")
    assert manage(env, "migrate", "--no-input").returncode == 0

    check = manage(
        env,
        "shell",
        "-c",
        "from django.core.cache import cache; cache.set('k', 'v', 60); print(cache.get('k'))",
    )

    assert check.returncode == 0, check.stderr[-2000:]
    assert check.stdout.splitlines()[-1] == "v"
