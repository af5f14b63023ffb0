"""Amounts for people: emails, the admin and the CSV write a price in its currency's format, in
the reader's language (Babel), English when the profile has none."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.core import mail

from scraping.models import get_store
from scraping.money import format_money, minor_units
from scraping.results import Availability, ScrapeResult, ScrapeStatus
from tests.tracking_factories import make_product, make_tracker, record

ASIN = "B0MONEY001"


@pytest.mark.parametrize(
    ("amount", "currency", "language", "shown"),
    [
        ("1234.5", "EUR", None, "€1,234.50"),
        ("1234.5", "EUR", "de-DE", "1.234,50\u00a0€"),
        ("1234.5", "EUR", "fr-FR", "1\u202f234,50\u00a0€"),
        ("1234.5", "CHF", "de-CH", "CHF\u00a01'234.50"),
        ("1234", "JPY", "ja-JP", "￥1,234"),
        ("1234.4", "JPY", None, "¥1,234"),  # yen have no minor units: rounded
        ("123456", "INR", "en-IN", "₹1,23,456.00"),
        ("19.99", "CAD", None, "CA$19.99"),
        ("19.99", "CAD", "en-CA", "$19.99"),
        ("1279", "SAR", "ar-SA", "\u200f1,279.00\u00a0ر.س.\u200f"),
        ("5", "USD", "xx-not-a-language", "$5.00"),  # unknown language: English
    ],
)
def test_an_amount_is_written_in_its_currencys_format_in_the_readers_language(amount, currency, language, shown):
    assert format_money(Decimal(amount), currency, language=language) == shown


def test_minor_units_come_from_cldr():
    assert (minor_units("EUR"), minor_units("JPY"), minor_units("INR")) == (2, 0, 2)


def result(price: str, currency: str) -> ScrapeResult:
    return ScrapeResult(
        status=ScrapeStatus.SUCCESS,
        price=Decimal(price),
        currency=currency,
        title="Kaffeemühle",
        availability=Availability.IN_STOCK,
        rule="test",
    )


@pytest.fixture
def german_product(db):
    return make_product(get_store("amazon.de"), ASIN, title="Kaffeemühle")


@pytest.mark.parametrize(
    ("language", "price", "target"),
    [("de-DE", "1.234,50\u00a0€", "1.300,00\u00a0€"), ("", "€1,234.50", "€1,300.00")],
)
def test_an_alert_email_writes_amounts_in_the_users_language(
    alice, german_product, django_capture_on_commit_callbacks, language, price, target
):
    alice.language = language
    alice.save(update_fields=["language"])
    make_tracker(alice, german_product, target="1300.00")
    with django_capture_on_commit_callbacks(execute=True):
        record(german_product, result("1500.00", "EUR"))
    with django_capture_on_commit_callbacks(execute=True):
        record(german_product, result("1234.50", "EUR"))
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    # The subject is one line with plain spaces; the body keeps the no-break space.
    assert " ".join(price.split()) in message.subject and " ".join(target.split()) in message.subject
    assert price in message.body
    assert f"https://www.amazon.de/dp/{ASIN}" in message.body


def test_the_history_csv_adds_amounts_formatted_for_the_user(alice, alice_client, german_product):
    alice.language = "de-DE"
    alice.save(update_fields=["language"])
    tracker = make_tracker(alice, german_product)
    record(german_product, result("1234.50", "EUR"))
    response = alice_client.get(f"/api/trackers/{tracker.pk}/history/", {"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0]["price"] == "1234.50" and rows[0]["currency"] == "EUR"
    assert rows[0]["price_formatted"] == "1.234,50\u00a0€"
    assert rows[0]["list_price_formatted"] == ""


def test_the_csv_refuses_a_malformed_page_size_like_the_json(alice, alice_client, german_product):
    tracker = make_tracker(alice, german_product)
    response = alice_client.get(f"/api/trackers/{tracker.pk}/history/", {"format": "csv", "page_size": "x"})
    assert response.status_code == 400


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("root@example.com", is_staff=True, is_superuser=True))
    return client


def test_the_admin_writes_prices_in_their_currencys_format(admin_client, german_product, alice):
    make_tracker(alice, german_product)
    record(german_product, result("1234.50", "EUR"))
    products = admin_client.get("/admin/tracking/product/").content.decode()
    assert "€1,234.50" in products
    points = admin_client.get("/admin/tracking/pricepoint/").content.decode()
    assert "€1,234.50" in points
    page = admin_client.get(f"/admin/tracking/product/{german_product.pk}/change/").content.decode()
    assert f"https://www.amazon.de/dp/{ASIN}" in page
