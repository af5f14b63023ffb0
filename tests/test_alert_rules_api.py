"""The alert rules API: rules inline on a new tracker, the ``target_price`` shorthand, and the
``/api/trackers/{id}/rules/`` sub-resource with its checks and limits."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail

from tests.tracking_factories import make_product, make_tracker, record, success
from tracking.models import AlertRule, Product, Tracker


def rules_url(tracker: Tracker | int, rule: AlertRule | int | None = None) -> str:
    tracker_id = tracker if isinstance(tracker, int) else tracker.pk
    url = f"/api/trackers/{tracker_id}/rules/"
    if rule is not None:
        url += f"{rule if isinstance(rule, int) else rule.pk}/"
    return url


@pytest.fixture
def product(store):
    return make_product(store, asin="B0RULESAPI", next_scrape_at=None)


# --- creating trackers ------------------------------------------------------------------------


def test_a_tracker_is_created_with_rules_inline_and_the_target_shorthand(alice_client, provider):
    response = alice_client.post(
        "/api/trackers/",
        {
            "asin": "B0823MDHDJ",
            "target_price": "90.00",
            "rules": [
                {"kind": "drop_percent", "percent": "12.5", "cooldown_minutes": 60},
                {"kind": "new_low", "days": 30},
                {"kind": "back_in_stock"},
                {"kind": "any_change", "direction": "down"},
                {"kind": "below_target", "price": "50", "repeat": "each_lower"},
            ],
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["target_price"], body["armed"]) == ("90.00", True)
    rules = [{key: value for key, value in rule.items() if key != "id"} for rule in body["rules"]]
    state = {"armed": True, "last_fired_at": None}
    assert rules == [
        {"kind": "below_target", "price": "90.00", "repeat": "once", "cooldown_minutes": 0, **state},
        {"kind": "drop_percent", "percent": "12.50", "cooldown_minutes": 60, **state},
        {"kind": "new_low", "days": 30, "cooldown_minutes": 0, **state},
        {"kind": "back_in_stock", "cooldown_minutes": 0, **state},
        {"kind": "any_change", "direction": "down", "cooldown_minutes": 0, **state},
        {"kind": "below_target", "price": "50.00", "repeat": "each_lower", "cooldown_minutes": 0, **state},
    ]
    assert alice_client.get(f"/api/trackers/{body['id']}/").json()["rules"] == body["rules"]


def test_a_tracker_without_a_target_or_rules_only_watches(
    alice, alice_client, provider, django_capture_on_commit_callbacks
):
    provider.queue("B0823MDHDJ", "1.00")
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post("/api/trackers/", {"asin": "B0823MDHDJ"}, format="json")

    assert response.status_code == 201, response.json()
    body = alice_client.get(f"/api/trackers/{response.json()['id']}/").json()
    assert (body["target_price"], body["armed"], body["rules"]) == (None, None, [])
    assert body["product"]["current_price"] == "1.00"  # the history is recorded
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        ([{"kind": "drop_percent"}], "rules.0.percent"),
        ([{"kind": "back_in_stock"}, {"kind": "drop_percent", "percent": "0"}], "rules.1.percent"),
        ([{"kind": "drop_percent", "percent": "100"}], "rules.0.percent"),
        ([{"kind": "drop_percent", "percent": "12.345"}], "rules.0.percent"),
        ([{"kind": "drop_percent", "percent": "10", "price": "5.00"}], "rules.0.price"),
        ([{"kind": "new_low", "days": 0}], "rules.0.days"),
        ([{"kind": "new_low", "days": 3651}], "rules.0.days"),
        ([{"kind": "new_low", "days": "30"}], "rules.0.days"),
        ([{"kind": "any_change", "direction": "sideways"}], "rules.0.direction"),
        ([{"kind": "below_target"}], "rules.0.price"),
        ([{"kind": "below_target", "price": "10", "repeat": "twice"}], "rules.0.repeat"),
        ([{"kind": "back_in_stock", "days": None}], "rules.0.days"),
        ([{"kind": "back_in_stock", "cooldown_minutes": -1}], "rules.0.cooldown_minutes"),
        ([{"kind": "crystal_ball"}], "rules.0.kind"),
        ([{"kind": "drop_percent", "percentage": "10"}], "rules.0.percentage"),
        (["drop_percent"], "rules.0"),
        ({"kind": "back_in_stock"}, "rules"),
    ],
)
def test_invalid_inline_rules_are_a_400_naming_the_rule_and_field_and_create_nothing(
    alice_client, provider, rules, field
):
    response = alice_client.post("/api/trackers/", {"asin": "B0823MDHDJ", "rules": rules}, format="json")

    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"], response.json()
    assert not Tracker.objects.exists() and not Product.objects.exists()


def test_more_inline_rules_than_the_account_allows_is_a_403_and_creates_nothing(alice, alice_client, provider):
    alice.max_rules_per_tracker = 2
    alice.save()

    response = alice_client.post(
        "/api/trackers/",
        {"asin": "B0823MDHDJ", "target_price": "10", "rules": [{"kind": "back_in_stock"}, {"kind": "new_low"}]},
        format="json",
    )

    assert response.status_code == 403
    assert response.json()["code"] == "rule_limit"
    assert not Tracker.objects.exists() and not AlertRule.objects.exists()


# --- the sub-resource ---------------------------------------------------------------------------


def test_alice_lists_adds_reads_changes_and_deletes_her_rules(alice, alice_client, product):
    tracker = make_tracker(alice, product, target="100.00")

    listed = alice_client.get(rules_url(tracker)).json()
    assert [rule["kind"] for rule in listed["results"]] == ["below_target"]

    added = alice_client.post(rules_url(tracker), {"kind": "drop_percent", "percent": 10}, format="json")
    assert added.status_code == 201, added.json()
    rule_id = added.json()["id"]
    assert added.json() == {
        "id": rule_id,
        "kind": "drop_percent",
        "percent": "10.00",
        "cooldown_minutes": 0,
        "armed": True,
        "last_fired_at": None,
    }
    assert alice_client.get(rules_url(tracker, rule_id)).json() == added.json()

    changed = alice_client.patch(rules_url(tracker, rule_id), {"percent": "7.5", "cooldown_minutes": 30}, format="json")
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["percent"], changed.json()["cooldown_minutes"]) == ("7.50", 30)

    assert alice_client.delete(rules_url(tracker, rule_id)).status_code == 204
    assert list(tracker.rules.values_list("kind", flat=True)) == ["below_target"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "any_change"}, "kind"),
        ({"price": "5.00"}, "price"),
        ({"days": 10}, "days"),
        ({"percent": "150"}, "percent"),
        ({"armed": False}, "armed"),
        ({"last_fired_at": None}, "last_fired_at"),
    ],
)
def test_a_rules_kind_and_state_cannot_be_changed_nor_parameters_of_another_kind_set(
    alice, alice_client, product, body, field
):
    tracker = make_tracker(alice, product, target=None, rules=[{"kind": "drop_percent", "percent": Decimal("10")}])

    response = alice_client.patch(rules_url(tracker, tracker.rules.get()), body, format="json")

    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"]
    assert tracker.rules.get().percent == Decimal("10.00")


def test_a_new_days_of_null_means_all_time(alice, alice_client, product):
    tracker = make_tracker(alice, product, target=None, rules=[{"kind": "new_low", "days": 30}])

    response = alice_client.patch(rules_url(tracker, tracker.rules.get()), {"days": None}, format="json")

    assert response.status_code == 200
    assert response.json()["days"] is None


def test_the_rules_per_tracker_limit_is_the_accounts(alice, alice_client, product):
    alice.max_rules_per_tracker = 2
    alice.save()
    tracker = make_tracker(alice, product, target="10.00")

    second = alice_client.post(rules_url(tracker), {"kind": "back_in_stock"}, format="json")
    third = alice_client.post(rules_url(tracker), {"kind": "new_low"}, format="json")

    assert second.status_code == 201
    assert third.status_code == 403
    assert third.json()["code"] == "rule_limit"
    assert "limit for your account (2)" in third.json()["message"]
    assert tracker.rules.count() == 2


def test_another_users_tracker_and_rules_are_404s(alice, bob, bob_client, product):
    tracker = make_tracker(alice, product, target="10.00")
    rule = tracker.rules.get()

    assert bob_client.get(rules_url(tracker)).status_code == 404
    assert bob_client.post(rules_url(tracker), {"kind": "back_in_stock"}, format="json").status_code == 404
    assert bob_client.get(rules_url(tracker, rule)).status_code == 404
    assert bob_client.patch(rules_url(tracker, rule), {"price": "1.00"}, format="json").status_code == 404
    assert bob_client.delete(rules_url(tracker, rule)).status_code == 404
    # Bob's own tracker in the URL does not reach Alice's rule either.
    bobs = make_tracker(bob, make_product(product.store, asin="B0BOBSRULE"), target="10.00")
    assert bob_client.get(rules_url(bobs, rule)).status_code == 404
    assert AlertRule.objects.get(pk=rule.pk).price == Decimal("10.00")


# --- compatibility and evaluation on change ----------------------------------------------------


def test_patching_target_price_changes_the_first_below_target_rule(alice, alice_client, product):
    tracker = make_tracker(alice, product, target="100.00", rules=[{"kind": "back_in_stock"}])

    response = alice_client.patch(f"/api/trackers/{tracker.pk}/", {"target_price": "80.00"}, format="json")

    assert response.status_code == 200
    assert response.json()["target_price"] == "80.00"
    assert sorted(tracker.rules.values_list("kind", "price")) == [
        ("back_in_stock", None),
        ("below_target", Decimal("80.00")),
    ]


def test_patching_target_price_of_a_watch_only_tracker_adds_the_rule(alice, alice_client, product):
    tracker = make_tracker(alice, product, target=None)

    response = alice_client.patch(f"/api/trackers/{tracker.pk}/", {"target_price": "80.00"}, format="json")

    assert (response.status_code, response.json()["target_price"]) == (200, "80.00")
    assert tracker.rules.get().kind == "below_target"


def test_a_new_target_above_the_current_price_alerts_at_once(
    alice, alice_client, product, django_capture_on_commit_callbacks
):
    tracker = make_tracker(alice, product, target=None)
    record(product, success("90.00"))

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(rules_url(tracker), {"kind": "below_target", "price": "95.00"}, format="json")

    assert response.status_code == 201
    assert response.json()["armed"] is False and response.json()["last_fired_at"] is not None
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject.endswith("is now $90.00 (target $95.00)")


def test_other_kinds_wait_for_the_next_observation(alice, alice_client, product, django_capture_on_commit_callbacks):
    tracker = make_tracker(alice, product, target=None)
    record(product, success("100.00"))
    record(product, success("50.00"))  # a 50% drop, before the rule existed

    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(rules_url(tracker), {"kind": "drop_percent", "percent": "10"}, format="json")

    assert mail.outbox == []


def test_a_lower_price_on_a_disarmed_rule_re_arms_it(alice, alice_client, product, django_capture_on_commit_callbacks):
    tracker = make_tracker(alice, product, target="100.00")
    with django_capture_on_commit_callbacks(execute=True):
        record(product, success("90.00"))
    rule = tracker.rules.get()

    response = alice_client.patch(rules_url(tracker, rule), {"price": "80.00"}, format="json")

    assert response.json()["armed"] is True
    assert len(mail.outbox) == 1
