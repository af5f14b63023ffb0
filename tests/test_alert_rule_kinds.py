"""Each alert rule kind on price walks with its edge cases (issue 13's table), through the
recording path a worker uses: first observations, equal prices, failed and blocked runs between
two successes, out-of-stock gaps, cooldown boundaries, and one email per observation however
many rules fire.

Each case is a walk (``tests/alert_scripts.py``) and the steps that must send an email.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail

from tests.alert_scripts import BLOCKED, FAILED, alerted_at, ok, walk
from tests.tracking_factories import make_product, make_tracker
from tracking.models import AlertRule

DAY = timedelta(days=1)


@pytest.fixture
def product(store):
    return make_product(store, asin="B0RULEKIND", title="Kettle")


def below(price: str, repeat: str = "once", **extra) -> dict:
    return {"kind": "below_target", "price": Decimal(price), "repeat": repeat, **extra}


def drop(percent: str, **extra) -> dict:
    return {"kind": "drop_percent", "percent": Decimal(percent), **extra}


def new_low(days: int | None = None, **extra) -> dict:
    return {"kind": "new_low", "days": days, **extra}


def back_in_stock(**extra) -> dict:
    return {"kind": "back_in_stock", **extra}


def change(direction: str = "both", **extra) -> dict:
    return {"kind": "any_change", "direction": direction, **extra}


CASES = {
    # below_target, once
    "below: the first observation counts": (below("100"), [ok("90")], [0]),
    "below: a price equal to the target counts": (below("100"), [ok("100")], [0]),
    "below: a steady fall alerts once": (below("100"), [ok("110"), ok("90"), ok("80"), ok("70")], [1]),
    "below: a price above re-arms": (below("100"), [ok("90"), ok("110"), ok("90")], [0, 2]),
    "below: a price equal to the target does not re-arm": (below("100"), [ok("90"), ok("100"), ok("90")], [0]),
    "below: a failure between two prices changes nothing": (below("100"), [ok("90"), FAILED, ok("90")], [0]),
    "below: a block between two prices changes nothing": (below("100"), [ok("110"), BLOCKED, ok("90")], [2]),
    "below: no price (out of stock) neither re-arms nor alerts": (
        below("100"),
        [ok("90"), ok(None, "out_of_stock"), ok("90")],
        [0],
    ),
    # below_target, each_lower
    "each lower: every new lower price while below": (
        below("100", "each_lower"),
        [ok("90"), ok("95"), ok("85"), ok("85"), ok("84"), ok("110"), ok("95")],
        [0, 2, 4, 6],
    ),
    "each lower: the lowest is forgotten once re-armed": (
        below("100", "each_lower"),
        [ok("80"), ok("120"), ok("90")],
        [0, 2],
    ),
    # drop_percent
    "drop: the first observation has nothing to compare with": (drop("10"), [ok("50")], []),
    "drop: exactly the percentage counts": (drop("10"), [ok("100"), ok("90")], [1]),
    "drop: a cent less than the percentage does not": (drop("10"), [ok("100"), ok("90.01")], []),
    "drop: small steps never add up": (drop("10"), [ok("100"), ok("95"), ok("90"), ok("85.5")], []),
    "drop: compared with the previous success, over a failure": (drop("10"), [ok("100"), FAILED, ok("90")], [2]),
    "drop: compared with the previous price, over an out-of-stock gap": (
        drop("10"),
        [ok("100"), ok(None, "out_of_stock"), ok("89")],
        [2],
    ),
    "drop: a rise never alerts": (drop("10"), [ok("90"), ok("100")], []),
    # new_low
    "new low: the first observation is no new low": (new_low(), [ok("50")], []),
    "new low: an equal price is no new low": (new_low(), [ok("50"), ok("50")], []),
    "new low: strictly lower than every earlier price": (new_low(), [ok("50"), ok("60"), ok("55"), ok("49")], [3]),
    "new low: over failures and blocks": (new_low(), [ok("50"), FAILED, BLOCKED, ok("45")], [3]),
    "new low: within the window only": (
        new_low(7),
        [ok("40"), ok("50", after=8 * DAY), ok("45")],
        [2],
    ),
    "new low: the window's first day still counts": (new_low(7), [ok("40"), ok("45", after=7 * DAY)], []),
    "new low: an empty window has no low to beat": (new_low(7), [ok("40"), ok("30", after=8 * DAY)], []),
    # back_in_stock
    "back in stock: the first observation is not a return": (back_in_stock(), [ok("50")], []),
    "back in stock: after out of stock": (back_in_stock(), [ok("50"), ok(None, "out_of_stock"), ok("55")], [2]),
    "back in stock: after unavailable": (back_in_stock(), [ok(None, "unavailable"), ok("50")], [1]),
    "back in stock: over a failure in the gap": (
        back_in_stock(),
        [ok(None, "out_of_stock"), FAILED, BLOCKED, ok("50")],
        [3],
    ),
    "back in stock: in stock without a price waits for the price": (
        back_in_stock(),
        [ok(None, "out_of_stock"), ok(None, "in_stock"), ok("50")],
        [2],
    ),
    "back in stock: an unknown state is skipped": (
        back_in_stock(),
        [ok(None, "out_of_stock"), ok("50", "unknown"), ok("50")],
        [2],
    ),
    "back in stock: out of stock with a price shown": (back_in_stock(), [ok("50", "out_of_stock"), ok("50")], [1]),
    "back in stock: in stock twice is one return": (
        back_in_stock(),
        [ok(None, "out_of_stock"), ok("50"), ok("49")],
        [1],
    ),
    # any_change
    "any change: the first observation is no change": (change(), [ok("50")], []),
    "any change: an equal price is no change": (change(), [ok("50"), ok("50")], []),
    "any change: both ways": (change(), [ok("50"), ok("49"), ok("51")], [1, 2]),
    "any change: down only": (change("down"), [ok("50"), ok("49"), ok("51")], [1]),
    "any change: up only": (change("up"), [ok("50"), ok("49"), ok("51")], [2]),
    "any change: compared with the previous success": (change(), [ok("50"), FAILED, ok("50")], []),
    "any change: compared with the previous price, over no price": (
        change(),
        [ok("50"), ok(None, "out_of_stock"), ok("50"), ok("45")],
        [3],
    ),
}


@pytest.mark.parametrize(("rule", "steps", "expected"), CASES.values(), ids=CASES.keys())
def test_each_kind_fires_on_exactly_the_observations_of_the_table(
    rule, steps, expected, alice, product, django_capture_on_commit_callbacks
):
    make_tracker(alice, product, target=None, rules=[rule])

    outcomes = walk(product, steps, capture=django_capture_on_commit_callbacks)

    assert alerted_at(outcomes) == expected
    assert all(outcome.emails <= 1 for outcome in outcomes)


# --- several rules, one observation ---------------------------------------------------------------


def test_several_rules_firing_on_one_observation_send_one_email_listing_them_all(
    alice, product, django_capture_on_commit_callbacks
):
    make_tracker(alice, product, target="45.00", rules=[drop("10"), new_low(), change("down")])

    outcomes = walk(product, [ok("50"), ok("40")], capture=django_capture_on_commit_callbacks)

    assert alerted_at(outcomes) == [1]
    assert outcomes[1].kinds == ["below_target", "new_low", "drop_percent", "any_change"]
    message = mail.outbox[-1]
    assert message.subject == "Price drop: A product is now $40.00 (target $45.00) (+3 more reasons)"
    body = message.body
    for line in (
        "Price at or below a target: at or below your target of 45.00",
        "New lowest price: lowest price ever seen (previous low 50.00)",
        "Price drop by a percentage: -20% from 50.00",
        "Any price change: down 10.00 from 50.00",
    ):
        assert line in body
    assert "Previous price:     $50.00" in body


def test_the_subject_names_the_strongest_reason(alice, product, django_capture_on_commit_callbacks):
    make_tracker(alice, product, target=None, rules=[change(), drop("10"), back_in_stock()])

    walk(
        product,
        [ok("100"), ok("95"), ok("80"), ok(None, "out_of_stock"), ok("81")],
        capture=django_capture_on_commit_callbacks,
    )

    assert [message.subject for message in mail.outbox] == [
        "Price change: A product is now $95.00 (down 5.00 from 100.00)",
        "Price drop: A product is now $80.00 (-15.8% from 95.00) (+1 more reason)",
        "Back in stock: A product at $81.00 (+1 more reason)",
    ]


# --- cooldown -------------------------------------------------------------------------------------


def test_a_cooldown_suppresses_within_it_records_the_firing_and_ends_exactly_on_time(
    alice, product, django_capture_on_commit_callbacks
):
    tracker = make_tracker(alice, product, target=None, rules=[change(cooldown_minutes=60)])
    half = timedelta(minutes=30)

    outcomes = walk(
        product,
        [
            ok("50"),
            ok("49"),
            ok("48", after=half),
            ok("47", after=half - timedelta(seconds=1)),
            ok("46", after=timedelta(seconds=1)),
        ],
        capture=django_capture_on_commit_callbacks,
    )

    assert alerted_at(outcomes) == [1, 4]  # 60 minutes after the alert at step 1: free again
    assert [outcome.status for outcome in outcomes] == ["", "SENT", "SUPPRESSED", "SUPPRESSED", "SENT"]
    assert outcomes[2].suppressed == ["any_change"]
    rule = tracker.rules.get()
    assert rule.last_fired_at is not None  # the alert at step 4, not a suppressed firing


def test_a_cooldown_suppresses_only_its_own_rule(alice, product, django_capture_on_commit_callbacks):
    make_tracker(alice, product, target=None, rules=[change(cooldown_minutes=600), new_low()])

    outcomes = walk(product, [ok("50"), ok("49"), ok("48")], capture=django_capture_on_commit_callbacks)

    assert alerted_at(outcomes) == [1, 2]
    assert (outcomes[2].kinds, outcomes[2].suppressed) == (["new_low"], ["any_change"])
    assert "Any price change" not in mail.outbox[-1].body


def test_a_suppressed_target_firing_still_disarms_it(alice, product, django_capture_on_commit_callbacks):
    tracker = make_tracker(alice, product, target=None, rules=[below("100", cooldown_minutes=180)])

    outcomes = walk(
        product,
        [ok("90"), ok("110"), ok("90"), ok("90", after=timedelta(hours=2))],
        capture=django_capture_on_commit_callbacks,
    )

    assert alerted_at(outcomes) == [0]
    assert outcomes[2].status == "SUPPRESSED"
    assert outcomes[3].status == ""  # the crossing at step 2 disarmed it, cooldown or not
    assert AlertRule.objects.get(tracker=tracker).armed is False


# --- cost -------------------------------------------------------------------------------------------


@pytest.mark.default_db_only
def test_the_history_the_rules_read_is_found_through_indexes_never_a_scan(
    alice, product, django_capture_on_commit_callbacks
):
    """new_low's window and all-time lows, the previous price and the previous stock state: each
    an index search (SQLite's EXPLAIN QUERY PLAN shows no ``SCAN`` of a table)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    rules = [new_low(), new_low(30), drop("10"), back_in_stock(), change()]
    make_tracker(alice, product, target="5.00", rules=rules)
    walk(product, [ok(f"{price}.00") for price in range(40, 20, -1)], capture=django_capture_on_commit_callbacks)
    walk(product, [ok(None, "in_stock")], capture=django_capture_on_commit_callbacks)  # forces the runs lookup

    with CaptureQueriesContext(connection) as captured:
        walk(product, [ok("19.00")], capture=django_capture_on_commit_callbacks)

    reads = [query["sql"] for query in captured.captured_queries if query["sql"].startswith("SELECT")]
    history = [sql for sql in reads if '"price_history"' in sql or '"scrape_runs"' in sql]
    assert history, reads
    for sql in history:
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            plan = [str(row[-1]) for row in cursor.fetchall()]
        assert not [step for step in plan if step.startswith("SCAN ")], (sql, plan)
