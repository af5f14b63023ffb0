"""A manual scrape refused as too soon says why (issue #13): after a failed check, that it failed
and when the automatic retry is due, not "checked 0 minutes ago"."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from scraping.results import ErrorKind, ScrapeResult, ScrapeStatus
from tests.conftest import auth_client
from tests.tracking_factories import make_product, make_tracker, record, success
from tracking.models import Product

pytestmark = pytest.mark.django_db


@pytest.fixture
def hourly(store):
    """amazon.com with its production minimum: a product is checked at most once an hour."""
    store.min_interval_minutes = 60
    store.save()
    return store


@pytest.fixture
def tracker(alice, hourly):
    return make_tracker(alice, make_product(hourly))


def scrape_at(moment, user, tracker) -> dict:
    with time_machine.travel(moment, tick=False):
        response = auth_client(user).post(f"/api/trackers/{tracker.pk}/scrape/")
    assert response.status_code == 429
    return response.json()


def test_after_a_failed_check_it_says_so_and_when_the_retry_is_due(alice, tracker):
    checked = timezone.now()
    with time_machine.travel(checked, tick=False):
        record(tracker.product, ScrapeResult(status=ScrapeStatus.FAILED, error_kind=ErrorKind.TIMEOUT))
    retry_at = Product.objects.get(pk=tracker.product_id).next_scrape_at
    asked = checked + timedelta(seconds=10)

    body = scrape_at(asked, alice, tracker)

    retry_minutes = math.ceil((retry_at - asked).total_seconds() / 60)
    assert body["code"] == "too_soon"
    assert body["message"] == (
        f"The last check of this product failed less than a minute ago; it is retried automatically in "
        f"{retry_minutes} minutes. A manual check is possible in 60 minutes "
        "(amazon.com is checked at most every 60 minutes)."
    )
    assert body["retry_after_seconds"] == 3600 - 10


def test_when_the_retry_is_already_due_it_says_so(alice, tracker):
    checked = timezone.now()
    with time_machine.travel(checked, tick=False):
        record(tracker.product, ScrapeResult(status=ScrapeStatus.BLOCKED, error_kind=ErrorKind.CAPTCHA))
    retry_at = Product.objects.get(pk=tracker.product_id).next_scrape_at

    body = scrape_at(retry_at + timedelta(seconds=1), alice, tracker)

    assert "failed" in body["message"] and "the automatic retry is due now" in body["message"]
    assert body["retry_after_seconds"] > 0


def test_after_a_successful_check_it_says_when_it_was_checked_in_words(alice, tracker):
    checked = timezone.now()
    with time_machine.travel(checked, tick=False):
        record(tracker.product, success("10.00"))

    just_now = scrape_at(checked + timedelta(seconds=10), alice, tracker)
    later = scrape_at(checked + timedelta(minutes=5, seconds=10), alice, tracker)

    assert just_now["message"] == (
        "This product was checked less than a minute ago; amazon.com is checked at most every 60 minutes. "
        "Try again in 60 minutes."
    )
    assert later["message"].startswith("This product was checked 5 minutes ago;")
    assert later["message"].endswith("Try again in 55 minutes.")
    assert (just_now["retry_after_seconds"], later["retry_after_seconds"]) == (3590, 3290)
