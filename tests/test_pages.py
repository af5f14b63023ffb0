"""``analyse``: classify, then parse product pages only; never raise, never price a block page."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from scraping import pages
from scraping.pages import analyse
from scraping.results import Availability, ErrorKind, ScrapeResult, ScrapeStatus

HTML = "text/html; charset=utf-8"
PRODUCT = (
    b"<!doctype html><html><head><title>Amazon.com: Widget</title>"
    b'<link rel="canonical" href="https://www.amazon.com/Widget/dp/B000000001"></head><body>'
    b'<span id="productTitle">Acme Widget</span>'
    b'<div id="corePriceDisplay_desktop_feature_div"><span class="a-price priceToPay">'
    b'<span class="a-offscreen">$19.99</span></span></div>'
    b'<div id="availability"><span>In Stock</span></div>'
    b"</body></html>"
)


def test_a_product_page_gives_a_priced_success():
    result = analyse(200, HTML, PRODUCT)
    assert result.status is ScrapeStatus.SUCCESS
    assert result.error_kind is ErrorKind.NONE
    assert (result.asin, result.title) == ("B000000001", "Acme Widget")
    assert (result.price, result.currency) == (Decimal("19.99"), "USD")
    assert result.availability is Availability.IN_STOCK
    assert result.rule == "core_price_display"
    assert result.http_status == 200
    assert result.bytes_received == len(PRODUCT)
    assert "19.99" in result.message


def test_a_captcha_page_holding_a_price_never_yields_it():
    body = PRODUCT.replace(b"</body>", b'<form action="/errors/validateCaptcha"></form></body>')
    result = analyse(200, HTML, body)
    assert (result.status, result.error_kind) == (ScrapeStatus.BLOCKED, ErrorKind.CAPTCHA)
    assert result.price is None
    assert result.rule == ""


def test_an_http_error_is_reported_with_its_status_and_size():
    result = analyse(500, HTML, b"<html>oops</html>")
    assert (result.status, result.error_kind, result.http_status) == (ScrapeStatus.FAILED, ErrorKind.HTTP_5XX, 500)
    assert result.bytes_received == len(b"<html>oops</html>")


def test_a_product_page_without_price_or_known_state_is_a_parse_error_that_keeps_the_title():
    body = PRODUCT.replace(b"$19.99", b"")
    result = analyse(200, HTML, body)
    assert (result.status, result.error_kind) == (ScrapeStatus.FAILED, ErrorKind.PARSE_ERROR)
    assert result.price is None
    assert result.title == "Acme Widget"
    assert result.message


def test_a_no_price_state_is_a_success_without_price():
    body = PRODUCT.replace(b"$19.99", b"").replace(b"</body>", b'<div id="unqualifiedBuyBox"></div></body>')
    result = analyse(200, HTML, body)
    assert result.status is ScrapeStatus.SUCCESS
    assert result.price is None
    assert result.rule == "no_price:no_featured_offer"


def test_the_requested_asin_is_reported_for_pages_that_name_none():
    result = analyse(503, HTML, b"", asin_hint="B000000042")
    assert result.asin == "B000000042"


def test_the_charset_of_the_content_type_is_used_to_decode():
    body = PRODUCT.replace(b"$19.99", "£19.99".encode("latin-1")).replace(b"Acme Widget", "Café".encode("latin-1"))
    result = analyse(200, "text/html; charset=ISO-8859-1", body)
    assert (result.title, result.price, result.currency) == ("Café", Decimal("19.99"), "GBP")


def test_a_parser_crash_becomes_a_parse_error_with_a_safe_message(monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internals /home/app/token=abc")

    monkeypatch.setattr(pages, "parse_product_page", explode)
    result = analyse(200, HTML, PRODUCT)
    assert (result.status, result.error_kind) == (ScrapeStatus.FAILED, ErrorKind.PARSE_ERROR)
    assert "secret" not in result.message
    assert result.price is None


@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from([200, 202, 301, 404, 429, 500, 503]),
    content_type=st.sampled_from([None, "text/html", "text/html; charset=bogus", "application/json"]),
    body=st.binary(max_size=4096)
    | st.text(alphabet=st.sampled_from(list("<>/=\"' divspanidclass$.,0123456789a-priceToPay")), max_size=4096).map(
        str.encode
    ),
)
def test_it_never_raises_whatever_the_bytes(status, content_type, body):
    result = analyse(status, content_type, body)
    assert isinstance(result, ScrapeResult)
    assert result.bytes_received == len(body)
    if result.status is not ScrapeStatus.SUCCESS:
        assert result.price is None


def test_it_copes_with_a_huge_page_of_unclosed_markup():
    body = b"<html><body>" + b'<div id="corePriceDisplay_desktop_feature_div">' + b"<div><script>" * 200_000
    result = analyse(200, HTML, body)
    assert result.status is ScrapeStatus.FAILED
    assert result.error_kind is ErrorKind.PARSE_ERROR
