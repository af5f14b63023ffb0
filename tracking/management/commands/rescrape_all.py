"""``manage.py rescrape_all [--store amazon.com] [--yes]``: check every tracked product again.

For after a parser fix or an outage: every product of the store with an enabled tracker becomes
due again, each in its own request slot at the store's rate (with jitter), so the running
workers fetch them politely over ``products / requests_per_minute`` minutes instead of at once.
Failure backoff is cleared; products being scraped right now are left alone. Run it on any host
with database access; the workers do the fetching.

Output: progress lines on stderr (``progress: 500/2000 products (25%)``, one per batch) and a
summary on stdout. Asks for confirmation unless ``--yes`` (required when not on a terminal).
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scraping.models import Store
from tracking import services


class Command(BaseCommand):
    help = (
        "Make every tracked product of a store due again, spread over the store's request rate, so the "
        "workers re-check them politely. Run on any host with database access."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--store", default=services.DEFAULT_STORE, help="Store code (default amazon.com).")
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")

    def handle(self, *args: object, **options: object) -> None:
        code = str(options["store"])
        try:
            store = Store.objects.get(code=code)
        except Store.DoesNotExist:
            known = ", ".join(Store.objects.values_list("code", flat=True)) or "none yet"
            raise CommandError(f"No store {code!r} (known: {known}).") from None
        if not options["yes"] and not self._confirmed(store):
            raise CommandError("Cancelled: nothing was changed.")

        report = services.products_rescrape_all(
            store=store,
            on_progress=lambda done, total: self.stderr.write(
                f"progress: {done}/{total} products ({done * 100 // total}%)", style_func=lambda text: text
            ),
        )
        minutes = max(1, round(report.window.total_seconds() / 60)) if report.total else 0
        self.stdout.write(
            f"Scheduled {report.scheduled} of {report.total} tracked products of {store.code} for a re-check "
            f"over the next {minutes} min ({store.requests_per_minute} requests/minute)."
        )
        if report.in_flight:
            self.stdout.write(f"{report.in_flight} were being scraped already and were left alone.")
        if not store.enabled:
            self.stdout.write(self.style.WARNING(f"{store.code} is disabled: nothing is fetched until it is enabled."))
        elif store.breaker_state != Store.BreakerState.CLOSED:
            self.stdout.write(
                self.style.WARNING(
                    f"{store.code}'s circuit breaker is {store.breaker_state}: checks wait until it closes."
                )
            )

    def _confirmed(self, store: Store) -> bool:
        if not sys.stdin.isatty():
            raise CommandError("Not on a terminal: pass --yes to confirm.")
        answer = input(f"Re-check every tracked product of {store.code}? [y/N] ")
        return answer.strip().lower() in {"y", "yes"}
