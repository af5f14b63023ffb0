"""A user's alert preferences: quiet hours in their time zone (alerts wait, merged per tracker)
and a daily limit (alerts past it are recorded as suppressed), set through the profile API."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine
from django.core import mail

from notifications import services as outbox
from notifications.models import Notification, NotificationStatus
from tests.alert_scripts import ok, walk
from tests.tracking_factories import make_product, make_tracker

ANY_CHANGE = {"kind": "any_change", "direction": "both"}
NEW_LOW = {"kind": "new_low", "days": None}


@pytest.fixture
def product(store):
    return make_product(store, asin="B0QUIETHRS")


def sweep_at(moment: datetime, capture) -> outbox.SweepReport:
    with time_machine.travel(moment, tick=False), capture(execute=True):
        return outbox.notifications_sweep()


# --- quiet hours ---------------------------------------------------------------------------------


def test_quiet_hours_across_midnight_and_a_clock_change_hold_alerts_and_merge_them_per_tracker(
    make_user, product, django_capture_on_commit_callbacks
):
    # Berlin, 22:00-07:00, the night the clocks go forward (2026-03-29, 02:00 CET -> 03:00 CEST).
    dora = make_user("dora@example.com", timezone="Europe/Berlin", quiet_hours_start=time(22), quiet_hours_end=time(7))
    make_tracker(dora, product, target=None, rules=[ANY_CHANGE, NEW_LOW])
    capture = django_capture_on_commit_callbacks
    before = datetime(2026, 3, 28, 20, 0, tzinfo=UTC)  # 21:00 in Berlin

    outcomes = walk(
        product,
        [
            ok("50.00", after=timedelta(0)),  # 21:00: the first price
            ok("49.00", after=timedelta(minutes=59)),  # 21:59: still the evening, sent at once
            ok("48.00", after=timedelta(minutes=1)),  # 22:00: quiet, waits
            ok("47.00", after=timedelta(hours=3, minutes=30)),  # 02:30 UTC = 04:30 CEST: merged
        ],
        capture=capture,
        start=before,
    )

    assert [outcome.status for outcome in outcomes] == ["", "SENT", "WAITING", "MERGED"]
    assert len(mail.outbox) == 1
    waiting = Notification.objects.get(status=NotificationStatus.WAITING)
    # 07:00 in Berlin after the change is 05:00 UTC (it would have been 06:00 the day before).
    assert waiting.next_attempt_at == datetime(2026, 3, 29, 5, 0, tzinfo=UTC)
    assert Notification.objects.get(status=NotificationStatus.MERGED).merged_into == waiting

    assert sweep_at(datetime(2026, 3, 29, 4, 59, 59, tzinfo=UTC), capture).quiet_hours_ended == 0
    assert len(mail.outbox) == 1

    assert sweep_at(datetime(2026, 3, 29, 5, 0, tzinfo=UTC), capture).quiet_hours_ended == 1
    assert len(mail.outbox) == 2
    morning = mail.outbox[1]
    assert morning.subject.startswith("New low: A product is now $47.00")
    assert "These alerts came in during your quiet hours" in morning.body
    assert "down 1.00 from 49.00" in morning.body and "down 1.00 from 48.00" in morning.body
    waiting.refresh_from_db()
    assert waiting.status == NotificationStatus.SENT
    assert [reason["observed_price"] for reason in waiting.reasons] == ["48.00", "48.00", "47.00", "47.00"]

    # After the night, alerts go out at once again.
    later = walk(product, [ok("46.00")], capture=capture, start=datetime(2026, 3, 29, 6, 0, tzinfo=UTC))
    assert later[0].status == "SENT"


def test_quiet_hours_within_one_day(make_user, product, django_capture_on_commit_callbacks):
    erin = make_user("erin@example.com", timezone="Asia/Tokyo", quiet_hours_start=time(13), quiet_hours_end=time(14))
    make_tracker(erin, product, target=None, rules=[ANY_CHANGE])
    capture = django_capture_on_commit_callbacks
    eleven_in_tokyo = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)

    outcomes = walk(
        product,
        [ok("10.00"), ok("11.00"), ok("12.00"), ok("13.00", after=timedelta(minutes=59, seconds=59))],
        capture=capture,
        start=eleven_in_tokyo - timedelta(hours=1),
    )
    sweep_at(eleven_in_tokyo + timedelta(hours=3), capture)  # 14:00 in Tokyo
    after = walk(
        product, [ok("14.00", after=timedelta(0))], capture=capture, start=eleven_in_tokyo + timedelta(hours=3)
    )

    # 11:00 (first price), 12:00 (sent), 13:00 (waits until 14:00), 13:59:59 (merged), 14:00 (sent)
    assert [outcome.status for outcome in [*outcomes, *after]] == ["", "SENT", "WAITING", "MERGED", "SENT"]
    assert len(mail.outbox) == 3


def test_a_waiting_alert_released_by_the_sweep_is_not_merged_into_again(
    make_user, product, django_capture_on_commit_callbacks
):
    fred = make_user("fred@example.com", quiet_hours_start=time(0), quiet_hours_end=time(6))
    make_tracker(fred, product, target=None, rules=[ANY_CHANGE])
    capture = django_capture_on_commit_callbacks
    night = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)
    walk(product, [ok("10.00"), ok("11.00")], capture=capture, start=night)

    sweep_at(datetime(2026, 6, 1, 6, 0, tzinfo=UTC), capture)
    # Quiet hours again the next night: a new waiting alert, not the one already sent.
    outcomes = walk(product, [ok("12.00")], capture=capture, start=night + timedelta(days=1))

    assert outcomes[0].status == "WAITING"
    assert Notification.objects.filter(status=NotificationStatus.SENT).count() == 1


# --- daily limit ---------------------------------------------------------------------------------


def test_the_daily_limit_counts_the_users_own_day_and_records_what_it_holds_back(
    make_user, product, django_capture_on_commit_callbacks
):
    gus = make_user("gus@example.com", timezone="America/New_York", max_alerts_per_day=2)
    make_tracker(gus, product, target=None, rules=[ANY_CHANGE])
    ten_am_in_new_york = datetime(2026, 1, 10, 15, 0, tzinfo=UTC)

    outcomes = walk(
        product,
        [
            ok("10.00", after=timedelta(0)),
            ok("11.00"),  # 11:00 local: 1st
            ok("12.00"),  # 12:00: 2nd
            ok("13.00"),  # 13:00: over the limit
            ok("14.00", after=timedelta(hours=10)),  # 23:00 local, 04:00 UTC the next day: same day
            ok("15.00"),  # 00:00 local: a new day
        ],
        capture=django_capture_on_commit_callbacks,
        start=ten_am_in_new_york,
    )

    assert [outcome.status for outcome in outcomes] == ["", "SENT", "SENT", "SUPPRESSED", "SUPPRESSED", "SENT"]
    assert len(mail.outbox) == 3
    held_back = Notification.objects.filter(status=NotificationStatus.SUPPRESSED).first()
    assert held_back is not None
    assert [reason["suppressed"] for reason in held_back.reasons] == ["daily_limit"]


def test_merged_alerts_do_not_count_toward_the_daily_limit(make_user, product, django_capture_on_commit_callbacks):
    hana = make_user("hana@example.com", max_alerts_per_day=1, quiet_hours_start=time(22), quiet_hours_end=time(6))
    make_tracker(hana, product, target=None, rules=[ANY_CHANGE])

    outcomes = walk(
        product,
        [ok("10.00"), ok("11.00"), ok("12.00"), ok("13.00")],
        capture=django_capture_on_commit_callbacks,
        start=datetime(2026, 7, 1, 21, 0, tzinfo=UTC),
    )

    assert [outcome.status for outcome in outcomes] == ["", "WAITING", "MERGED", "MERGED"]


# --- the profile API ---------------------------------------------------------------------------------


def test_alice_sets_her_time_zone_quiet_hours_and_daily_limit(alice, alice_client):
    response = alice_client.patch(
        "/api/auth/me/",
        {"timezone": "Europe/Berlin", "quiet_hours": {"start": "22:30", "end": "07:00"}, "max_alerts_per_day": 5},
        format="json",
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["timezone"], body["quiet_hours"], body["max_alerts_per_day"]) == (
        "Europe/Berlin",
        {"start": "22:30", "end": "07:00"},
        5,
    )
    alice.refresh_from_db()
    assert (alice.quiet_hours_start, alice.quiet_hours_end) == (time(22, 30), time(7))

    cleared = alice_client.patch("/api/auth/me/", {"quiet_hours": None, "max_alerts_per_day": None}, format="json")
    assert (cleared.json()["quiet_hours"], cleared.json()["max_alerts_per_day"]) == (None, None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"quiet_hours": {"start": "22:00"}}, "quiet_hours"),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "quiet_hours"),
        ({"quiet_hours": {"start": "7:00", "end": "08:00"}}, "quiet_hours"),
        ({"quiet_hours": {"start": "08:00", "end": "08:00"}}, "quiet_hours"),
        ({"quiet_hours": "22:00-07:00"}, "quiet_hours"),
        ({"max_alerts_per_day": 0}, "max_alerts_per_day"),
        ({"max_rules_per_tracker": 1000}, None),  # read-only: ignored
    ],
)
def test_bad_preferences_are_a_400_naming_the_field(alice, alice_client, body, field):
    response = alice_client.patch("/api/auth/me/", body, format="json")

    if field is None:
        assert response.status_code == 200
        alice.refresh_from_db()
        assert alice.max_rules_per_tracker == 10
    else:
        assert response.status_code == 400
        assert field in response.json()["errors"]
