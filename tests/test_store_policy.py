"""Per-store policy lives in the database: seeded from settings once, then edited in the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from scraping.models import Store, get_store
from scraping.services import store_update_policy
from tests.concurrency import run_concurrently
from tests.tracking_factories import make_product, make_tracker


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("root@example.com", is_staff=True, is_superuser=True))
    return client


@pytest.mark.django_db
def test_a_store_is_created_on_first_use_from_the_settings_defaults(settings):
    # The data migration creates every marketplace's row; one missing (a flushed test database,
    # a store added later) is created on first use the same way.
    Store.objects.filter(code="amazon.com").delete()
    settings.SCRAPE_MIN_INTERVAL_MINUTES = 7
    settings.SCRAPE_RATE_PER_MINUTE = 11
    store = get_store("amazon.com")
    assert store.name == "Amazon.com"
    assert (store.currency, store.language, store.base_url) == ("USD", "en-US", "")
    assert store.enabled
    assert (store.min_interval_minutes, store.requests_per_minute) == (7, 11)
    assert (store.concurrency, store.backoff_base_minutes, store.backoff_max_minutes) == (4, 5, 1440)
    assert (store.breaker_threshold, store.breaker_window_minutes, store.breaker_cooldown_minutes) == (5, 15, 30)
    assert store.breaker_state == Store.BreakerState.CLOSED
    assert store.breaker_opened_at is None
    assert store.next_request_at is None


@pytest.mark.django_db
def test_after_that_the_database_rules_not_the_settings(settings):
    store = get_store("amazon.com")
    Store.objects.filter(pk=store.pk).update(requests_per_minute=3)
    settings.SCRAPE_RATE_PER_MINUTE = 99
    again = get_store("amazon.com")
    assert again.pk == store.pk
    assert again.requests_per_minute == 3
    assert Store.objects.filter(code="amazon.com").count() == 1


@pytest.mark.django_db
def test_a_store_without_a_provider_is_named_after_its_code():
    assert get_store("example.test").name == "example.test"


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_use_creates_one_row():
    pks = run_concurrently([lambda: get_store("amazon.com").pk] * 6)
    assert len(set(pks)) == 1
    assert Store.objects.filter(code="amazon.com").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changes",
    [
        {"requests_per_minute": 0},
        {"concurrency": 0},
        {"min_interval_minutes": 0},
        {"backoff_base_minutes": 10, "backoff_max_minutes": 5},
        {"breaker_threshold": 0},
        {"breaker_window_minutes": 0},
        {"breaker_state": "ajar"},
    ],
)
def test_the_database_refuses_a_policy_that_makes_no_sense(changes):
    store = get_store("amazon.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        Store.objects.filter(pk=store.pk).update(**changes)


@pytest.mark.django_db
def test_store_codes_are_unique():
    get_store("amazon.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        Store.objects.create(code="amazon.com", name="again")


# --- admin -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_lists_stores_with_limits_and_breaker_state(admin_client):
    get_store("amazon.com")
    response = admin_client.get("/admin/scraping/store/")
    assert response.status_code == 200
    assert b"amazon.com" in response.content
    assert b"Closed (scraping)" in response.content


@pytest.mark.django_db
def test_an_admin_edits_limits_but_not_the_breaker(admin_client):
    store = get_store("amazon.com")
    page = admin_client.get(f"/admin/scraping/store/{store.pk}/change/")
    form = page.context["adminform"].form
    assert "requests_per_minute" in form.fields
    for read_only in ("code", "breaker_state", "breaker_opened_at", "breaker_reason", "next_request_at"):
        assert read_only not in form.fields

    data = {name: form.initial.get(name, "") for name in form.fields}
    data.update(requests_per_minute=30, concurrency=2, enabled="")
    response = admin_client.post(f"/admin/scraping/store/{store.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    store.refresh_from_db()
    assert (store.requests_per_minute, store.concurrency, store.enabled) == (30, 2, False)


@pytest.mark.django_db
def test_the_admin_explains_an_impossible_backoff(admin_client):
    store = get_store("amazon.com")
    page = admin_client.get(f"/admin/scraping/store/{store.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form.initial.get(name, "") for name in form.fields}
    data.update(backoff_base_minutes=60, backoff_max_minutes=10, enabled="on")
    response = admin_client.post(f"/admin/scraping/store/{store.pk}/change/", data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors


def _tracked(store, user, asin: str, tracker_interval: int, **product_fields):
    product = make_product(store, asin, **product_fields)
    make_tracker(user, product, interval_minutes=tracker_interval)
    return product


@pytest.mark.django_db
def test_raising_the_store_minimum_in_the_admin_slows_every_tracked_product_down_to_it(admin_client, make_user):
    store = get_store("amazon.com")
    Store.objects.filter(pk=store.pk).update(min_interval_minutes=30)
    user = make_user("alice@example.com")
    last = timezone.now() - timedelta(minutes=10)
    fast = _tracked(
        store,
        user,
        "B000000001",
        30,
        interval_minutes=30,
        last_scraped_at=last,
        next_scrape_at=last + timedelta(minutes=30),
    )
    slow = _tracked(
        store,
        user,
        "B000000002",
        240,
        interval_minutes=240,
        last_scraped_at=last,
        next_scrape_at=last + timedelta(minutes=240),
    )
    untracked = make_product(store, "B000000003", interval_minutes=30, next_scrape_at=None)
    retry = last + timedelta(minutes=5)
    failing = _tracked(
        store, user, "B000000004", 30, interval_minutes=30, last_scraped_at=last, next_scrape_at=retry,
        consecutive_failures=2, backoff_until=retry,
    )  # fmt: skip

    page = admin_client.get(f"/admin/scraping/store/{store.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form.initial.get(name, "") for name in form.fields}
    data.update(min_interval_minutes=120, enabled="on")
    response = admin_client.post(f"/admin/scraping/store/{store.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors

    for product in (fast, slow, untracked, failing):
        product.refresh_from_db()
    assert (fast.interval_minutes, fast.next_scrape_at) == (120, last + timedelta(minutes=120))
    assert (slow.interval_minutes, slow.next_scrape_at) == (240, last + timedelta(minutes=240))
    assert (untracked.interval_minutes, untracked.next_scrape_at) == (30, None)
    assert (failing.interval_minutes, failing.next_scrape_at) == (120, retry)  # its backoff retry stands


@pytest.mark.django_db
def test_lowering_the_store_minimum_lets_a_clamped_product_use_its_trackers_interval(make_user):
    store = get_store("amazon.com")
    Store.objects.filter(pk=store.pk).update(min_interval_minutes=120)
    store.refresh_from_db()
    due = timezone.now() + timedelta(minutes=90)
    product = _tracked(
        store, make_user("alice@example.com"), "B000000001", 60, interval_minutes=120, next_scrape_at=due
    )

    store_update_policy(store=store, min_interval_minutes=30)

    product.refresh_from_db()
    assert (product.interval_minutes, product.next_scrape_at) == (60, due)  # shorter from its next scrape on


@pytest.mark.django_db
def test_saving_a_store_without_changing_its_minimum_leaves_products_alone(make_user):
    store = get_store("amazon.com")
    product = _tracked(store, make_user("alice@example.com"), "B000000001", 60, interval_minutes=61)
    store_update_policy(store=store, requests_per_minute=5, min_interval_minutes=store.min_interval_minutes)
    product.refresh_from_db()
    assert product.interval_minutes == 61
