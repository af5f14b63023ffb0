"""Invariants held by the database, not only by Python."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from tests.tracking_factories import make_product, make_tracker, record, success
from tracking.models import AppendOnlyError, PricePoint, Product, ScrapeRun


def test_a_product_exists_once_per_store_and_asin(store):
    make_product(store, "B000000001")
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.create(store=store, asin="B000000001")


def test_a_user_tracks_a_product_once(store, alice):
    product = make_product(store)
    make_tracker(alice, product)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_tracker(alice, product, "50.00")


def test_a_target_price_must_be_positive(store, alice):
    product = make_product(store)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_tracker(alice, product, "0.00")


def test_price_points_are_append_only(store, alice):
    product = make_product(store)
    make_tracker(alice, product)
    record(product, success("12.00"))
    point = PricePoint.objects.get()
    point.price = Decimal("1.00")
    with pytest.raises(AppendOnlyError):
        point.save()
    with pytest.raises(AppendOnlyError):
        point.delete()
    assert PricePoint.objects.get().price == Decimal("12.00")


def test_a_run_has_at_most_one_price_point(store, alice):
    product = make_product(store)
    make_tracker(alice, product)
    run = record(product, success("12.00"))
    with pytest.raises(IntegrityError), transaction.atomic():
        PricePoint.objects.create(
            product=product, run=run, price=Decimal("13.00"), currency="USD", availability="in_stock",
            observed_at=timezone.now(),
        )  # fmt: skip


def test_a_claim_is_executed_by_one_run_only(store):
    product = make_product(store)
    run = ScrapeRun.objects.create(product=product)
    with pytest.raises(IntegrityError), transaction.atomic():
        ScrapeRun.objects.create(product=product, claim_token=run.claim_token)


def test_a_finished_run_cannot_be_running(store):
    product = make_product(store)
    with pytest.raises(IntegrityError), transaction.atomic():
        ScrapeRun.objects.create(product=product, status="SUCCESS")
