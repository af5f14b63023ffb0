"""Every tracking and store admin page opens for a superuser."""

from __future__ import annotations

import pytest

from tests.tracking_factories import make_product, make_tracker, record, success
from tracking.models import PricePoint, ScrapeRun


@pytest.fixture
def one_of_each(store, alice):
    """A store, a tracked product, a run and its price point."""
    product = make_product(store, asin="B00EVERY01", title="Everything")
    tracker = make_tracker(alice, product, target="15.00")
    record(product, success("19.99"))
    return {
        "scraping/store": store.pk,
        "tracking/product": product.pk,
        "tracking/tracker": tracker.pk,
        "tracking/scraperun": ScrapeRun.objects.get().pk,
        "tracking/pricepoint": PricePoint.objects.get().pk,
    }


@pytest.mark.parametrize(
    "model",
    ["scraping/store", "tracking/product", "tracking/tracker", "tracking/scraperun", "tracking/pricepoint"],
)
def test_the_list_and_the_object_page_open(admin_client, one_of_each, model):
    changelist = admin_client.get(f"/admin/{model}/")
    change = admin_client.get(f"/admin/{model}/{one_of_each[model]}/change/")

    assert changelist.status_code == 200
    assert change.status_code == 200


def test_the_admin_index_lists_the_tracking_and_scraping_models(admin_client, one_of_each):
    response = admin_client.get("/admin/")

    assert response.status_code == 200
    for model in one_of_each:
        assert f"/admin/{model}/".encode() in response.content
