"""``manage.py fakestore``: run the local fake Amazon (every marketplace) until Ctrl-C.

For tests, demos and benchmarks only: it serves our own Amazon-like pages on loopback, with
latency, price scripts and fault injection controlled over JSON (see fakestore/server.py).
"""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from fakestore.server import DEFAULT_FAULT_MIX, FAULT_KINDS, FakeStore


class Command(BaseCommand):
    help = (
        "Run a fake Amazon (our own pages, loopback by default; every marketplace under /<code>/, e.g. "
        "/amazon.de/dp/<ASIN>) for tests, demos and benchmarks. Point AMAZON_BASE_URL (and STORE_BASE_URLS) "
        "at the printed URLs. Control it with JSON under /_control/. Never expose it."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8001, help="Port to bind; 0 picks a free one.")
        parser.add_argument("--latency-ms", type=int, default=0, help="Delay before every product page.")
        parser.add_argument("--padding-kb", type=int, default=0, help="Inflate pages with filler (1024+ = real size).")
        parser.add_argument("--fault-rate", type=float, default=0.0, help="Fraction of requests given a fault.")
        parser.add_argument(
            "--fault-kinds",
            default=",".join(DEFAULT_FAULT_MIX),
            help=f"Comma-separated faults to draw from: {', '.join(FAULT_KINDS)}.",
        )
        parser.add_argument("--seed", type=int, default=0, help="Seed of the fault draw (reproducible runs).")

    def handle(self, *args, **options) -> None:
        kinds = tuple(kind.strip() for kind in options["fault_kinds"].split(",") if kind.strip())
        try:
            store = FakeStore(
                options["host"],
                options["port"],
                latency_ms=options["latency_ms"],
                padding_kb=options["padding_kb"],
                fault_rate=options["fault_rate"],
                fault_kinds=kinds,
                seed=options["seed"],
            )
            store.start()
        except (ValueError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Fake store serving at {store.base_url} (product pages at {store.base_url}/dp/<ASIN>)")
        self.stdout.write(f"Use it with: AMAZON_BASE_URL={store.base_url}   Stop with Ctrl-C.")
        self.stdout.write(
            f"Other marketplaces: STORE_BASE_URLS=amazon.de={store.market_url('amazon.de')},"
            f"amazon.co.jp={store.market_url('amazon.co.jp')},..."
        )
        stop = threading.Event()
        # Installed explicitly: a process started in the background of a script inherits SIGINT
        # as ignored, and Python then never raises KeyboardInterrupt. SIGTERM stops it too.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        try:
            while not stop.wait(0.5):
                pass
        finally:
            store.stop()
            self.stdout.write("Fake store stopped.")
