"""Scrape throughput of a real qcluster against the fake store, CPU per scrape and worker memory.

Usage (from the repository root)::

    uv run python bench/pipeline_bench.py --workers 4 --latency-ms 500 [--products 400]
        [--padding-kb 1100] [--db sqlite|postgres] [--broker orm|redis] [--repeat 3]
        [--env Q_SAVE_LIMIT=100 --env DB_CONN_MAX_AGE=0]
    uv run python bench/pipeline_bench.py --in-process --latency-ms 0 [--profile tottime]

Each run (``--repeat`` runs, each in a fresh child process) builds a fresh database (SQLite file
under /tmp with the project's settings, or a throwaway PostgreSQL database; ORM broker, or Redis
db 9) with ``--products`` products, each tracked; a permissive store policy (requests_per_minute
1,000,000, concurrency 64, min interval 1 minute); the fake store (``manage.py fakestore``,
``--padding-kb`` pages, ``--latency-ms`` before each page) in its own process; and one
``manage.py qcluster`` subprocess with ``--workers`` workers and the scheduler off. Once the
cluster is idle, the benchmark calls ``tracking.services.dispatch_due_products`` itself (the real
claim and enqueue, instead of waiting for the one-minute schedule), so every product is queued at
once, and waits until every run has finished and the monitor has caught up.

It reports, per run and as medians:

* **throughput** at steady state: runs finished between the 10th and the 90th percentile of the
  ``ScrapeRun.finished_at`` timestamps, divided by the time between them (start-up and the
  draining tail excluded);
* **CPU per scrape** (user + system from /proc, over the whole run, divided by the scrapes) of
  each role: the workers, django-q2's monitor, pusher and guard (together: the cluster), the fake
  store process, the PostgreSQL backends serving the database, and this driver; the cluster's
  idle CPU rate before the dispatch;
* the **cores used by everything else** on the machine during the run (/proc/stat busy time less
  ours): other jobs on a shared machine take CPU the pipeline cannot have;
* **limits**: W/L, and C/c with C = 2 cores for c = the cluster's CPU, for c = all of ours, and
  for the cores the others left free; the throughput as a fraction of each;
* **peak RSS per worker** (VmHWM, the largest worker process), the median run time
  (``created_at`` to ``finished_at``) and fetch + parse time (``duration_ms``).

Every run must end with all products scraped successfully. ``--in-process`` times the task body
alone (``product_scrape``, one after another in this process, no django-q2): wall and CPU time per
scrape, and with ``--profile`` a cProfile over CPU time.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import json
import os
import pstats
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    CLOCK_TICKS,
    ROOT,
    BenchDatabase,
    ProcSample,
    django_setup,
    median,
    prepare_database,
    process_tree,
    read_proc,
    spread,
    stop,
)

CORES = 2
IDLE_SECONDS = 5.0
SAMPLE_SECONDS = 0.5


@dataclass
class RunResult:
    """What one pipeline run measured. CPU figures are CPU seconds per scrape over the whole run."""

    throughput: float  # scrapes per second at steady state
    scrapes: int
    elapsed: float
    cpu: dict[str, float]  # per scrape: worker, monitor, pusher, guard, store, db_server, driver
    others_cores: float  # cores used by everything else on the machine during the run
    idle_cpu_per_second: float  # the whole cluster, idle, before the dispatch
    worker_hwm_kib: int
    run_ms: float  # median ScrapeRun created_at -> finished_at
    fetch_ms: float  # median ScrapeRun.duration_ms (fetch + parse)
    locked: int

    @property
    def cluster_cpu(self) -> float:
        return sum(self.cpu[role] for role in ("worker", "monitor", "pusher", "guard"))

    @property
    def all_cpu(self) -> float:
        return self.cluster_cpu + self.cpu["store"] + self.cpu["db_server"]


def start_fake_store(*, latency_ms: int, padding_kb: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``manage.py fakestore`` on a free loopback port; returns the process and its base URL."""
    command = [sys.executable, str(ROOT / "manage.py"), "fakestore", "--port", "0"]
    command += ["--latency-ms", str(latency_ms), "--padding-kb", str(padding_kb)]
    out = open(log, "wb")  # noqa: SIM115 - inherited by the child, closed with the benchmark
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=out, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    if match is None:
        proc.kill()
        raise RuntimeError(f"the fake store did not start: {line!r}; see {log}")
    return proc, match.group(0)


def start_cluster(*, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "wb")  # noqa: SIM115 - closed when the benchmark process exits
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


class ClusterWatch:
    """Samples the cluster's process tree: CPU per role and the workers' memory high-water mark."""

    def __init__(self, root_pid: int, workers: int) -> None:
        self.root_pid = root_pid
        self.workers = workers
        self.roles: dict[int, str] = {root_pid: "guard"}  # pid -> worker, monitor, pusher, guard
        self.last: dict[int, ProcSample] = {}

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until the sentinel has spawned its workers, monitor and pusher; remember who is who."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            children: dict[int, list[int]] = {}
            for sample in process_tree(self.root_pid):
                children.setdefault(sample.ppid, []).append(sample.pid)
            expected = self.workers + 2
            sentinels = [pid for pid in children.get(self.root_pid, []) if len(children.get(pid, [])) >= expected]
            if sentinels:
                # django-q2 spawns the workers first, then the monitor, then the pusher; the
                # sentinel runs the guard loop (and the scheduler, off here).
                spawned = sorted(children[sentinels[0]])
                self.roles[sentinels[0]] = "guard"
                self.roles[spawned[self.workers]] = "monitor"
                self.roles[spawned[self.workers + 1]] = "pusher"
                self.sample()
                return
            time.sleep(0.2)
        raise RuntimeError("the cluster did not start its workers in time")

    def sample(self) -> None:
        for sample in process_tree(self.root_pid):
            self.last[sample.pid] = sample

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far per role; a recycled worker counts at its last sample."""
        totals = dict.fromkeys(("worker", "monitor", "pusher", "guard"), 0.0)
        for pid, sample in self.last.items():
            totals[self.roles.get(pid, "worker")] += sample.cpu_seconds
        return totals

    def worker_hwm(self) -> int:
        return max((s.hwm_kib for pid, s in self.last.items() if self.roles.get(pid, "worker") == "worker"), default=0)


class ServerWatch:
    """CPU of the PostgreSQL backends serving the benchmark's database (nothing on SQLite)."""

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}

    def sample(self) -> None:
        from django.db import connection

        if connection.vendor != "postgresql":
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            pids = [row[0] for row in cursor.fetchall()]
        for pid in pids:
            sample = read_proc(pid)
            if sample is not None:
                self.first.setdefault(pid, sample.cpu_seconds)
                self.last[pid] = sample.cpu_seconds

    def reset(self) -> None:
        self.sample()
        self.first = dict(self.last)

    def used(self) -> float:
        return sum(self.last[pid] - self.first.get(pid, 0.0) for pid in self.last)


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores; /proc/stat, idle and iowait excluded)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def seed(*, products: int) -> None:
    from django.utils import timezone

    from accounts.models import User
    from scraping.models import get_store
    from tracking.models import AlertRule, Product, Tracker

    store = get_store("amazon.com")
    store.requests_per_minute = 1_000_000
    store.concurrency = 64
    store.min_interval_minutes = 1
    store.save()
    user = User.objects.create_user("bench@example.com", None, max_trackers=products)
    now = timezone.now()
    created = Product.objects.bulk_create(
        [Product(store=store, asin=f"B0{i:08d}", interval_minutes=60, next_scrape_at=now) for i in range(products)]
    )
    trackers = Tracker.objects.bulk_create([Tracker(user=user, product=p, interval_minutes=60) for p in created])
    AlertRule.objects.bulk_create(
        [AlertRule(tracker=t, kind="below_target", price=Decimal("1.00"), repeat="once") for t in trackers]
    )


def wait_for_monitor(timeout: float = 30) -> None:
    """Let the monitor save and acknowledge the last results, so their CPU is counted."""
    from django_q.brokers import get_broker
    from django_q.models import Task

    broker = get_broker()
    deadline = time.monotonic() + timeout
    previous = -1
    while time.monotonic() < deadline:
        saved = Task.objects.count()
        if saved == previous and broker.queue_size() == 0 and not broker.lock_size():
            return
        previous = saved
        time.sleep(1)


def steady_throughput(times: list[float]) -> float:
    """Scrapes per second between the 10th and 90th percentile finish times."""
    low, high = int(len(times) * 0.1), int(len(times) * 0.9)
    if high <= low or times[high] <= times[low]:
        return float("nan")
    return (high - low) / (times[high] - times[low])


def extra_env(args: argparse.Namespace) -> dict[str, str]:
    return dict(item.split("=", 1) for item in args.env)


def one_run(args: argparse.Namespace, run: int) -> RunResult:
    database: BenchDatabase = prepare_database(args.db, args.broker, workers=args.workers, extra_env=extra_env(args))
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    store_proc = cluster = None
    try:
        django_setup()
        from django.db import connections

        from tracking import services
        from tracking.models import RunStatus, ScrapeRun

        seed(products=args.products)
        connections.close_all()
        store_proc, base_url = start_fake_store(
            latency_ms=args.latency_ms, padding_kb=args.padding_kb, log=logs / f"fakestore-{run}.log"
        )
        env = {**os.environ, **database.env, "AMAZON_BASE_URL": base_url, "Q_SCHEDULER": "0"}
        env["PYTHONUNBUFFERED"] = "1"
        cluster_log = logs / f"cluster-{run}.log"
        cluster = start_cluster(env=env, log=cluster_log)
        watch = ClusterWatch(cluster.pid, args.workers)
        watch.wait_ready()
        time.sleep(2)  # workers import the app and connect
        watch.sample()
        idle_start = sum(watch.cpu().values())
        time.sleep(IDLE_SECONDS)
        watch.sample()
        idle_rate = (sum(watch.cpu().values()) - idle_start) / IDLE_SECONDS

        servers = ServerWatch()
        servers.reset()
        store_before = read_proc(store_proc.pid)
        cluster_before = watch.cpu()
        busy_before, driver_before = machine_busy_seconds(), own_cpu_seconds()
        started = time.monotonic()
        report = services.dispatch_due_products(limit=args.products)
        assert report.claimed == args.products, report
        deadline = started + args.timeout
        while True:
            watch.sample()
            servers.sample()
            done = ScrapeRun.objects.exclude(status=RunStatus.RUNNING).count()
            if done >= args.products:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {done} of {args.products} scrapes finished in {args.timeout}s")
            time.sleep(SAMPLE_SECONDS)
        elapsed = time.monotonic() - started
        wait_for_monitor()
        watch.sample()
        servers.sample()
        store_after = read_proc(store_proc.pid)
        busy, driver = machine_busy_seconds() - busy_before, own_cpu_seconds() - driver_before
        measured = time.monotonic() - started

        failed = ScrapeRun.objects.exclude(status=RunStatus.SUCCESS).count()
        assert failed == 0, f"{failed} runs did not succeed"
        assert store_before is not None and store_after is not None
        runs = []
        for created, finished, duration in ScrapeRun.objects.values_list("created_at", "finished_at", "duration_ms"):
            assert finished is not None  # every run succeeded, so every run has finished
            runs.append((created, finished, duration))
        scrapes = len(runs)
        cpu = {role: (used - cluster_before[role]) for role, used in watch.cpu().items()}
        cpu["store"] = store_after.cpu_seconds - store_before.cpu_seconds
        cpu["db_server"] = servers.used()
        cpu["driver"] = driver
        ours = sum(cpu.values())
        return RunResult(
            throughput=steady_throughput(sorted(finished.timestamp() for _, finished, _ in runs)),
            scrapes=scrapes,
            elapsed=elapsed,
            cpu={role: used / scrapes for role, used in cpu.items()},
            others_cores=max(0.0, busy - ours) / measured,
            idle_cpu_per_second=idle_rate,
            worker_hwm_kib=watch.worker_hwm(),
            run_ms=median((finished - created).total_seconds() * 1000 for created, finished, _ in runs),
            fetch_ms=median(duration for _, _, duration in runs),
            locked=cluster_log.read_text(errors="replace").count("database is locked"),
        )
    finally:
        if cluster is not None:
            stop(cluster)
        if store_proc is not None:
            stop(store_proc)
        database.close()


def in_process(args: argparse.Namespace) -> int:
    """The task body alone, one scrape after another in this process: wall and CPU time per scrape."""
    database = prepare_database(args.db, args.broker, workers=1, extra_env=extra_env(args))
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    store_proc, base_url = start_fake_store(
        latency_ms=args.latency_ms, padding_kb=args.padding_kb, log=logs / "fakestore-in-process.log"
    )
    os.environ["AMAZON_BASE_URL"] = base_url
    try:
        django_setup()
        from unittest import mock

        from tracking import services
        from tracking.models import Product

        seed(products=args.products)
        with mock.patch("tracking.services.queue.enqueue_scrape", lambda **kwargs: None):
            services.dispatch_due_products(limit=args.products)
        claims = []
        for pk, token in Product.objects.order_by("pk").values_list("pk", "claim_token"):
            assert token is not None, f"product {pk} was not claimed"
            claims.append((pk, token))
        warm_up = min(10, len(claims) // 10)
        for pk, token in claims[:warm_up]:
            services.product_scrape(product_id=pk, claim_token=token)
        # CPU time, not wall time: what a scrape costs the machine, whatever else is running on it.
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        wall, cpu = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        for pk, token in claims[warm_up:]:
            run = services.product_scrape(product_id=pk, claim_token=token)
            assert run is not None and run.status == "SUCCESS", run
        if profiler is not None:
            profiler.disable()
        count = len(claims) - warm_up
        wall, cpu = (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count
        print(
            f"{args.db}, in process, L={args.latency_ms} ms, {args.padding_kb} KB pages, {count} scrapes: "
            f"{wall * 1000:.1f} ms wall, {cpu * 1000:.1f} ms CPU per scrape (task body only, no django-q2)"
        )
        if profiler is not None:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(args.profile).print_stats(40)
            print(out.getvalue())
    finally:
        stop(store_proc)
        database.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--latency-ms", type=int, default=500)
    parser.add_argument("--padding-kb", type=int, default=1100)
    parser.add_argument("--products", type=int, default=400)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--broker", choices=("orm", "redis"), default="orm")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra setting for every process, e.g. Q_SAVE_LIMIT=100 or DB_CONN_MAX_AGE=0 (repeatable)",
    )
    default_logs = Path(tempfile.gettempdir()) / "pricetracker-bench-logs"
    parser.add_argument("--logs", default=str(default_logs), help="cluster and fake store logs")
    parser.add_argument("--in-process", action="store_true", help="time the task body alone, in this process")
    parser.add_argument("--profile", choices=("cumulative", "tottime"), help="with --in-process: cProfile, sorted")
    parser.add_argument("--one-run", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.in_process:
        return in_process(args)

    if args.one_run is not None:
        # A child run: Django is set up once per process, so every run gets its own process.
        print(json.dumps(dataclasses.asdict(one_run(args, args.one_run))))
        return 0
    results: list[RunResult] = []
    for run in range(args.repeat):
        child = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--one-run", str(run)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            print(child.stdout, child.stderr, sep="\n", file=sys.stderr)
            return child.returncode
        result = RunResult(**json.loads(child.stdout.strip().splitlines()[-1]))
        results.append(result)
        print(f"run {run + 1}: {describe(result)}", flush=True)
    summarise(args, results)
    return 0


def describe(result: RunResult) -> str:
    cpu = {role: f"{seconds * 1000:.1f}" for role, seconds in result.cpu.items()}
    return (
        f"{result.throughput:.2f} scrapes/s; ms CPU per scrape: cluster {result.cluster_cpu * 1000:.1f} "
        f"(workers {cpu['worker']}, monitor {cpu['monitor']}, pusher {cpu['pusher']}, guard {cpu['guard']}), "
        f"fake store {cpu['store']}, db server {cpu['db_server']}, driver {cpu['driver']}; "
        f"others on the machine {result.others_cores:.2f} cores; cluster idle {result.idle_cpu_per_second * 1000:.0f} "
        f"ms CPU/s; run {result.run_ms:.0f} ms (fetch+parse {result.fetch_ms:.0f} ms); worker peak RSS "
        f"{result.worker_hwm_kib / 1024:.1f} MiB; {result.scrapes} scrapes in {result.elapsed:.1f} s; "
        f"locked {result.locked}"
    )


def summarise(args: argparse.Namespace, results: list[RunResult]) -> None:
    throughput = median(r.throughput for r in results)
    cluster_cpu = median(r.cluster_cpu for r in results)
    all_cpu = median(r.all_cpu for r in results)
    free_cores = median(CORES - r.others_cores for r in results)
    latency_limit = args.workers / (args.latency_ms / 1000) if args.latency_ms else float("inf")
    limits = {
        "C/c (c = cluster CPU)": CORES / cluster_cpu,
        "C/c (c = cluster + fake store + db server)": CORES / all_cpu,
        "free cores/c (others' load removed, c = all)": free_cores / all_cpu,
    }
    print(
        f"\n{args.db} + {args.broker}, W={args.workers}, L={args.latency_ms} ms, {args.padding_kb} KB pages, "
        f"{args.products} products, {len(results)} run(s)"
    )
    print(f"throughput: median {throughput:.2f} scrapes/s (range {spread(r.throughput for r in results)})")
    for role in results[0].cpu:
        print(f"  CPU per scrape, {role:9}: {median(r.cpu[role] for r in results) * 1000:6.1f} ms")
    print(f"  CPU per scrape, cluster  : {cluster_cpu * 1000:6.1f} ms; all of ours {all_cpu * 1000:.1f} ms")
    print(f"  cores used by others during the run: median {median(r.others_cores for r in results):.2f}")
    print(f"  peak RSS per worker: median {median(r.worker_hwm_kib for r in results) / 1024:.1f} MiB")
    print(f"limit W/L = {latency_limit:.2f}/s")
    for name, value in limits.items():
        bound = min(latency_limit, value)
        which = "W/L" if latency_limit <= value else "CPU"
        print(f"limit {name} = {value:.2f}/s -> min {bound:.2f}/s ({which} binds): {throughput / bound:.2f} of it")


if __name__ == "__main__":
    raise SystemExit(main())
