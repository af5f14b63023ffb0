"""API latency and throughput under a real WSGI server while a cluster scrapes at the same time.

Usage (from the repository root)::

    uv run python bench/load_api.py [--db sqlite|postgres] [--users 4] [--trackers 1000]
        [--points 10000] [--web-workers 3] [--concurrency 1,4] [--requests 600] [--max-seconds 60]

What runs, each in its own process, all on loopback:

* **gunicorn** (``--web-workers`` sync workers, the production WSGI entry point) on a fresh
  database: a SQLite file under /tmp with the project's settings (WAL, IMMEDIATE) or a throwaway
  PostgreSQL database; ``DEBUG=0``;
* **one qcluster** (2 workers) scraping the fake store the whole time: every product is due
  every minute and the store allows 300 requests a minute, so the dispatcher keeps ~5 scrapes a
  second going (writes to the same database the API reads);
* **the fake store** (``manage.py fakestore``, 50 ms latency);
* **the load generator**: this process, ``--concurrency`` client threads, each with its own
  keep-alive HTTP connection and a random user's JWT, closed loop (next request when the
  previous answer has been read in full).

Data: ``--users`` users with ``--trackers`` trackers each (on the same shared products, each
with a current price), one product with ``--points`` price points whose tracker every user has.
Endpoints, per concurrency level, ``--requests`` requests each (or ``--max-seconds``):

* ``list``: ``GET /api/trackers/?page=<random>`` (50 trackers a page, product embedded);
* ``history``: ``GET /api/trackers/<id>/history/?page=<random>`` over the ``--points`` points;
* ``stats``: ``GET /api/trackers/<id>/stats/`` (min/max/avg/count, all-time low, current).

It prints p50/p95/p99/max latency, requests per second, the web workers' CPU per request, the
scrapes the cluster finished meanwhile, and any non-200 answer (there must be none); it exits 1 on
an error or a "database is locked" in the logs. The database is removed at the end, and the logs
too unless the run failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, BenchDatabase, django_setup, prepare_database, process_tree, stop

FAKE_STORE_LATENCY_MS = 50
CLUSTER_WORKERS = 2
SCRAPES_PER_MINUTE = 300
ENDPOINTS = ("list", "history", "stats")
PAGE_SIZE = 50  # REST_FRAMEWORK["PAGE_SIZE"]
WARM_UP_REQUESTS = 30


# --- Processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(command: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own session with its output in ``log``."""
    out = open(log, "wb")  # noqa: SIM115 - inherited by the child, closed when this process exits
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def start_fake_store(*, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``manage.py fakestore`` on a free loopback port; returns the process and its base URL."""
    port = free_port()
    command = [sys.executable, str(ROOT / "manage.py"), "fakestore", "--port", str(port)]
    proc = spawn([*command, "--latency-ms", str(FAKE_STORE_LATENCY_MS)], env=env, log=log)
    wait_for_port(port, proc, log)
    return proc, f"http://127.0.0.1:{port}"


def start_gunicorn(*, env: dict[str, str], workers: int, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """gunicorn with the production WSGI entry point, no access log (it would cost CPU)."""
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "pricetracker.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--no-control-socket",
    ]  # fmt: skip
    proc = spawn(command, env=env, log=log)
    wait_for_port(port, proc, log)
    return proc, port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}); see {log}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f}s; see {log}")


def cpu_seconds(root_pid: int) -> float:
    """CPU seconds used so far by a process tree (gunicorn's master and workers)."""
    return sum(sample.cpu_seconds for sample in process_tree(root_pid))


# --- Data --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    tokens: list[str]  # one JWT access token per user
    history_tracker_ids: list[int]  # per user: the tracker of the product with the long history


def seed(*, users: int, trackers: int, points: int) -> Seeded:
    """Users with ``trackers`` trackers each on shared products; product 0 has ``points`` points."""
    from django.utils import timezone
    from rest_framework_simplejwt.tokens import RefreshToken

    from accounts.models import User
    from fakestore.server import default_price
    from scraping.models import get_store
    from tracking.models import AlertRule, PricePoint, Product, RunStatus, ScrapeRun, Tracker

    store = get_store("amazon.com")
    store.min_interval_minutes = 1
    store.requests_per_minute = SCRAPES_PER_MINUTE
    store.concurrency = CLUSTER_WORKERS
    store.save()
    now = timezone.now()
    products = Product.objects.bulk_create(
        Product(
            store=store,
            asin=f"B0LOAD{i:04d}",
            title=f"FakeBrand Widget {i}, Stainless Steel, 2-Pack",
            current_price=default_price(f"B0LOAD{i:04d}"),
            currency="USD",
            availability="in_stock",
            interval_minutes=1,
            next_scrape_at=now,
            last_scraped_at=now,
            last_success_at=now,
            last_scrape_status=RunStatus.SUCCESS,
        )
        for i in range(trackers)
    )
    history = products[0]
    runs = ScrapeRun.objects.bulk_create(
        (ScrapeRun(product=history, status=RunStatus.SUCCESS, finished_at=now) for _ in range(points)),
        batch_size=2000,
    )
    PricePoint.objects.bulk_create(
        (
            PricePoint(
                product=history,
                run=run,
                price=Decimal(100 + (i * 37) % 50),
                currency="USD",
                availability="in_stock",
                observed_at=now - timedelta(hours=points - i),
            )
            for i, run in enumerate(runs)
        ),
        batch_size=2000,
    )
    tokens: list[str] = []
    history_ids: list[int] = []
    for u in range(users):
        user = User.objects.create_user(
            f"load{u}@example.com", "load-password-123", email_verified_at=now, max_trackers=trackers
        )
        created = Tracker.objects.bulk_create(
            (Tracker(user=user, product=product, interval_minutes=1) for product in products), batch_size=2000
        )
        AlertRule.objects.bulk_create(
            (
                AlertRule(tracker=tracker, kind="below_target", price=Decimal("1.00"), repeat="once")
                for tracker in created
            ),
            batch_size=2000,
        )
        history_ids.append(Tracker.objects.get(user=user, product=history).pk)
        tokens.append(str(RefreshToken.for_user(user).access_token))
    return Seeded(tokens=tokens, history_tracker_ids=history_ids)


# --- Load --------------------------------------------------------------------------------------


@dataclass
class Phase:
    """One endpoint at one concurrency level."""

    endpoint: str
    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    web_cpu_seconds: float = 0.0
    scrapes: int = 0

    def percentile(self, p: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, round(p / 100 * (len(data) - 1)))] if data else float("nan")

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.elapsed if self.elapsed else 0.0


def path_for(endpoint: str, seeded: Seeded, user: int, rng: random.Random, *, trackers: int, points: int) -> str:
    tracker = seeded.history_tracker_ids[user]
    if endpoint == "list":
        return f"/api/trackers/?page={rng.randint(1, -(-trackers // PAGE_SIZE))}"
    if endpoint == "history":
        return f"/api/trackers/{tracker}/history/?page={rng.randint(1, -(-points // PAGE_SIZE))}"
    return f"/api/trackers/{tracker}/stats/"


def client(
    port: int, seeded: Seeded, phase: Phase, *, count: int, stop_at: float, seed: int, trackers: int, points: int
) -> None:
    """One closed-loop client thread on its own keep-alive connection."""
    rng = random.Random(seed)
    user = seed % len(seeded.tokens)
    headers = {"Authorization": f"Bearer {seeded.tokens[user]}", "Accept": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    for _ in range(count):
        if time.monotonic() > stop_at:
            break
        path = path_for(phase.endpoint, seeded, user, rng, trackers=trackers, points=points)
        started = time.perf_counter()
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            phase.errors.append(f"{path}: {exc!r}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        latencies.append((time.perf_counter() - started) * 1000)
        statuses[response.status] = statuses.get(response.status, 0) + 1
        if response.status != 200:
            phase.errors.append(f"{path}: {response.status} {body[:200]!r}")
    conn.close()
    # list.extend and dict updates under the GIL; one writer per key is not needed for counting.
    phase.latencies_ms.extend(latencies)
    for status, n in statuses.items():
        phase.statuses[status] = phase.statuses.get(status, 0) + n


def run_phase(
    phase: Phase, *, port: int, seeded: Seeded, web_pid: int, requests: int, max_seconds: float, **shape: int
) -> None:
    """Run ``requests`` requests spread over ``phase.concurrency`` clients, after a short warm-up."""
    from tracking.models import ScrapeRun

    warm = Phase(phase.endpoint, 1)
    client(port, seeded, warm, count=WARM_UP_REQUESTS, stop_at=time.monotonic() + 30, seed=999, **shape)
    per_client = -(-requests // phase.concurrency)
    scrapes_before = ScrapeRun.objects.exclude(finished_at=None).count()
    cpu_before = cpu_seconds(web_pid)
    started = time.monotonic()
    threads = [
        threading.Thread(
            target=client,
            args=(port, seeded, phase),
            kwargs={"count": per_client, "stop_at": started + max_seconds, "seed": i, **shape},
        )
        for i in range(phase.concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.elapsed = time.monotonic() - started
    phase.web_cpu_seconds = cpu_seconds(web_pid) - cpu_before
    phase.scrapes = ScrapeRun.objects.exclude(finished_at=None).count() - scrapes_before


def report(phases: list[Phase], args: argparse.Namespace) -> None:
    print(
        f"\n{args.db}: {args.users} users x {args.trackers} trackers, history of {args.points} points, "
        f"gunicorn {args.web_workers} sync workers, cluster {CLUSTER_WORKERS} workers scraping\n"
    )
    columns = ["endpoint", "clients", "requests", "p50 ms", "p95 ms", "p99 ms", "max ms", "req/s"]
    columns += ["web CPU ms/req", "scrapes meanwhile"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for phase in phases:
        n = len(phase.latencies_ms)
        print(
            f"| {phase.endpoint} | {phase.concurrency} | {n} | {phase.percentile(50):.1f} | {phase.percentile(95):.1f} "
            f"| {phase.percentile(99):.1f} | {max(phase.latencies_ms, default=float('nan')):.1f} | {phase.rps:.0f} "
            f"| {phase.web_cpu_seconds * 1000 / max(n, 1):.1f} | {phase.scrapes} |"
        )
    bad = [(phase.endpoint, phase.concurrency, phase.statuses, phase.errors[:3]) for phase in phases if phase.errors]
    if bad:
        print("\nERRORS:", json.dumps(bad, default=str, indent=1))


# --- Main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--trackers", type=int, default=1000)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--concurrency", default="1,4", help="Comma-separated client counts.")
    parser.add_argument("--requests", type=int, default=600, help="Requests per endpoint and concurrency level.")
    parser.add_argument("--max-seconds", type=float, default=60, help="Upper bound of one phase.")
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",")]

    database: BenchDatabase = prepare_database(args.db, "orm", workers=CLUSTER_WORKERS)
    # Outside the database directory, so a failed run's logs survive it (removed after a clean run).
    logs = Path(tempfile.mkdtemp(prefix="pricetracker-load-logs-"))
    children: list[subprocess.Popen[bytes]] = []
    clean = False
    try:
        django_setup()
        from django.core.management import call_command

        call_command("createcachetable", verbosity=0)  # cluster stats and health read the cache
        seed_started = time.monotonic()
        seeded = seed(users=args.users, trackers=args.trackers, points=args.points)
        print(f"seeded in {time.monotonic() - seed_started:.1f}s")
        env = {
            **os.environ,
            **database.env,
            "SECURE_SSL_REDIRECT": "0",  # plain HTTP on loopback
            "JWT_ACCESS_MINUTES": "240",
        }
        store_proc, store_url = start_fake_store(env=env, log=logs / "fakestore.log")
        children.append(store_proc)
        env["AMAZON_BASE_URL"] = store_url
        cluster = spawn([sys.executable, str(ROOT / "manage.py"), "qcluster"], env=env, log=logs / "cluster.log")
        children.append(cluster)
        web, port = start_gunicorn(env=env, workers=args.web_workers, log=logs / "gunicorn.log")
        children.append(web)

        from tracking.services import dispatch_due_products

        time.sleep(3)  # let the cluster's workers start before the first tick
        dispatch_due_products()  # the first tick now; the schedule runs it every minute after
        shape = {"trackers": args.trackers, "points": args.points}
        phases: list[Phase] = []
        for level in levels:
            for endpoint in ENDPOINTS:
                phase = Phase(endpoint, level)
                run_phase(
                    phase,
                    port=port,
                    seeded=seeded,
                    web_pid=web.pid,
                    requests=args.requests,
                    max_seconds=args.max_seconds,
                    **shape,
                )
                phases.append(phase)
                print(
                    f"  {endpoint:8} x{level}: p50 {phase.percentile(50):.1f} ms, "
                    f"p95 {phase.percentile(95):.1f} ms, {phase.rps:.0f} req/s",
                    flush=True,
                )
        report(phases, args)
        from django_q.models import Task

        # The once-a-minute dispatcher kept the cluster busy after the first tick.
        ticks = Task.objects.filter(func="tracking.tasks.dispatch_due_products").order_by("started")
        print("\nscheduled dispatcher ticks:", [f"{task.started:%H:%M:%S} {task.result}" for task in ticks])
        cluster_log = (logs / "cluster.log").read_text(errors="replace")
        locked = len(re.findall("database is locked", cluster_log + (logs / "gunicorn.log").read_text()))
        print(f"'database is locked' in the logs: {locked}")
        clean = not locked and not any(phase.errors for phase in phases)
        return 0 if clean else 1
    finally:
        for proc in reversed(children):
            stop(proc)
        database.close()
        if clean:
            shutil.rmtree(logs, ignore_errors=True)
        else:
            print(f"logs kept in {logs}")


if __name__ == "__main__":
    sys.exit(main())
