"""``manage.py serve --demo`` end to end: a real web server, cluster and fake store, then Ctrl-C.

Runs the demo as a subprocess on a free port with a temporary DATA_DIR, reads its own SQLite
file directly until scrapes, prices and an alert exist, checks health and metrics over HTTP,
then sends SIGINT and expects a clean stop with no process left behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import closing, suppress
from pathlib import Path

import pytest

from tests.cluster import ROOT, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.default_db_only]

# Start-up (migrate a fresh database, gunicorn, qcluster) takes ~10-20 s here; the first checks
# are queued before the cluster starts, and one demo product is below target from the start.
START_TIMEOUT = 120
STOP_TIMEOUT = 30


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_with(marker: str) -> list[int]:
    """Pids of live processes whose environment contains ``marker`` (the demo's DATA_DIR)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with suppress(OSError):
            if marker.encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def count(database: Path, table: str, where: str = "1=1") -> int:
    if not database.exists():
        return 0
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as conn:
        try:
            return conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}").fetchone()[0]  # noqa: S608
        except sqlite3.OperationalError:  # not migrated yet
            return 0


@pytest.fixture
def demo(tmp_path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path, Path]]:
    """The running demo process, its port, its DATA_DIR and its output file; nothing survives it."""
    if not Path("/proc/self/environ").exists():
        pytest.skip("needs /proc to check for leftover processes")
    port = free_port()
    data_dir = tmp_path / "data"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env.pop("DATABASE_URL", None)
    env.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="pricetracker.settings", PYTHONUNBUFFERED="1")
    log_path = tmp_path / "demo.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "serve", "--demo", "--port", str(port), "--web-workers", "1"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc, port, data_dir, log_path
    finally:
        # Only if the test failed half-way: end whatever the demo started, found by its DATA_DIR.
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for pid in processes_with(f"DATA_DIR={data_dir}"):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_demo_scrapes_records_prices_and_alerts_then_stops_cleanly_on_ctrl_c(demo):
    proc, port, data_dir, log_path = demo
    database = data_dir / "demo.sqlite3"

    def output() -> str:
        return log_path.read_text(errors="replace")

    def demo_did_its_job() -> bool:
        assert proc.poll() is None, output()[-3000:]
        return (
            count(database, "scrape_runs", "status <> 'RUNNING'") > 0
            and count(database, "price_history") > 0
            and count(database, "notifications_sent") > 0
        )

    wait_until(demo_did_its_job, timeout=START_TIMEOUT, message="demo scrapes, prices and an alert")

    text = output()
    assert "Demo user:  demo@example.com / " in text
    assert "Admin user: admin@example.com / " in text
    assert f"http://127.0.0.1:{port}/api/docs/" in text
    assert f"http://127.0.0.1:{port}/admin/" in text
    # Never the user's database: the real one was not even created in this DATA_DIR.
    assert not (data_dir / "db.sqlite3").exists()
    status, body = get(f"http://127.0.0.1:{port}/api/health/?token=one-time-secret-in-a-link")
    assert status == 200, body
    assert json.loads(body)["checks"]["database"]["ok"] is True
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert b'pricetracker_scrape_runs{status="SUCCESS",store="amazon.com",window="1h"}' in body
    # The alert email went through the console mailer.
    wait_until(lambda: "Subject: Price drop:" in output(), timeout=60, message="the alert email on the console")

    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=STOP_TIMEOUT)

    assert proc.returncode == 0, output()[-3000:]
    assert output().rstrip().endswith("Stopped.")
    assert processes_with(f"DATA_DIR={data_dir}") == []
    assert "Traceback" not in output(), output()[-3000:]
    # The access log names the path, never the query string (confirmation links carry tokens).
    assert '"GET /api/health/ HTTP/1.1" 200' in output()
    assert "one-time-secret-in-a-link" not in output()
