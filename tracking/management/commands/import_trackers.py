"""``manage.py import_trackers --user EMAIL FILE.csv``: create many trackers for one user.

Runs anywhere the app is installed (it writes to the database; workers do the fetching). The
CSV has one tracker per row: ``url_or_asin,target_price[,interval_minutes]``, with an optional
header row naming those columns. Blank lines and lines starting with ``#`` are skipped. An
empty target or interval takes ``--default-target`` / ``--interval``.

Output:

- stderr: each bad row as ``line N: <reason>`` (the import goes on), and a progress line
  every ``--progress-every`` rows: ``progress: 200/1000 rows (20%)``.
- stdout: a summary: rows read, created, duplicates (already tracked, also twice in the file),
  invalid, over limit (the user's active-tracker limit), and over how many minutes the first
  checks of new products were spread.
- exit status: see ``EXIT_STATUSES``; a script can tell "every row is tracked" from "some rows
  were not imported" without parsing the summary.

Target prices and intervals go through the API's own fields (``TrackerCreateSerializer``), so a
row is accepted exactly when the same tracker would be accepted by ``POST /api/trackers/``
(``$9.99`` is refused by both).

New products are not fetched at once (that would queue every row's request together): each
becomes due in its own request slot at the store's rate, with jitter (tracking.services
``tracker_import`` and ``spread_slot``). Each row is its own transaction, so a long import never
holds the database for long; ``--dry-run`` runs every row in one transaction and rolls it back,
so it reports what a real run would: the same outcomes, counts, messages and exit status.
"""

from __future__ import annotations

import contextlib
import csv
import functools
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from accounts.models import User
from pricetracker.errors import DomainError
from scraping.models import Store, get_store
from tracking import services
from tracking.errors import DuplicateTracker, TrackerLimitReached
from tracking.serializers import TrackerCreateSerializer

HEADER_NAMES = frozenset({"url_or_asin", "url", "asin", "reference"})
MAX_COLUMNS = 3
# The import ran, but some rows are not tracked now (invalid or over the limit). 1 stays Django's
# "the command could not run" (unknown user, unreadable file), 2 argparse's usage error.
EXIT_ROWS_NOT_IMPORTED = 3
EXIT_STATUSES = (
    "Exit status: 0 every row is tracked now (created, or already tracked); "
    f"{EXIT_ROWS_NOT_IMPORTED} the import finished but some rows were invalid or over the tracker limit "
    "(each is on stderr, counted in the summary); 1 the import could not run (unknown user, unreadable file); "
    "2 bad arguments. --dry-run exits as the real run would."
)


class BadRow(Exception):
    """A row that cannot become a tracker; the message says why."""


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    reference: str
    target_price: Decimal
    interval_minutes: int | None


@functools.cache
def api_field(name: str) -> Any:
    """The API's own field for ``name`` (of ``TrackerCreateSerializer``): one parser for both doors."""
    return TrackerCreateSerializer().fields[name]


def parse_price(text: str) -> Decimal:
    """A target price exactly as ``POST /api/trackers/`` takes it (a plain decimal string)."""
    try:
        return api_field("target_price").run_validation(text)
    except ValidationError as exc:
        raise BadRow(f"target price {text!r}: {describe(exc)}") from None


def parse_interval(text: str) -> int:
    """A whole number of minutes in the API's range (the store's minimum is checked by the service)."""
    try:
        value = int(text)
    except ValueError:
        raise BadRow(f"interval {text!r} is not a whole number of minutes") from None
    try:
        return api_field("interval_minutes").run_validation(value)
    except ValidationError as exc:
        raise BadRow(f"interval {text!r}: {describe(exc)}") from None


def parse_row(line: int, cells: list[str], *, default_target: Decimal | None, default_interval: int | None) -> Row:
    """Turn one CSV record into a :class:`Row` or raise :class:`BadRow`."""
    if len(cells) > MAX_COLUMNS:
        raise BadRow(f"expected at most {MAX_COLUMNS} columns (url_or_asin,target_price,interval_minutes)")
    reference, target, interval = [*cells, "", ""][:MAX_COLUMNS]
    if not reference:
        raise BadRow("the url_or_asin column is empty")
    if target:
        price = parse_price(target)
    elif default_target is not None:
        price = default_target
    else:
        raise BadRow("no target price (give one in the row or use --default-target)")
    return Row(line, reference, price, parse_interval(interval) if interval else default_interval)


def read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """``(line number, cells)`` of every data record: blanks, comments and a header skipped."""
    records: list[tuple[int, list[str]]] = []
    # utf-8-sig: spreadsheets often save CSV with a byte-order mark.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        for cells in reader:
            cells = [cell.strip() for cell in cells]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if not records and cells[0].lower() in HEADER_NAMES:
                continue
            # line_num is where the record ends; a record rarely spans lines in this format.
            records.append((reader.line_num, cells))
    return records


def describe(error: ValidationError) -> str:
    """The messages of a DRF ValidationError as one line."""
    detail = error.detail
    if isinstance(detail, dict):
        parts = [str(message) for messages in detail.values() for message in messages]
    elif isinstance(detail, list):
        parts = [str(message) for message in detail]
    else:
        parts = [str(detail)]
    return " ".join(parts)


class Command(BaseCommand):
    help = (
        "Import trackers for one user from a CSV file (url_or_asin,target_price[,interval_minutes]). "
        "Bad rows are reported with their line number and skipped; a summary follows. Run it on any host "
        "with database access; the workers fetch the products, spread over the store's request rate. " + EXIT_STATUSES
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="CSV file: url_or_asin,target_price[,interval_minutes].")
        parser.add_argument("--user", required=True, help="Email of the user who gets the trackers.")
        parser.add_argument("--default-target", help="Target price for rows without one.")
        parser.add_argument("--interval", type=int, help="Interval in minutes for rows without one.")
        parser.add_argument("--dry-run", action="store_true", help="Check every row; save nothing.")
        parser.add_argument("--progress-every", type=int, default=100, help="Progress line every N rows (100).")

    def handle(self, *args: object, **options: object) -> None:
        path = Path(str(options["file"]))
        try:
            user = User.objects.get_by_natural_key(str(options["user"]))
        except User.DoesNotExist:
            raise CommandError(f"No user with email {options['user']!r}.") from None
        try:
            default_target = parse_price(str(options["default_target"])) if options["default_target"] else None
            default_interval = parse_interval(str(options["interval"])) if options["interval"] is not None else None
        except BadRow as exc:
            raise CommandError(f"--default-target/--interval: {exc}") from None
        try:
            records = read_rows(path)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from None

        every = max(1, int(str(options["progress_every"])))
        outcomes: Counter[str] = Counter()
        # Trackers this import created: id -> (line, ASIN). A later row for the same product is a
        # duplicate of that line, said so in words true of a real run and of a dry run alike (a
        # dry run's tracker id names a row that is rolled back).
        self._created: dict[int, tuple[int, str]] = {}
        store = get_store(services.DEFAULT_STORE)
        spacing = services.store_request_spacing(store)
        now = timezone.now()
        # Outside --dry-run every row commits on its own (tracker_import is atomic per row).
        with transaction.atomic() if options["dry_run"] else contextlib.nullcontext():
            for done, (line, cells) in enumerate(records, start=1):
                outcome = self._import_row(
                    user, line, cells, default_target, default_interval,
                    first_fetch_at=services.spread_slot(now=now, index=outcomes["spread"], spacing=spacing),
                )  # fmt: skip
                outcomes.update(outcome)
                if done % every == 0 and done < len(records):
                    self._progress(f"progress: {done}/{len(records)} rows ({done * 100 // len(records)}%)")
            if options["dry_run"]:
                transaction.set_rollback(True)
        self._summary(path, user, len(records), outcomes, spread=spacing * outcomes["spread"], store=store)
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing was saved.")
        not_imported = outcomes["invalid"] + outcomes["over_limit"]
        if not_imported:
            message = f"{not_imported} of {len(records)} rows were not imported (see above)."
            raise CommandError(message, returncode=EXIT_ROWS_NOT_IMPORTED)

    def _import_row(
        self,
        user: User,
        line: int,
        cells: list[str],
        default_target: Decimal | None,
        default_interval: int | None,
        *,
        first_fetch_at: datetime,
    ) -> list[str]:
        """Import one record; report a bad one on stderr. Returns the outcome keys to count."""
        try:
            row = parse_row(line, cells, default_target=default_target, default_interval=default_interval)
            tracker, spread = services.tracker_import(
                user=user,
                reference=row.reference,
                target_price=row.target_price,
                interval_minutes=row.interval_minutes,
                first_fetch_at=first_fetch_at,
            )
        except BadRow as exc:
            self._bad(line, str(exc))
            return ["invalid"]
        except DuplicateTracker as exc:
            earlier = self._created.get(exc.existing_id) if exc.existing_id is not None else None
            if earlier is not None:
                self._bad(line, f"{earlier[1]} is already on line {earlier[0]} of this file.")
            else:
                self._bad(line, exc.message)
            return ["duplicate"]
        except TrackerLimitReached as exc:
            self._bad(line, exc.message)
            return ["over_limit"]
        except DomainError as exc:  # an invalid product reference or interval
            self._bad(line, exc.message)
            return ["invalid"]
        self._created[tracker.pk] = (line, tracker.product.asin)
        return ["created", "spread"] if spread else ["created"]

    def _bad(self, line: int, reason: str) -> None:
        self.stderr.write(f"line {line}: {reason}")

    def _progress(self, message: str) -> None:
        # stderr, so stdout stays the summary alone; unstyled (stderr is red by default).
        self.stderr.write(message, style_func=lambda text: text)

    def _summary(
        self, path: Path, user: User, rows: int, outcomes: Counter[str], *, spread: timedelta, store: Store
    ) -> None:
        self.stdout.write(f"Imported {path.name} for {user.email}: {rows} rows.")
        self.stdout.write(f"  created:     {outcomes['created']}")
        self.stdout.write(f"  duplicates:  {outcomes['duplicate']}")
        self.stdout.write(f"  invalid:     {outcomes['invalid']}")
        self.stdout.write(f"  over limit:  {outcomes['over_limit']}")
        if outcomes["spread"]:
            minutes = max(1, round(spread.total_seconds() / 60))
            self.stdout.write(
                f"First checks of {outcomes['spread']} new products are spread over the next {minutes} min "
                f"({store.code}: {store.requests_per_minute} requests/minute)."
            )
