"""The best any pool of W worker processes can do when each job waits L ms and then computes c ms.

No Django, no database, no django-q2: each of ``--workers`` processes loops "sleep L, burn c ms of
its own CPU time" for ``--seconds``. It prints the jobs per second and that as a fraction of the
CPU limit C/c (C = the machine's cores), which is the ceiling the scrape pipeline is measured
against in BENCHMARKS.md: with W = 4, L = 20 ms and c close to L on 2 cores, even this ideal pool
leaves cores idle whenever fewer than C workers are computing (all the others waiting out their L).

Usage (from the repository root)::

    uv run python bench/pool_ceiling.py --workers 4 --latency-ms 20 --cpu-ms 22 [--seconds 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time
from multiprocessing.queues import Queue


def _worker(latency_s: float, cpu_s: float, seconds: float, out: Queue[tuple[int, float]]) -> None:
    end = time.monotonic() + seconds
    jobs = 0
    while time.monotonic() < end:
        time.sleep(latency_s)
        started = time.process_time()
        while time.process_time() - started < cpu_s:
            pass
        jobs += 1
    out.put((jobs, time.process_time()))


def one_run(*, workers: int, latency_ms: float, cpu_ms: float, seconds: float) -> tuple[float, float]:
    """Run the pool once; return (jobs per second, cores used)."""
    out: Queue[tuple[int, float]] = mp.Queue()
    procs = [mp.Process(target=_worker, args=(latency_ms / 1000, cpu_ms / 1000, seconds, out)) for _ in range(workers)]
    started = time.monotonic()
    for proc in procs:
        proc.start()
    results = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    wall = time.monotonic() - started
    return sum(jobs for jobs, _ in results) / wall, sum(cpu for _, cpu in results) / wall


def main() -> int:
    """Print each run and the median fraction of min(W/L, C/c) reached."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--cpu-ms", type=float, default=22)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    limit = min(args.workers * 1000 / args.latency_ms, cores * 1000 / args.cpu_ms)
    binds = "W/L" if args.workers * 1000 / args.latency_ms <= cores * 1000 / args.cpu_ms else "CPU"
    shares = []
    for run in range(1, args.repeat + 1):
        rate, used = one_run(workers=args.workers, latency_ms=args.latency_ms, cpu_ms=args.cpu_ms, seconds=args.seconds)
        shares.append(rate / limit)
        print(f"run {run}: {rate:.1f} jobs/s, {used:.2f} of {cores} cores used, {rate / limit:.2f} of the limit")
    print(
        f"W={args.workers}, L={args.latency_ms:g} ms, c={args.cpu_ms:g} ms, C={cores}: limit {limit:.1f}/s "
        f"({binds} binds); median {statistics.median(shares):.2f} of it"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
