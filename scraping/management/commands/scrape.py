"""``manage.py scrape``: one scrape, printed. Runs anywhere the project runs (no worker needed).

Two modes:

- ``scrape ASIN_OR_URL [--store amazon.de] [--json]`` fetches one product live through its
  marketplace's provider (a URL names its marketplace; a bare ASIN is on ``--store``, amazon.com by
  default), from that store's base URL (``AMAZON_BASE_URL``, ``STORE_BASE_URLS``: a local fake
  store in demos and tests). The exit status says how it went (``EXIT_STATUSES``), so a script or
  a monitoring probe needs no parsing. Short links are not resolved here.
- ``scrape --from-file PAGE.html [MORE.html ...] [--json]`` classifies and parses saved pages
  offline, as if each had been served with HTTP 200 and ``text/html``. ``--json`` prints one JSON
  object per file per line, with exactly the keys in ``FILE_JSON_KEYS``. A file that cannot be
  read gets an error line and the command goes on; the exit status is then non-zero.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scraping.pages import analyse
from scraping.results import ScrapeResult, ScrapeStatus

# Live mode: the outcome as the exit status. 1 stays "the command could not run" (Django's
# CommandError: a bad reference, unreadable files), 2 argparse's usage error.
EXIT_FAILED = 3
EXIT_BLOCKED = 4
EXIT_CODES = {ScrapeStatus.FAILED: EXIT_FAILED, ScrapeStatus.BLOCKED: EXIT_BLOCKED}
EXIT_STATUSES = (
    f"Exit status of a live scrape: 0 SUCCESS (a product page, with or without a price), {EXIT_FAILED} FAILED, "
    f"{EXIT_BLOCKED} BLOCKED (the result is printed first, as usual); 1 the command could not run (not an "
    "Amazon product reference, or a --from-file page unreadable; --from-file otherwise exits 0 whatever the "
    "pages are); 2 bad arguments."
)

FILE_JSON_KEYS = (
    "file",
    "status",
    "error_kind",
    "asin",
    "title",
    "price",
    "currency",
    "availability",
    "list_price",
    "rule",
)


def file_result_json(path: str, result: ScrapeResult) -> dict[str, Any]:
    """The ``--from-file --json`` line for one page: exactly ``FILE_JSON_KEYS``."""
    data = result.as_json()
    return {"file": path} | {key: data[key] for key in FILE_JSON_KEYS[1:]}


def summary(result: ScrapeResult) -> str:
    """A readable one-block summary of a result."""
    lines = [f"status: {result.status}" + (f" ({result.error_kind})" if result.error_kind else "")]
    if result.title:
        lines.append(f"title: {result.title}")
    if result.asin:
        lines.append(f"asin: {result.asin}")
    if result.price is not None:
        lines.append(f"price: {result.price} {result.currency or ''}".rstrip())
    if result.list_price is not None:
        lines.append(f"list price: {result.list_price} {result.currency or ''}".rstrip())
    if result.ok:
        lines.append(f"availability: {result.availability}")
    if result.rule:
        lines.append(f"rule: {result.rule}")
    if result.message:
        lines.append(f"message: {result.message}")
    return "\n".join("  " + line for line in lines)


class Command(BaseCommand):
    help = (
        "Scrape one Amazon product live (ASIN or product URL of any marketplace), or classify and parse "
        "saved pages offline with --from-file. Runs on any host with the project's settings; the live "
        "mode makes one request to the store's base URL (AMAZON_BASE_URL, STORE_BASE_URLS). " + EXIT_STATUSES
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("target", nargs="?", help="ASIN or Amazon product URL (live mode).")
        parser.add_argument(
            "--store", default="amazon.com", help="Marketplace of a bare ASIN (live mode; default amazon.com)."
        )
        parser.add_argument(
            "--from-file",
            nargs="+",
            metavar="PAGE",
            dest="files",
            help="Saved HTML page(s) to classify and parse offline (assumed HTTP 200, text/html).",
        )
        parser.add_argument("--json", action="store_true", help="Print JSON (one object per line).")

    def handle(self, *args: Any, **options: Any) -> None:
        files: list[str] | None = options["files"]
        target: str | None = options["target"]
        if files and target:
            raise CommandError("Give either an ASIN/URL or --from-file, not both.")
        if files:
            self._from_files(files, as_json=options["json"])
        elif target:
            self._live(target, store=str(options["store"]), as_json=options["json"])
        else:
            raise CommandError("Give an ASIN or product URL, or --from-file PAGE.html.")

    def _from_files(self, files: list[str], *, as_json: bool) -> None:
        unreadable = 0
        for name in files:
            try:
                body = Path(name).read_bytes()
            except OSError as exc:
                unreadable += 1
                self.stderr.write(f"{name}: cannot read file: {exc.strerror or exc}")
                continue
            result = analyse(200, "text/html", body)
            if as_json:
                self.stdout.write(json.dumps(file_result_json(name, result), ensure_ascii=False))
            else:
                self.stdout.write(f"{name}\n{summary(result)}")
        if unreadable:
            raise CommandError(f"{unreadable} of {len(files)} file(s) could not be read.")

    def _live(self, target: str, *, store: str, as_json: bool) -> None:
        # Imported here: the offline mode must work without the live provider's dependencies.
        from scraping.inputs import InvalidProductReference, parse_product_reference
        from scraping.providers import UnknownProvider, get_provider

        try:
            reference = parse_product_reference(target)
            provider = get_provider(reference.store or store)
        except InvalidProductReference as exc:
            raise CommandError(str(exc)) from exc
        except UnknownProvider:
            raise CommandError(f"No marketplace {store!r}.") from None
        asin = reference.asin
        result = provider.scrape(asin)
        if as_json:
            self.stdout.write(json.dumps(result.as_json(), ensure_ascii=False))
        else:
            self.stdout.write(f"{asin}\n{summary(result)}")
        if result.status in EXIT_CODES:
            reason = f"{result.status} ({result.error_kind})" if result.error_kind else str(result.status)
            raise CommandError(f"{asin}: {reason}", returncode=EXIT_CODES[result.status])
