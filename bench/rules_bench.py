"""The cost of evaluating alert rules in a scrape's write transaction (issue 13).

Usage (from the repository root)::

    uv run python bench/rules_bench.py [--db sqlite|postgres] [--trackers 50] [--history 2000] [--repeat 30]

One product tracked by ``--trackers`` users, with ``--history`` price points over the last 90
days (so ``new_low`` has a real history to search). Two rule sets are compared on the same
product, each tracker holding:

- ``one``: a single below_target rule (the alert rule before issue 13);
- ``ten``: ten rules of every kind (two below_target, two drop_percent, three new_low windows,
  back_in_stock, two any_change).

For each, ``--repeat`` rounds of two observations are recorded through ``run_finish`` (one
transaction: the run, the price point, the product, the breaker, every tracker's rules and the
outbox rows), each timed from the call to the commit:

- ``quiet``: a price above every target and unchanged from the previous one: nothing fires (the
  cost of evaluating alone);
- ``alert``: a price below every target, 20% down and a new low: every tracker alerts (with
  ``ten``, every rule fires; one outbox row per tracker either way).

Enqueueing the email sends (after the commit) is left out: it is the same for both rule sets.
Prints the median and range of each, the ratio ten/one, and the queries per transaction.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BenchDatabase, django_setup, median, prepare_database, spread

ASIN = "B0BENCHRUL"
HIGH, LOW = Decimal("100.00"), Decimal("80.00")

ONE: list[dict[str, object]] = [{"kind": "below_target", "price": Decimal("90.00"), "repeat": "once"}]
TEN: list[dict[str, object]] = [
    {"kind": "below_target", "price": Decimal("90.00"), "repeat": "once"},
    {"kind": "below_target", "price": Decimal("85.00"), "repeat": "each_lower", "cooldown_minutes": 60},
    {"kind": "drop_percent", "percent": Decimal("10")},
    {"kind": "drop_percent", "percent": Decimal("15")},
    {"kind": "new_low", "days": None},
    {"kind": "new_low", "days": 30},
    {"kind": "new_low", "days": 7},
    {"kind": "back_in_stock"},
    {"kind": "any_change", "direction": "both"},
    {"kind": "any_change", "direction": "down", "cooldown_minutes": 30},
]


def seed(*, trackers: int, history: int):
    """The product, its history (above HIGH, so LOW is a new low) and the users."""
    from django.utils import timezone

    from accounts.models import User
    from scraping.models import get_store
    from tracking.models import PricePoint, Product, RunStatus, ScrapeRun

    store = get_store("amazon.com")
    store.requests_per_minute, store.concurrency, store.min_interval_minutes = 1_000_000, 64, 1
    store.save()
    now = timezone.now()
    product = Product.objects.create(store=store, asin=ASIN, interval_minutes=60, title="Bench kettle")
    runs = ScrapeRun.objects.bulk_create(
        ScrapeRun(product=product, status=RunStatus.SUCCESS, availability="in_stock", finished_at=now)
        for _ in range(history)
    )
    step = timedelta(days=90) / max(history, 1)
    PricePoint.objects.bulk_create(
        (
            PricePoint(
                product=product,
                run=run,
                price=HIGH + Decimal(i % 50),
                currency="USD",
                availability="in_stock",
                observed_at=now - step * (history - i),
            )
            for i, run in enumerate(runs)
        ),
        batch_size=2000,
    )
    users = [
        User.objects.create_user(f"bench{i}@example.com", None, email_verified_at=now, max_rules_per_tracker=10)
        for i in range(trackers)
    ]
    return product, users


def with_rules(product, users, rules: list[dict[str, object]]) -> None:
    """Replace the product's trackers by one per user with ``rules``."""
    from tracking.models import AlertRule, Tracker

    Tracker.objects.filter(product=product).delete()
    created = Tracker.objects.bulk_create(Tracker(user=user, product=product, interval_minutes=60) for user in users)
    AlertRule.objects.bulk_create(AlertRule(tracker=tracker, **rule) for tracker in created for rule in rules)


def timed_observation(product_id: int, price: Decimal) -> tuple[float, int]:
    """Record one successful observation at ``price``; milliseconds to commit, and queries."""
    from django.db import connection
    from django.utils import timezone

    from scraping.results import Availability, ScrapeResult, ScrapeStatus
    from tracking import services
    from tracking.models import Product, ScrapeRun

    token = services.product_claim(product_id=product_id)
    assert token is not None
    run = ScrapeRun.objects.create(
        product_id=product_id, claim_token=token, lease_until=timezone.now() + timedelta(minutes=5)
    )
    product = Product.objects.select_related("store").get(pk=product_id)
    result = ScrapeResult(
        status=ScrapeStatus.SUCCESS, price=price, currency="USD", availability=Availability.IN_STOCK, rule="bench"
    )
    statements = []

    def count(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    # Counted by a wrapper: the debug query log is a bounded deque, useless after 9,000 queries.
    with connection.execute_wrapper(count):
        started = time.perf_counter()
        finished = services.run_finish(run=run, product=product, result=result)
        elapsed = (time.perf_counter() - started) * 1000
    assert finished is not None and finished.status == "SUCCESS"
    return elapsed, len(statements)


def measure(product, users, rules: list[dict[str, object]], *, repeat: int) -> dict[str, tuple[list[float], int]]:
    """``repeat`` rounds of a quiet and an alerting observation with ``rules`` on every tracker."""
    from notifications.models import Notification

    with_rules(product, users, rules)
    timed_observation(product.pk, HIGH)  # the previous price of the first quiet observation
    quiet: list[float] = []
    alert: list[float] = []
    quiet_queries = alert_queries = 0
    for _ in range(repeat):
        ms, quiet_queries = timed_observation(product.pk, HIGH)
        quiet.append(ms)
        before = Notification.objects.count()
        ms, alert_queries = timed_observation(product.pk, LOW)
        alert.append(ms)
        assert Notification.objects.count() - before == len(users), "every tracker alerts once"
        timed_observation(product.pk, HIGH)  # re-arms, and a rise (not timed)
    return {"quiet": (quiet, quiet_queries), "alert": (alert, alert_queries)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--trackers", type=int, default=50)
    parser.add_argument("--history", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    database: BenchDatabase = prepare_database(args.db, "orm")
    try:
        django_setup()
        # The sends are enqueued after the commit, identically for both rule sets: not measured.
        import notifications.services

        notifications.services.notification_enqueue = lambda **kwargs: None
        product, users = seed(trackers=args.trackers, history=args.history)
        figures = {
            name: measure(product, users, rules, repeat=args.repeat) for name, rules in (("one", ONE), ("ten", TEN))
        }
        print(f"{args.db}: 1 product, {args.trackers} trackers, {args.history} price points; {args.repeat} rounds")
        for case in ("quiet", "alert"):
            one, one_queries = figures["one"][case]
            ten, ten_queries = figures["ten"][case]
            ratio = median(ten) / median(one)
            print(
                f"{case:5}  1 rule/tracker {median(one):7.1f} ms ({spread(one)}, {one_queries} queries)  "
                f"10 rules/tracker {median(ten):7.1f} ms ({spread(ten)}, {ten_queries} queries)  ratio {ratio:.2f}"
            )
    finally:
        database.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
