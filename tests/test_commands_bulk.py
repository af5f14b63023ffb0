"""manage.py import_trackers and rescrape_all: bad rows reported, summaries, polite spreading."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from notifications.models import Notification
from scraping.models import Store
from tests.tracking_factories import make_product, make_tracker, record, success
from tracking import services
from tracking.models import Product, ScrapeRun, Tracker

pytestmark = pytest.mark.django_db


def run(name: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_import(*args: str) -> tuple[str, str, int]:
    """``import_trackers`` as a script sees it: stdout, stderr and the exit status."""
    out, err = StringIO(), StringIO()
    try:
        call_command("import_trackers", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), err.getvalue(), exc.returncode
    return out.getvalue(), err.getvalue(), 0


@pytest.fixture
def csv_file(tmp_path):
    def write(text: str) -> str:
        path = tmp_path / "trackers.csv"
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


def summary(out: str) -> dict[str, int]:
    """``{"created": n, ...}`` from the summary lines."""
    counts = {}
    for line in out.splitlines():
        name, _, number = line.strip().partition(":")
        if number.strip().isdigit():
            counts[name] = int(number)
    return counts


# --- import_trackers -------------------------------------------------------------------------------


def test_it_creates_one_tracker_per_row_and_prints_a_summary(store, alice, csv_file):
    path = csv_file(
        "url_or_asin,target_price,interval_minutes\n"
        "B000000001,19.99,\n"
        "https://www.amazon.com/Some-Thing/dp/B000000002/ref=sr_1_1?th=1,25.50,120\n"
        "B000000003,7,30\n"
    )

    out, err, status = run_import("--user", "ALICE@example.com", path)

    assert status == 0
    assert summary(out) == {"created": 3, "duplicates": 0, "invalid": 0, "over limit": 0}
    assert "Imported trackers.csv for alice@example.com: 3 rows." in out
    assert err == ""
    trackers = {t.product.asin: t for t in Tracker.objects.filter(user=alice).select_related("product")}
    assert trackers["B000000002"].target_price == Decimal("25.50")
    assert trackers["B000000002"].interval_minutes == 120
    assert trackers["B000000003"].target_price == Decimal("7.00")
    assert all(t.enabled and t.armed for t in trackers.values())


def test_bad_rows_are_reported_with_their_line_number_and_the_import_goes_on(store, alice, csv_file):
    store.min_interval_minutes = 30
    store.save()
    path = csv_file(
        "B000000001,abc\n"  # line 1
        "https://evil.example/dp/B000000002,10\n"
        "B000000003\n"
        "\n"  # blank: skipped
        "B000000004,10,often\n"  # line 5
        "B000000005,10,5\n"
        "B000000006,10,60,extra\n"
        "# a comment\n"
        "B000000007,0\n"  # line 9
        "B000000008,1.999\n"
        "B000000009,12.00,60\n"  # the only good row
    )

    out, err, status = run_import("--user", "alice@example.com", path)

    assert status == 3
    assert summary(out) == {"created": 1, "duplicates": 0, "invalid": 8, "over limit": 0}
    lines = err.splitlines()
    assert lines[0] == "line 1: target price 'abc': A valid number is required."
    assert lines[1].startswith("line 2: ") and "amazon.com" in lines[1]
    assert lines[2] == "line 3: no target price (give one in the row or use --default-target)"
    assert lines[3] == "line 5: interval 'often' is not a whole number of minutes"
    assert lines[4].startswith("line 6: The minimum interval for amazon.com is 30 minutes")
    assert lines[5].startswith("line 7: expected at most 3 columns")
    assert lines[6] == "line 9: target price '0': Ensure this value is greater than or equal to 0.01."
    assert lines[7] == "line 10: target price '1.999': Ensure that there are no more than 2 decimal places."
    assert list(Tracker.objects.values_list("product__asin", flat=True)) == ["B000000009"]
    # A refused row leaves nothing behind, not even a product.
    assert not Product.objects.filter(asin="B000000006").exists()


def test_rows_already_tracked_count_as_duplicates(store, alice, csv_file):
    make_tracker(alice, make_product(store, "B000000001"))
    path = csv_file("B000000001,10\nB000000002,10\nB000000002,12\n")

    out, err, status = run_import("--user", "alice@example.com", path)

    # Every row is tracked now: that is a success.
    assert status == 0
    assert summary(out) == {"created": 1, "duplicates": 2, "invalid": 0, "over limit": 0}
    assert "line 1: You already track B000000001" in err
    assert "line 3: B000000002 is already on line 2 of this file." in err


def test_rows_beyond_the_users_tracker_limit_are_counted_as_over_limit(store, make_user, csv_file):
    make_user("carol@example.com", max_trackers=2)
    path = csv_file("".join(f"B00000000{i},10\n" for i in range(1, 5)))

    out, err, status = run_import("--user", "carol@example.com", path)

    assert status == 3
    assert summary(out) == {"created": 2, "duplicates": 0, "invalid": 0, "over limit": 2}
    assert err.count("the limit for your account") == 2
    # The refused rows left no disabled trackers behind.
    assert Tracker.objects.count() == 2


def test_new_products_are_not_fetched_at_once_but_spread_over_the_stores_rate(store, alice, csv_file):
    store.requests_per_minute = 60  # one request a second
    store.save()
    path = csv_file("".join(f"B0SPREAD{i:02d},10\n" for i in range(10)))
    started = timezone.now()

    out, _ = run("import_trackers", "--user", "alice@example.com", path)

    products = list(Product.objects.order_by("asin"))
    # Nothing claimed or queued right away (tracker_create would claim each for a fetch now)...
    assert all(p.claimed_until is None for p in products)
    assert not ScrapeRun.objects.exists()
    # ... each is due in its own one-second slot instead.
    for index, product in enumerate(products):
        offset = (product.next_scrape_at - started).total_seconds()
        assert index - 0.5 <= offset < index + 1.5, (product.asin, offset)
    assert "First checks of 10 new products are spread over the next 1 min (amazon.com: 60 requests/minute)." in out


def test_a_product_someone_already_tracks_keeps_its_schedule_and_alerts_at_once(store, alice, bob, csv_file):
    product = make_product(store, "B000000001")
    make_tracker(bob, product)
    record(product, success("10.00"))
    path = csv_file("B000000001,20.00\n")

    out, _ = run("import_trackers", "--user", "alice@example.com", path)

    assert summary(out)["created"] == 1
    # Its next check stays one interval after the last one: not fetched again for Alice.
    product.refresh_from_db()
    assert product.claimed_until is None
    assert product.next_scrape_at >= product.last_scraped_at + timedelta(minutes=60)
    # Already below Alice's target: her first observation is a crossing, as with the API.
    assert Notification.objects.filter(user=alice).count() == 1
    assert "spread" not in out


def test_empty_cells_take_the_default_target_and_interval(store, alice, csv_file):
    path = csv_file("B000000001\nB000000002,5.00,\n")

    out, _ = run("import_trackers", "--user", "alice@example.com", "--default-target", "9.99", "--interval", "90", path)

    assert summary(out)["created"] == 2
    first, second = Tracker.objects.order_by("product__asin")
    assert (first.target_price, first.interval_minutes) == (Decimal("9.99"), 90)
    assert (second.target_price, second.interval_minutes) == (Decimal("5.00"), 90)


def test_a_dry_run_reports_the_same_summary_and_saves_nothing(store, alice, csv_file):
    make_tracker(alice, make_product(store, "B000000001"))
    path = csv_file("B000000001,10\nB000000002,10\nB000000003,oops\n")

    out, err, status = run_import("--user", "alice@example.com", "--dry-run", path)

    assert status == 3
    assert summary(out) == {"created": 1, "duplicates": 1, "invalid": 1, "over limit": 0}
    assert "Dry run: nothing was saved." in out
    assert "line 3: target price 'oops': A valid number is required." in err
    assert Tracker.objects.count() == 1
    assert not Product.objects.filter(asin="B000000002").exists()


def test_a_dry_run_reports_exactly_what_the_real_run_then_does(store, make_user, csv_file):
    make_user("carol@example.com", max_trackers=3)
    rows = (
        "B000000001,10\n"
        "B000000001,12\n"  # the same product again: a duplicate of line 1, not of a tracker id
        "B000000002,$9.99\n"  # refused, as by the API
        "B000000002,9.99\n"  # so this one is new
        "https://www.amazon.com/dp/B000000001?th=1,11\n"  # line 1's product in another form
        "B000000003,10\n"
        "B000000004,10\n"  # over Carol's limit of 3
    )
    path = csv_file(rows)

    dry = run_import("--user", "carol@example.com", "--dry-run", path)
    assert Tracker.objects.count() == 0
    real = run_import("--user", "carol@example.com", path)

    assert dry[0].replace("Dry run: nothing was saved.\n", "") == real[0]
    assert dry[1:] == real[1:]
    assert summary(real[0]) == {"created": 3, "duplicates": 2, "invalid": 1, "over limit": 1}
    lines = real[1].splitlines()
    assert lines[:3] == [
        "line 2: B000000001 is already on line 1 of this file.",
        "line 3: target price '$9.99': A valid number is required.",
        "line 5: B000000001 is already on line 1 of this file.",
    ]
    assert lines[3].startswith("line 7: ") and "limit" in lines[3] and len(lines) == 4
    assert Tracker.objects.count() == 3


def test_a_target_price_is_read_by_the_apis_own_rules(store, alice, alice_client, csv_file):
    prices = [
        "$9.99",
        "9.99$",
        "1e3",
        "0x10",
        "-1",
        "0.001",
        "10000000000",
        "NaN",
        "Infinity",
        "9.99",
        "7",
        "9999999999.99",
    ]
    path = csv_file("".join(f"B0PRICE{i:03d},{price}\n" for i, price in enumerate(prices)))

    _, err, _ = run_import("--user", "alice@example.com", path)

    refused_by_import = {int(line.split(":")[0].removeprefix("line ")) - 1 for line in err.splitlines()}
    refused_by_api = {
        i
        for i, price in enumerate(prices)
        if alice_client.post(
            "/api/trackers/", {"asin": f"B0APIPR{i:03d}", "target_price": price}, format="json"
        ).status_code
        == 400
    }
    assert refused_by_import == refused_by_api
    assert refused_by_import == set(range(9))


def test_the_exit_statuses_are_documented_in_the_help():
    from tracking.management.commands.import_trackers import Command

    assert "Exit status: 0" in Command.help and "3 the import finished" in Command.help


def test_progress_is_reported_on_stderr_every_n_rows(store, alice, csv_file):
    path = csv_file("".join(f"B00000000{i},10\n" for i in range(1, 6)))

    out, err = run("import_trackers", "--user", "alice@example.com", "--progress-every", "2", path)

    assert err.splitlines() == ["progress: 2/5 rows (40%)", "progress: 4/5 rows (80%)"]
    assert "progress" not in out


def test_a_spreadsheet_csv_with_a_byte_order_mark_and_a_header_is_read(store, alice, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffASIN,target_price\r\nB000000001,10\r\n".encode())

    out, err = run("import_trackers", "--user", "alice@example.com", str(path))

    assert summary(out)["created"] == 1
    assert err == ""


def test_an_unknown_user_or_a_missing_file_is_an_error(store, alice, csv_file, tmp_path):
    with pytest.raises(CommandError, match="No user with email 'nobody@example\\.com'"):
        run("import_trackers", "--user", "nobody@example.com", csv_file("B000000001,10\n"))
    with pytest.raises(CommandError, match="Cannot read"):
        run("import_trackers", "--user", "alice@example.com", str(Path(tmp_path) / "missing.csv"))


# --- rescrape_all ------------------------------------------------------------------------------------


def tracked(store, user, asin: str, **fields) -> Product:
    product = make_product(store, asin, **fields)
    make_tracker(user, product)
    return product


def test_rescrape_all_makes_every_tracked_product_due_spread_over_the_stores_rate(store, alice):
    store.requests_per_minute = 60
    store.save()
    later = timezone.now() + timedelta(days=1)
    products = [tracked(store, alice, f"B00000000{i}", next_scrape_at=later) for i in range(1, 5)]
    Product.objects.filter(pk=products[0].pk).update(backoff_until=later, consecutive_failures=3)
    untracked = make_product(store, "B000000009", next_scrape_at=later)
    started = timezone.now()

    out, _ = run("rescrape_all", "--yes")

    assert "Scheduled 4 of 4 tracked products of amazon.com for a re-check over the next 1 min" in out
    for index, product in enumerate(products):
        product.refresh_from_db()
        offset = (product.next_scrape_at - started).total_seconds()
        assert index - 0.5 <= offset < index + 1.5
        assert product.backoff_until is None
    untracked.refresh_from_db()
    assert untracked.next_scrape_at == later


def test_the_dispatcher_then_picks_them_up_at_the_stores_pace(store, alice, monkeypatch):
    store.requests_per_minute = 60
    store.save()
    for i in range(1, 7):
        tracked(store, alice, f"B00000000{i}", next_scrape_at=timezone.now() + timedelta(days=1))
    started = timezone.now()
    run("rescrape_all", "--yes")
    waits = []
    monkeypatch.setattr(services.queue, "enqueue_scrape", lambda **task: waits.append(task["not_before"]))
    tick = started + timedelta(seconds=2.5)

    report = services.dispatch_due_products(now=tick)

    # Slots are one second apart. A tick claims what is due before the next tick; the task of a
    # product not due yet waits for its slot (products 0 and 1 are due, product 2 perhaps).
    assert report.claimed == 6
    slots = sorted(Product.objects.values_list("next_scrape_at", flat=True))
    assert sorted(wait for wait in waits if wait is not None) == [slot for slot in slots if slot > tick]
    assert 3 <= len(waits) - waits.count(None) <= 4


def test_products_being_scraped_right_now_are_left_alone(store, alice):
    busy = tracked(store, alice, "B000000001")
    claimed_until = timezone.now() + timedelta(minutes=5)
    Product.objects.filter(pk=busy.pk).update(claimed_until=claimed_until, next_scrape_at=None)
    tracked(store, alice, "B000000002")

    out, _ = run("rescrape_all", "--yes")

    assert "Scheduled 1 of 2 tracked products" in out
    assert "1 were being scraped already and were left alone." in out
    assert Product.objects.get(pk=busy.pk).next_scrape_at is None


def test_rescrape_all_prints_progress_per_batch(store, alice, monkeypatch):
    monkeypatch.setattr(services.bulk, "RESCRAPE_BATCH", 2)
    for i in range(1, 6):
        tracked(store, alice, f"B00000000{i}")

    _, err = run("rescrape_all", "--yes")

    assert err.splitlines() == [
        "progress: 2/5 products (40%)",
        "progress: 4/5 products (80%)",
        "progress: 5/5 products (100%)",
    ]


def test_rescrape_all_wants_a_confirmation_it_cannot_get_without_a_terminal(store, alice):
    tracked(store, alice, "B000000001")

    with pytest.raises(CommandError, match="pass --yes"):
        run("rescrape_all")


def test_rescrape_all_asks_on_a_terminal_and_no_means_no(store, alice, monkeypatch):
    later = timezone.now() + timedelta(days=1)
    product = tracked(store, alice, "B000000001", next_scrape_at=later)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")

    with pytest.raises(CommandError, match="Cancelled"):
        run("rescrape_all")
    assert Product.objects.get(pk=product.pk).next_scrape_at == later


def test_rescrape_all_warns_when_the_store_is_paused_and_refuses_unknown_stores(store, alice):
    tracked(store, alice, "B000000001")
    Store.objects.filter(pk=store.pk).update(enabled=False)

    out, _ = run("rescrape_all", "--yes")

    assert "amazon.com is disabled: nothing is fetched until it is enabled." in out
    with pytest.raises(CommandError, match="No store 'amazon\\.cn'"):
        run("rescrape_all", "--store", "amazon.cn", "--yes")
