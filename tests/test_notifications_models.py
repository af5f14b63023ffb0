"""The outbox's invariants live in the database, not only in the send workflow."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from notifications.emails import format_money
from notifications.models import Notification, NotificationStatus, crossing_key
from tests.tracking_factories import make_product, make_tracker, record, success
from tracking.models import PricePoint


@pytest.fixture
def crossing(alice, store):
    """A tracker and an observation below its target, with no notification row yet."""
    product = make_product(store)
    tracker = make_tracker(alice, product, target="10.00")  # 50.00 is no crossing for it
    record(product, success("50.00"))
    return tracker, PricePoint.objects.get()


def row(crossing, **fields) -> Notification:
    tracker, point = crossing
    values = {
        "user_id": tracker.user_id,
        "tracker": tracker,
        "product_id": point.product_id,
        "price_point": point,
        "price": point.price,
        "target_price": tracker.target_price,
        "currency": "USD",
        "idempotency_key": crossing_key(tracker_id=tracker.pk, price_point_id=point.pk),
    }
    values.update(fields)
    with transaction.atomic():
        return Notification.objects.create(**values)


def test_a_second_row_for_the_same_crossing_is_impossible(crossing):
    row(crossing)

    with pytest.raises(IntegrityError):
        row(crossing, idempotency_key="another-key")


def test_the_idempotency_key_stays_unique_after_the_tracker_is_deleted(crossing):
    tracker, point = crossing
    key = crossing_key(tracker_id=tracker.pk, price_point_id=point.pk)
    row(crossing, tracker=None)

    with pytest.raises(IntegrityError):
        row(crossing, tracker=None, idempotency_key=key)


def test_an_unknown_status_is_refused_by_the_database(crossing):
    with pytest.raises(IntegrityError):
        row(crossing, status="LOST")


def test_sent_and_sent_at_go_together(crossing):
    with pytest.raises(IntegrityError):
        row(crossing, status=NotificationStatus.SENT)
    with pytest.raises(IntegrityError):
        row(crossing, status=NotificationStatus.PENDING, sent_at=timezone.now())


def test_a_sending_row_always_has_a_lease(crossing):
    with pytest.raises(IntegrityError):
        row(crossing, status=NotificationStatus.SENDING, lease_until=None)


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("89.99", "USD", "$89.99"),
        ("1234.50", "USD", "$1,234.50"),
        ("5.00", "EUR", "€5.00"),
        ("1234", "JPY", "¥1,234"),
        (None, "USD", "unknown"),
    ],
)
def test_money_is_shown_the_way_shoppers_read_it(amount, currency, shown):
    from decimal import Decimal

    assert format_money(None if amount is None else Decimal(amount), currency) == shown


@pytest.mark.parametrize(
    ("amount", "currency", "language", "shown"),
    [
        ("1234.50", "EUR", "de-DE", "1.234,50\u00a0€"),
        ("1234.50", "EUR", "fr", "1\u202f234,50\u00a0€"),
        ("1234", "JPY", "ja-JP", "￥1,234"),
        ("123456", "INR", "en-IN", "₹1,23,456.00"),
        ("1234.50", "PLN", "pl", "1\u00a0234,50\u00a0zł"),
        ("9.99", "USD", "", "$9.99"),
    ],
)
def test_money_is_shown_in_the_readers_language(amount, currency, language, shown):
    from decimal import Decimal

    assert format_money(Decimal(amount), currency, language=language) == shown
