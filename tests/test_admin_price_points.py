"""The price history admin: an append-only list, cheap on a big table."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.tracking_factories import make_product, record, success
from tracking.models import PricePoint

CHANGELIST = "/admin/tracking/pricepoint/"


def test_the_history_lists_newest_first_and_is_searched_by_asin(admin_client, store):
    first = make_product(store, asin="B00HISTORY", title="Scale")
    other = make_product(store, asin="B00ELSEWHR")
    record(first, success("30.00"))
    record(first, success("27.50"))
    record(other, success("99.00"))

    response = admin_client.get(CHANGELIST, {"q": "B00HISTORY"})

    assert response.status_code == 200
    assert [str(point.price) for point in response.context["cl"].result_list] == ["27.50", "30.00"]
    assert b"B00HISTORY" in response.content
    assert b"B00ELSEWHR" not in response.content


def test_price_points_cannot_be_added_changed_or_deleted(admin_client, store):
    product = make_product(store)
    record(product, success("30.00"))
    point = PricePoint.objects.get()

    assert admin_client.get(f"{CHANGELIST}{point.pk}/change/").status_code == 200
    assert admin_client.post(f"{CHANGELIST}{point.pk}/change/", {"price": "1.00"}).status_code == 403
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.post(f"{CHANGELIST}{point.pk}/delete/", {"post": "yes"}).status_code == 403
    point.refresh_from_db()
    assert str(point.price) == "30.00"


def test_the_history_list_costs_the_same_queries_for_few_or_many_products(admin_client, store):
    def queries_for(products: int) -> int:
        for index in range(products):
            record(make_product(store, asin=f"B{products:03d}{index:06d}"), success("10.00"))
        with CaptureQueriesContext(connection) as queries:
            admin_client.get(CHANGELIST)
        return len(queries)

    assert queries_for(3) == queries_for(30)
