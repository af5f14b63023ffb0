"""Wall time of one dispatcher tick, ``tracking.services.dispatch_due_products()``.

Usage (from the repository root)::

    uv run python bench/dispatch_bench.py [--db sqlite|postgres] [--broker orm|redis]
        [--products 100000] [--due 1000] [--repeat 7] [--profile]

Builds a fresh database (SQLite file under /tmp with the project's settings: WAL, IMMEDIATE; or a
throwaway PostgreSQL database), with ``--products`` products, each tracked by one enabled tracker,
of which ``--due`` are due now; the store allows 1,000 requests a minute. Then, ``--repeat``
times, it releases every claim, empties the queue and times one tick in two ways, alternating:

* **full**: the real tick, including the ``on_commit`` enqueue of one django-q2 task per claim
  (ORM broker: one ``OrmQ`` row each; Redis broker: one list push each);
* **claim**: the same tick with ``enqueue_scrape`` patched to a no-op (the queries and the claim).

It checks every tick claimed ``--due`` products (and, for the full tick, that the broker holds
that many tasks) and prints the median and range of each. ``--profile`` prints a cProfile of one
full tick. The database is removed at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BenchDatabase, django_setup, median, prepare_database, spread

TRACKERS_PER_USER = 100
BATCH = 5000


def seed(*, products: int, due: int) -> None:
    """``products`` products, one enabled tracker each; ``due`` of them due (spread over the last hour)."""
    from django.utils import timezone

    from accounts.models import User
    from scraping.models import get_store
    from tracking.models import AlertRule, Product, Tracker

    store = get_store("amazon.com")
    store.requests_per_minute = 1000
    store.min_interval_minutes = 60
    store.save()
    now = timezone.now()
    rng = random.Random(7)
    due_indexes = set(rng.sample(range(products), due))
    users = User.objects.bulk_create(
        [
            User(email=f"user{i}@example.com", password="!", max_trackers=TRACKERS_PER_USER)  # noqa: S106
            for i in range((products + TRACKERS_PER_USER - 1) // TRACKERS_PER_USER)
        ],
        batch_size=BATCH,
    )
    for start in range(0, products, BATCH):
        rows = []
        for i in range(start, min(start + BATCH, products)):
            offset = -rng.uniform(1, 3600) if i in due_indexes else rng.uniform(60, 6 * 3600)
            rows.append(
                Product(
                    store=store,
                    asin=f"B{i:09d}",
                    interval_minutes=360,
                    next_scrape_at=now + timedelta(seconds=offset),
                    last_scraped_at=now - timedelta(hours=6),
                )
            )
        created = Product.objects.bulk_create(rows, batch_size=BATCH)
        trackers = Tracker.objects.bulk_create(
            [
                Tracker(user=users[(start + k) // TRACKERS_PER_USER], product=product, interval_minutes=360)
                for k, product in enumerate(created)
            ],
            batch_size=BATCH,
        )
        AlertRule.objects.bulk_create(
            [
                AlertRule(tracker=tracker, kind="below_target", price=Decimal("10.00"), repeat="once")
                for tracker in trackers
            ],
            batch_size=BATCH,
        )


def queued_tasks() -> int:
    from django_q.brokers import get_broker

    return get_broker().queue_size()


def reset() -> None:
    """Release every claim and empty the queue, so the next tick sees the same due products."""
    from django_q.brokers import get_broker

    from tracking.models import Product

    Product.objects.filter(claimed_until__isnull=False).update(claimed_until=None, claim_token=None)
    get_broker().purge_queue()


def timed_tick(patch: Callable[[], AbstractContextManager[object]], *, due: int, check_queue: bool) -> float:
    from tracking import services

    reset()
    with patch():
        started = time.perf_counter()
        report = services.dispatch_due_products()
        elapsed = (time.perf_counter() - started) * 1000
    assert report.claimed == due, report
    if check_queue:
        assert queued_tasks() == due, queued_tasks()
    return elapsed


def profile_tick(*, due: int) -> str:
    from tracking import services

    reset()
    profiler = cProfile.Profile()
    profiler.enable()
    report = services.dispatch_due_products()
    profiler.disable()
    assert report.claimed == due, report
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--broker", choices=("orm", "redis"), default="orm")
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one full tick")
    args = parser.parse_args()

    database: BenchDatabase = prepare_database(args.db, args.broker)
    try:
        django_setup()
        from django.db import connection

        started = time.perf_counter()
        seed(products=args.products, due=args.due)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        print(
            f"{args.db} + {args.broker} broker: {args.products} products, {args.due} due; "
            f"seeded in {time.perf_counter() - started:.1f}s"
        )
        timed_tick(nullcontext, due=args.due, check_queue=True)  # warm-up: caches, prepared plans

        def no_enqueue() -> AbstractContextManager[object]:
            return mock.patch("tracking.services.queue.enqueue_scrape", lambda **kwargs: None)

        full: list[float] = []
        claim: list[float] = []
        for _ in range(args.repeat):
            full.append(timed_tick(nullcontext, due=args.due, check_queue=True))
            claim.append(timed_tick(no_enqueue, due=args.due, check_queue=False))
        enqueue = [f - c for f, c in zip(full, claim, strict=True)]
        print(f"full tick (claim + enqueue)  median {median(full):7.1f} ms  range {spread(full)}")
        print(f"claim only (enqueue no-op)   median {median(claim):7.1f} ms  range {spread(claim)}")
        print(f"enqueue share (full - claim) median {median(enqueue):7.1f} ms")
        if args.profile:
            print(profile_tick(due=args.due))
    finally:
        database.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
