"""Runs that ``manage.py rescrape_all`` asked for are labelled "rescrape" (issue #13).

They were labelled "Retry" in the admin whenever the product had failed before, because the
dispatcher labels a product with failures as a retry. The failure count is the product's history
and stays; the operator's request is recorded on the product until the dispatcher claims it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.tracking_factories import make_product, make_tracker
from tracking import services
from tracking.models import Product, ScrapeRun, Trigger

pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued(monkeypatch) -> dict[int, str]:
    """The trigger of each enqueued scrape, by product id (nothing is fetched)."""
    calls: dict[int, str] = {}
    monkeypatch.setattr(
        services.queue, "enqueue_scrape", lambda **task: calls.__setitem__(task["product_id"], task["trigger"])
    )
    return calls


def tracked(store, user, asin: str, **fields) -> Product:
    product = make_product(store, asin, **fields)
    make_tracker(user, product)
    return product


def rescrape_everything(store) -> None:
    services.products_rescrape_all(store=store)


def test_a_rescrape_is_labelled_so_whether_the_product_was_failing_or_not(store, alice, enqueued):
    later = timezone.now() + timedelta(hours=1)
    failing = tracked(store, alice, "B000000001", consecutive_failures=3, backoff_until=later, next_scrape_at=later)
    healthy = tracked(store, alice, "B000000002", next_scrape_at=later)

    rescrape_everything(store)
    services.dispatch_due_products()

    assert enqueued == {failing.pk: Trigger.RESCRAPE, healthy.pk: Trigger.RESCRAPE}
    failing.refresh_from_db()
    assert failing.consecutive_failures == 3  # the history stays; only the backoff was lifted
    assert failing.backoff_until is None


def test_the_request_is_answered_once_later_checks_are_labelled_as_usual(store, alice, enqueued):
    failing = tracked(store, alice, "B000000001", consecutive_failures=1)
    healthy = tracked(store, alice, "B000000002")
    rescrape_everything(store)
    services.dispatch_due_products()
    assert Product.objects.filter(rescrape_requested_at__isnull=False).count() == 0

    # Their claims lapse unfinished (tasks lost): the next dispatch is an ordinary one.
    Product.objects.update(claimed_until=timezone.now() - timedelta(seconds=1), next_scrape_at=timezone.now())
    enqueued.clear()
    services.dispatch_due_products()

    assert enqueued == {failing.pk: Trigger.RETRY, healthy.pk: Trigger.SCHEDULED}


def test_a_manual_check_in_between_answers_the_rescrape(store, alice, enqueued):
    product = tracked(store, alice, "B000000001", next_scrape_at=timezone.now() + timedelta(hours=1))
    rescrape_everything(store)

    assert services.product_claim(product_id=product.pk) is not None

    assert Product.objects.get(pk=product.pk).rescrape_requested_at is None


def test_the_run_records_the_rescrape_trigger(store, alice, provider, django_capture_on_commit_callbacks):
    product = tracked(store, alice, "B000000001", consecutive_failures=2, next_scrape_at=timezone.now())
    rescrape_everything(store)

    with django_capture_on_commit_callbacks(execute=True):
        services.dispatch_due_products(now=timezone.now() + timedelta(seconds=1))

    run = ScrapeRun.objects.get(product=product)
    assert (run.trigger, run.get_trigger_display()) == ("rescrape", "Rescrape requested by an operator")
