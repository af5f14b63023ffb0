"""Wall time of an admin changing a store's minimum interval with many tracked products.

Usage (from the repository root)::

    uv run python bench/store_min_bench.py [--db sqlite|postgres] [--products 100000] [--repeat 5]

Seeds the same database as ``bench/dispatch_bench.py`` (``--products`` products, one enabled
tracker each at 360 minutes, store minimum 60), then ``--repeat`` times saves the store as the
admin does, raising the minimum to 480 minutes (every product's interval rises to 480) and
lowering it back to 60 (every interval returns to 360), each save in its own transaction. It
checks both outcomes and prints the median and range of each save. The database is removed at the
end.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BenchDatabase, django_setup, median, prepare_database, spread
from bench.dispatch_bench import seed


def timed_save(minimum: int, *, expect_interval: int, products: int) -> float:
    """Save the store with ``minimum`` like the admin (one transaction); return milliseconds."""
    from scraping.models import get_store
    from scraping.services import store_update_policy
    from tracking.models import Product

    store = get_store("amazon.com")
    started = time.perf_counter()
    store_update_policy(store=store, min_interval_minutes=minimum)
    elapsed = (time.perf_counter() - started) * 1000
    assert Product.objects.filter(interval_minutes=expect_interval).count() == products
    return elapsed


def main() -> int:
    """Seed, then time raising and lowering the store minimum."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    database: BenchDatabase = prepare_database(args.db, "orm")
    try:
        django_setup()
        seed(products=args.products, due=0)
        raise_ms: list[float] = []
        lower_ms: list[float] = []
        for _ in range(args.repeat):
            raise_ms.append(timed_save(480, expect_interval=480, products=args.products))
            lower_ms.append(timed_save(60, expect_interval=360, products=args.products))
        print(f"{args.db}: {args.products} tracked products")
        print(f"raise minimum 60 -> 480  median {median(raise_ms):8.1f} ms  range {spread(raise_ms)}")
        print(f"lower minimum 480 -> 60  median {median(lower_ms):8.1f} ms  range {spread(lower_ms)}")
    finally:
        database.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
