"""The tracker admin: find a user's trackers, change them the way the API would."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.tracking_factories import make_product, make_tracker
from tracking.models import Product, Tracker

CHANGELIST = "/admin/tracking/tracker/"


def change_page(tracker: Tracker) -> str:
    return f"{CHANGELIST}{tracker.pk}/change/"


def form_data(tracker: Tracker, *, rules: list[dict] | None = None, **changes) -> dict:
    """The change form as the browser posts it: the tracker's fields and its rules inline.

    ``rules``: the inline rows (default: the stored rules unchanged); a row with ``id`` is an
    existing rule, ``DELETE: "on"`` deletes it, a row without ``id`` adds one.
    """
    data: dict[str, object] = {"interval_minutes": tracker.interval_minutes}
    if tracker.enabled:
        data["enabled"] = "on"
    if rules is None:
        rules = [
            {
                "id": rule.pk,
                "kind": rule.kind,
                "price": rule.price,
                "repeat": rule.repeat,
                "percent": rule.percent,
                "days": rule.days,
                "direction": rule.direction,
                "cooldown_minutes": rule.cooldown_minutes,
            }
            for rule in tracker.rules.order_by("pk")
        ]
    initial = sum(1 for row in rules if "id" in row)
    data.update({"rules-TOTAL_FORMS": len(rules), "rules-INITIAL_FORMS": initial, "rules-MAX_NUM_FORMS": 1000})
    for index, row in enumerate(rules):
        data.update({f"rules-{index}-{key}": value for key, value in row.items()})
        data[f"rules-{index}-tracker"] = tracker.pk
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
    assert b'name="rules-0-price"' in page.content  # the target is the below_target rule, inline
    assert b'name="user"' not in page.content
    assert b'name="rules-0-armed"' not in page.content
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


# --- alert rules, inline ---------------------------------------------------------------------------


def test_rules_are_added_changed_and_deleted_inline_through_the_rule_services(
    admin_client, alice, product, django_capture_on_commit_callbacks
):
    from django.core import mail

    from tests.tracking_factories import record, success

    tracker = make_tracker(alice, product, target="100.00", rules=[{"kind": "back_in_stock"}])
    record(product, success("90.00"))  # alerted at once by the target, now disarmed
    target, stock = tracker.rules.order_by("pk")
    mail.outbox.clear()
    rows = [
        {"id": target.pk, "kind": "below_target", "price": "95.00", "repeat": "once", "cooldown_minutes": 0},
        {"id": stock.pk, "kind": "back_in_stock", "cooldown_minutes": 0, "DELETE": "on"},
        {"kind": "drop_percent", "percent": "12.5", "cooldown_minutes": 30},
    ]

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(change_page(tracker), form_data(tracker, rules=rows))

    assert response.status_code == 302, response.context["inline_admin_formsets"][0].formset.errors
    assert sorted(tracker.rules.values_list("kind", "price", "percent", "repeat", "cooldown_minutes")) == [
        ("below_target", Decimal("95.00"), None, "once", 0),
        ("drop_percent", None, Decimal("12.50"), "", 30),
    ]
    assert mail.outbox == []  # a new target the price was already below while disarmed: no second alert


@pytest.mark.parametrize(
    ("row", "error"),
    [
        ({"kind": "drop_percent", "percent": "150"}, "above 0 and below 100"),
        ({"kind": "drop_percent", "percent": "10", "price": "5.00"}, "A drop_percent rule has no price."),
        ({"kind": "below_target"}, "needs a price"),
    ],
)
def test_an_invalid_rule_is_a_form_error_and_nothing_is_saved(admin_client, alice, product, row, error):
    tracker = make_tracker(alice, product, target="100.00")
    existing = {"id": tracker.rules.get().pk, "kind": "below_target", "price": "100.00", "repeat": "once"}

    response = admin_client.post(
        change_page(tracker), form_data(tracker, rules=[existing, {**row, "cooldown_minutes": 0}])
    )

    assert response.status_code == 200
    assert error in str(response.context["inline_admin_formsets"][0].formset.errors)
    assert tracker.rules.count() == 1


def test_the_rules_per_tracker_limit_holds_in_the_admin(admin_client, make_user, product):
    kim = make_user("kim@example.com", max_rules_per_tracker=1)
    tracker = make_tracker(kim, product, target="100.00")
    existing = {"id": tracker.rules.get().pk, "kind": "below_target", "price": "100.00", "repeat": "once"}

    response = admin_client.post(
        change_page(tracker), form_data(tracker, rules=[existing, {"kind": "back_in_stock", "cooldown_minutes": 0}])
    )

    assert response.status_code == 200
    assert "at most 1 alert rules per tracker" in str(
        response.context["inline_admin_formsets"][0].formset.non_form_errors()
    )
    assert tracker.rules.count() == 1


def test_trackers_are_filtered_by_rule_kind_and_listed_with_their_rules(admin_client, store, alice, bob, product):
    make_tracker(alice, product, target="50.00", rules=[{"kind": "new_low", "days": 30}])
    make_tracker(bob, make_product(store, asin="B00WATCH01"), target=None)

    new_low = admin_client.get(CHANGELIST, {"rule_kind": "new_low"})
    watch_only = admin_client.get(CHANGELIST, {"rule_kind": "none"})

    assert [t.user.email for t in new_low.context["cl"].result_list] == ["alice@example.com"]
    assert [t.user.email for t in watch_only.context["cl"].result_list] == ["bob@example.com"]
    assert b"at or below 50.00; lowest price in 30 days" in new_low.content
