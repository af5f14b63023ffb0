"""The tracker admin: find a user's trackers, change them the way the API would."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.tracking_factories import make_product, make_tracker
from tracking.models import Product, Tracker

CHANGELIST = "/admin/tracking/tracker/"


def change_page(tracker: Tracker) -> str:
    return f"{CHANGELIST}{tracker.pk}/change/"


def form_data(tracker: Tracker, **changes) -> dict:
    data = {"target_price": tracker.target_price, "interval_minutes": tracker.interval_minutes}
    if tracker.enabled:
        data["enabled"] = "on"
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def product(store):
    return make_product(store, asin="B00TRACKER", title="Coffee grinder")


def test_the_list_shows_trackers_and_searches_by_email_or_asin(admin_client, store, alice, bob, product):
    make_tracker(alice, product, target="55.00")
    make_tracker(bob, make_product(store, asin="B00OTHER01"), target="12.00")

    by_email = admin_client.get(CHANGELIST, {"q": "alice@"})
    by_asin = admin_client.get(CHANGELIST, {"q": "B00OTHER01"})

    assert by_email.status_code == 200
    assert [t.user.email for t in by_email.context["cl"].result_list] == ["alice@example.com"]
    assert b"B00TRACKER" in by_email.content
    assert b"55.00" in by_email.content
    assert [t.user.email for t in by_asin.context["cl"].result_list] == ["bob@example.com"]


def test_trackers_are_filtered_by_enabled_and_armed(admin_client, store, alice, bob, product):
    make_tracker(alice, product, enabled=False)
    make_tracker(bob, product, armed=False)

    disabled = admin_client.get(CHANGELIST, {"enabled__exact": "0"})
    disarmed = admin_client.get(CHANGELIST, {"armed__exact": "0"})

    assert [t.user.email for t in disabled.context["cl"].result_list] == ["alice@example.com"]
    assert [t.user.email for t in disarmed.context["cl"].result_list] == ["bob@example.com"]


def test_a_new_interval_set_in_the_admin_reschedules_the_product(admin_client, alice, product):
    tracker = make_tracker(alice, product, interval_minutes=60)
    Product.objects.filter(pk=product.pk).update(
        interval_minutes=60, last_scraped_at=timezone.now() - timedelta(minutes=10)
    )

    response = admin_client.post(change_page(tracker), form_data(tracker, interval_minutes=30))

    assert response.status_code == 302, response.context["adminform"].form.errors
    tracker.refresh_from_db()
    product.refresh_from_db()
    assert tracker.interval_minutes == 30
    assert product.interval_minutes == 30
    assert product.next_scrape_at == product.last_scraped_at + timedelta(minutes=30)


def test_an_interval_below_the_store_minimum_is_refused(admin_client, store, alice, product):
    store.min_interval_minutes = 15
    store.save()
    tracker = make_tracker(alice, product, interval_minutes=60)

    response = admin_client.post(change_page(tracker), form_data(tracker, interval_minutes=5))

    assert response.status_code == 200
    assert "minimum interval for amazon.com is 15 minutes" in str(response.context["adminform"].form.errors)
    tracker.refresh_from_db()
    assert tracker.interval_minutes == 60


def test_enabling_a_tracker_past_the_users_limit_is_refused(admin_client, store, make_user, product):
    carol = make_user("carol@example.com", max_trackers=1)
    make_tracker(carol, make_product(store, asin="B00ACTIVE1"))
    tracker = make_tracker(carol, product, enabled=False)

    response = admin_client.post(change_page(tracker), form_data(tracker, enabled="on"))

    assert response.status_code == 200
    assert "already has 1 active trackers" in str(response.context["adminform"].form.errors)
    tracker.refresh_from_db()
    assert not tracker.enabled


def test_user_product_and_alert_state_are_read_only_and_trackers_are_not_added_here(admin_client, alice, product):
    tracker = make_tracker(alice, product)

    page = admin_client.get(change_page(tracker))

    assert page.status_code == 200
    assert b'name="target_price"' in page.content
    assert b'name="user"' not in page.content
    assert b'name="armed"' not in page.content
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403


def test_deleting_the_last_tracker_in_the_admin_unschedules_the_product(admin_client, alice, product):
    tracker = make_tracker(alice, product)
    Product.objects.filter(pk=product.pk).update(next_scrape_at=timezone.now())

    response = admin_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [tracker.pk], "post": "yes"}
    )

    assert response.status_code == 302
    assert not Tracker.objects.filter(pk=tracker.pk).exists()
    product.refresh_from_db()
    assert product.next_scrape_at is None
