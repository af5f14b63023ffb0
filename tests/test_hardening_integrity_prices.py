"""Issue #11, item 1: one absurd scraped price must not make a product unreadable.

A page whose buy-box price does not fit the price column (``$12,345,678,901.00``) or lies
outside the store's plausible range is a FAILED run (``implausible_price``), never a price
point; the database refuses such a value on every backend; a bad row an older release stored
on SQLite is repaired by the migration that adds the constraints, after which the API and the
admin read the product again. A price far from the product's recent median is recorded only
when a second, equally polite fetch confirms it.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone

from notifications.models import Notification
from scraping.models import Store
from scraping.results import Availability, ErrorKind, ScrapeResult, ScrapeStatus, check_price_range
from tests.conftest import auth_client
from tests.tracking_factories import make_product, make_tracker, record, success
from tracking import services
from tracking.models import UNCONFIRMED_PRICE, PricePoint, Product, RunStatus, ScrapeRun

ABSURD = "12345678901.00"  # 11 digits before the point: numeric(12,2) holds 10


def scrape_now(product: Product) -> ScrapeRun | None:
    """What a worker does with a claimed product."""
    token = services.product_claim(product_id=product.pk)
    assert token is not None
    return services.product_scrape(product_id=product.pk, claim_token=token)


def with_history(product: Product, *prices: str) -> None:
    for price in prices:
        record(product, success(price))


# ---- implausible prices -----------------------------------------------------------------------


def test_a_price_the_column_cannot_hold_is_a_failed_run_and_the_product_stays_readable(
    store, fake_store, alice, bob, django_capture_on_commit_callbacks
):
    """Through the real provider and the fake store's page ("$12,345,678,901.00")."""
    fake_store.set_product("B0ABSURD01", price=ABSURD)
    client = auth_client(alice)
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post("/api/trackers/", {"asin": "B0ABSURD01", "target_price": "50.00"}, format="json")
    assert created.status_code == 201, created.content
    tracker_id = created.json()["id"]
    product = Product.objects.get(asin="B0ABSURD01")

    run = ScrapeRun.objects.get(product=product)  # the first check ran at once (sync queue)
    assert (run.status, run.error_kind) == (RunStatus.FAILED, ErrorKind.IMPLAUSIBLE_PRICE)
    assert ABSURD.replace(".00", "") in run.message.replace(",", "")
    assert not PricePoint.objects.exists()
    product.refresh_from_db()
    assert product.current_price is None and product.consecutive_failures == 1

    # Every read the issue lists answers normally, for the owner and for a second user.
    for path in ("", f"{tracker_id}/", f"{tracker_id}/history/", f"{tracker_id}/stats/"):
        assert client.get(f"/api/trackers/{path}").status_code == 200, path
    assert client.get("/api/scrape-runs/").status_code == 200
    assert client.patch(f"/api/trackers/{tracker_id}/", {"target_price": "40.00"}, format="json").status_code == 200
    again = auth_client(bob).post("/api/trackers/", {"asin": "B0ABSURD01", "target_price": "9.00"}, format="json")
    assert again.status_code == 201, again.content
    assert client.delete(f"/api/trackers/{tracker_id}/").status_code == 204


@pytest.mark.parametrize("price", ["0.00", "0.50", "150.00"])
def test_a_price_outside_the_stores_plausible_range_is_implausible(provider, alice, price):
    Store.objects.filter(code="amazon.com").update(min_plausible_price=Decimal("1.00"), max_plausible_price=100)
    product = make_product(Store.objects.get(code="amazon.com"))
    make_tracker(alice, product, target="500.00")
    provider.queue(product.asin, price)
    run = scrape_now(product)
    assert (run.status, run.error_kind) == (RunStatus.FAILED, ErrorKind.IMPLAUSIBLE_PRICE)
    assert not PricePoint.objects.exists() and not Notification.objects.exists()
    product.refresh_from_db()
    assert product.consecutive_failures == 1 and product.backoff_until is not None


def test_a_price_inside_the_range_is_recorded_rounded_to_the_cent(provider, alice):
    product = make_product(Store.objects.get(code="amazon.com"))
    make_tracker(alice, product)
    provider.queue(product.asin, "19.995")
    run = scrape_now(product)
    assert run.status == RunStatus.SUCCESS
    assert PricePoint.objects.get().price == Decimal("20.00")


def test_a_list_price_outside_the_range_is_dropped_and_the_price_kept():
    result = success("19.99", list_price=Decimal(ABSURD))
    checked = check_price_range(result, low=Decimal("0.01"), high=Decimal("1000000"))
    assert checked.status is ScrapeStatus.SUCCESS
    assert (checked.price, checked.list_price) == (Decimal("19.99"), None)


def test_the_range_never_lets_through_more_than_the_column_holds():
    result = success(ABSURD)
    checked = check_price_range(result, low=Decimal(0), high=Decimal("99999999999999"))
    assert (checked.status, checked.error_kind) == (ScrapeStatus.FAILED, ErrorKind.IMPLAUSIBLE_PRICE)


def test_results_without_a_price_are_not_touched():
    for result in (success(None), ScrapeResult(status=ScrapeStatus.BLOCKED, error_kind=ErrorKind.CAPTCHA)):
        assert check_price_range(result, low=Decimal(1), high=Decimal(2)) is result


def test_a_new_store_has_a_sane_plausible_range(db):
    store = Store.objects.create(code="example.test", name="Example")
    assert (store.min_plausible_price, store.max_plausible_price) == (Decimal("0.01"), Decimal("1000000.00"))


@pytest.mark.parametrize(("low", "high"), [("10.00", "5.00"), ("-1.00", "5.00"), ("0.01", "99999999999.00")], ids=str)
def test_the_database_refuses_an_empty_or_unstorable_range(db, low, high):
    with pytest.raises((IntegrityError, DatabaseError)), transaction.atomic():
        Store.objects.create(code="bad.test", name="Bad", min_plausible_price=low, max_plausible_price=high)


# ---- the database refuses what the column cannot hold ------------------------------------------


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("price_history", "price"),
        ("price_history", "list_price"),
        ("products", "current_price"),
        ("products", "list_price"),
    ],
)
def test_the_database_refuses_a_price_the_column_cannot_hold(store, alice, table, column):
    """PostgreSQL by its numeric(12,2) type, SQLite by the CHECK constraints."""
    product = make_product(store)
    make_tracker(alice, product)
    record(product, success("19.99"))
    row_id = product.pk if table == "products" else PricePoint.objects.get().pk
    with pytest.raises((IntegrityError, DatabaseError)), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f'UPDATE "{table}" SET "{column}" = %s WHERE id = %s', [Decimal(ABSURD), row_id])  # noqa: S608
    product.refresh_from_db()
    assert product.current_price == Decimal("19.99")


def test_a_value_just_above_the_largest_storable_price_is_refused_too(store):
    """SQLite would keep 9999999999.999 and fail to read it back as 12 digits."""
    product = make_product(store)
    with pytest.raises((IntegrityError, DatabaseError)), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute('UPDATE "products" SET "current_price" = %s WHERE id = %s', ["9999999999.999", product.pk])


# ---- a bad row stored by an older release (SQLite only: PostgreSQL never held one) ------------


def _migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)


@pytest.mark.default_db_only
@pytest.mark.django_db(transaction=True)
def test_a_bad_row_from_an_older_release_is_repaired_and_the_product_reads_again(store, alice, admin_client):
    product = make_product(store, asin="B0OLDBAD01", title="Espresso machine")
    tracker = make_tracker(alice, product)
    record(product, success("19.99", list_price=Decimal("25.00")))
    record(product, success("18.99"))  # will become the absurd one
    good, bad = PricePoint.objects.order_by("pk")
    bad_run_id = bad.run_id

    # Back to before the constraints, and write what an older release wrote.
    graph = MigrationExecutor(connection).loader.graph
    (before,) = [
        parent
        for parent in graph.node_map[("tracking", "0006_prices_fit_column")].parents
        if parent.key[0] == "tracking"
    ]
    _migrate([before.key])
    with connection.cursor() as cursor:
        cursor.execute("UPDATE price_history SET price = %s WHERE id = %s", [ABSURD, bad.pk])
        cursor.execute("UPDATE price_history SET list_price = %s WHERE id = %s", [ABSURD, good.pk])
        cursor.execute(
            "UPDATE products SET current_price = %s, list_price = %s WHERE id = %s", [ABSURD, ABSURD, product.pk]
        )
    with pytest.raises(ArithmeticError):  # what every read of the product did (decimal.InvalidOperation)
        list(PricePoint.objects.filter(product=product))

    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    # The unreadable point is gone, its run says why; the good point lost only its bad list price.
    assert list(PricePoint.objects.values_list("pk", "price", "list_price")) == [(good.pk, Decimal("19.99"), None)]
    run = ScrapeRun.objects.get(pk=bad_run_id)
    assert (run.status, run.error_kind) == (RunStatus.FAILED, ErrorKind.IMPLAUSIBLE_PRICE)
    product.refresh_from_db()
    assert (product.current_price, product.list_price) == (None, None)

    client = auth_client(alice)
    for path in ("", f"{tracker.pk}/", f"{tracker.pk}/history/", f"{tracker.pk}/stats/"):
        assert client.get(f"/api/trackers/{path}").status_code == 200, path
    assert client.get("/api/scrape-runs/").status_code == 200
    for model in ("product", "pricepoint", "tracker", "scraperun"):
        assert admin_client.get(reverse(f"admin:tracking_{model}_changelist")).status_code == 200, model
    assert admin_client.get(reverse("admin:tracking_product_change", args=[product.pk])).status_code == 200


# ---- a price far from the recent median is confirmed first ------------------------------------


@pytest.fixture
def tracked(provider, alice) -> Product:
    """A product with a steady history around 20.00 and a tracker waiting for 10.00."""
    product = make_product(Store.objects.get(code="amazon.com"))
    make_tracker(alice, product, target="10.00")
    with_history(product, "20.00", "21.00", "19.00")
    return Product.objects.get(pk=product.pk)


@pytest.mark.parametrize("price", ["1.99", "250.00"], ids=["ten-times-lower", "ten-times-higher"])
def test_a_far_price_is_recorded_when_a_second_fetch_confirms_it(provider, tracked, price):
    provider.queue(tracked.asin, price, price)
    run = scrape_now(tracked)
    assert provider.calls == [tracked.asin, tracked.asin]
    assert run.status == RunStatus.SUCCESS and "confirmed" in run.message
    assert PricePoint.objects.filter(run=run).get().price == Decimal(price)
    if Decimal(price) < 10:  # the pricing error users want to hear about
        assert Notification.objects.count() == 1


@pytest.mark.parametrize(
    "second",
    [
        "20.00",
        "1.50",
        None,
        ScrapeResult(status=ScrapeStatus.FAILED, error_kind=ErrorKind.TIMEOUT, message="read timed out"),
    ],
    ids=["back-to-normal", "another-price", "no-price", "failed"],
)
def test_a_far_price_the_second_fetch_does_not_repeat_is_an_unconfirmed_failure(provider, tracked, second):
    if second is None:
        second = ScrapeResult(status=ScrapeStatus.SUCCESS, availability=Availability.UNAVAILABLE, rule="scripted")
    provider.queue(tracked.asin, "1.99", second)
    run = scrape_now(tracked)
    assert len(provider.calls) == 2
    assert (run.status, run.error_kind) == (RunStatus.FAILED, UNCONFIRMED_PRICE)
    assert "1.99" in run.message and "20.00" in run.message
    assert PricePoint.objects.filter(run=run).count() == 0 and not Notification.objects.exists()
    tracked.refresh_from_db()
    assert tracked.current_price == Decimal("19.00") and tracked.consecutive_failures == 1


def test_a_blocked_confirming_fetch_is_recorded_as_blocked(provider, tracked):
    provider.queue(
        tracked.asin, "1.99", ScrapeResult(status=ScrapeStatus.BLOCKED, error_kind=ErrorKind.CAPTCHA, message="captcha")
    )
    run = scrape_now(tracked)
    assert (run.status, run.error_kind) == (RunStatus.BLOCKED, ErrorKind.CAPTCHA)
    assert PricePoint.objects.filter(run=run).count() == 0


def test_a_price_near_the_median_needs_one_fetch(provider, tracked):
    provider.queue(tracked.asin, "2.01")  # just inside ten times lower than the median (20.00)
    run = scrape_now(tracked)
    assert provider.calls == [tracked.asin] and run.status == RunStatus.SUCCESS


def test_a_first_price_has_nothing_to_be_far_from(provider, alice):
    product = make_product(Store.objects.get(code="amazon.com"))
    make_tracker(alice, product)
    provider.queue(product.asin, "9999.00")
    assert scrape_now(product).status == RunStatus.SUCCESS
    assert provider.calls == [product.asin]


def test_the_median_is_over_the_last_few_prices_only(provider, tracked):
    """A product whose price really moved is compared with where it is now, not its old level."""
    with_history(tracked, *["2.00"] * services.scrape.CONFIRM_WINDOW)
    provider.queue(tracked.asin, "1.99")
    assert scrape_now(tracked).status == RunStatus.SUCCESS
    assert len(provider.calls) == 1


def test_the_confirming_fetch_waits_for_a_request_slot_like_any_fetch(provider, tracked, monkeypatch):
    """Concurrency 1 and 60 requests a minute: the second fetch waits for the next slot (1 s),
    after giving back the run's own place among the fetching (or it would wait for itself)."""
    Store.objects.filter(code="amazon.com").update(concurrency=1, requests_per_minute=60, next_request_at=None)
    slept: list[float] = []
    monkeypatch.setattr(services.scrape.time, "sleep", slept.append)
    provider.queue(tracked.asin, "1.99", "1.99")
    run = scrape_now(tracked)
    assert run.status == RunStatus.SUCCESS and len(provider.calls) == 2
    assert len(slept) == 1 and 0.5 < slept[0] <= 1.0
    store = Store.objects.get(code="amazon.com")
    assert store.next_request_at >= run.started_at + timedelta(seconds=1)


def test_without_a_free_slot_in_time_the_far_price_is_unconfirmed(provider, tracked, monkeypatch, virtual_clock):
    Store.objects.filter(code="amazon.com").update(next_request_at=timezone.now() + timedelta(hours=1))
    # The task polls for a slot until its deadline (tens of seconds): on a virtual clock, at once.
    clock = virtual_clock(services.scrape)
    # The first fetch is still served: the product was claimed with a slot already taken.
    monkeypatch.setattr(services.scrape, "_run_start", _start_with_slot(services.scrape._run_start))
    provider.queue(tracked.asin, "1.99", "1.99")
    run = scrape_now(tracked)
    assert provider.calls == [tracked.asin]
    assert (run.status, run.error_kind) == (RunStatus.FAILED, UNCONFIRMED_PRICE)
    assert "no request slot" in run.message
    # It polled every SLOT_POLL_SECONDS until the deadline, then gave up.
    assert clock.slept and set(clock.slept) == {services.scrape.SLOT_POLL_SECONDS}


def _start_with_slot(original):
    def start(**kwargs):
        run, product, _wait = original(**kwargs)
        return run, product, 0.0

    return start
