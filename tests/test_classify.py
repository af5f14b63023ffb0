"""Response classification: blocks and errors are recognised before any price parsing."""

from __future__ import annotations

import pytest

from scraping.classify import HEAD_SCAN_BYTES, SMALL_PAGE_BYTES, TAIL_SCAN_BYTES, classify
from scraping.results import ErrorKind, ScrapeStatus

HTML = "text/html; charset=utf-8"


def small_page(body: str, title: str = "Amazon.com") -> bytes:
    return f"<!doctype html><html><head><title>{title}</title></head><body>{body}</body></html>".encode()


def big_product_page(head_extra: str = "", middle: str = "", tail: str = "") -> bytes:
    """A product-page-sized body: markers are placed in the head, the middle or the tail."""
    filler = "<div class='a-section'>" + "x" * 1000 + "</div>\n"
    head = f"<!doctype html><html><head><title>Amazon.com: Widget</title>{head_extra}</head><body>"
    return (head + filler * 150 + middle + filler * 150 + tail + "</body></html>").encode()


CAPTCHA_FORM = (
    '<h4>Enter the characters you see below</h4><form method="get" action="/errors/validateCaptcha">'
    '<input type=hidden name="amzn" value="abc"><input id="captchacharacters" name="field-keywords">'
    "<h4>Type the characters you see in this image:</h4></form>"
)


def test_a_product_page_is_a_product_page():
    result = classify(200, HTML, big_product_page())
    assert result.status is ScrapeStatus.SUCCESS
    assert result.is_product_page


@pytest.mark.parametrize(
    "marker",
    [
        '<form action="/errors/validateCaptcha">',
        '<form action="/errors/VALIDATECAPTCHA">',
        '<input id="captchacharacters">',
        "<h4>Type the characters you see in this image:</h4>",
    ],
)
def test_each_captcha_marker_alone_is_a_captcha(marker):
    result = classify(200, HTML, small_page(marker))
    assert (result.status, result.error_kind) == (ScrapeStatus.BLOCKED, ErrorKind.CAPTCHA)


def test_a_full_captcha_page_is_blocked_as_captcha():
    result = classify(200, HTML, small_page(CAPTCHA_FORM))
    assert (result.status, result.error_kind) == (ScrapeStatus.BLOCKED, ErrorKind.CAPTCHA)
    assert result.message


def test_a_captcha_served_with_503_is_still_a_captcha():
    assert classify(503, HTML, small_page(CAPTCHA_FORM)).error_kind is ErrorKind.CAPTCHA


def test_the_continue_shopping_page_is_a_soft_captcha():
    body = small_page(
        "<h4>Click the button below to continue shopping</h4>"
        '<form action="/errors/validateCaptcha"><button type="submit">Continue shopping</button></form>'
    )
    result = classify(200, HTML, body)
    assert (result.status, result.error_kind) == (ScrapeStatus.BLOCKED, ErrorKind.SOFT_CAPTCHA)


def test_a_truncated_page_whose_only_marker_is_opfcaptcha_is_a_captcha():
    body = b'<html><head><script>var ue_sn = "opfcaptcha.amazon.com", ue_id = "X";</script></head><body><div'
    assert classify(200, HTML, body).error_kind is ErrorKind.CAPTCHA


def test_captcha_instrumentation_is_a_captcha():
    body = small_page('<script>ue.count("csm-captcha-instrumentation", 1);</script>')
    assert classify(200, HTML, body).error_kind is ErrorKind.CAPTCHA


def test_a_captcha_marker_in_the_head_of_a_big_page_is_found():
    body = big_product_page(head_extra='<script>ue_sn = "opfcaptcha.amazon.com";</script>')
    assert len(body) > SMALL_PAGE_BYTES
    assert classify(200, HTML, body).error_kind is ErrorKind.CAPTCHA


def test_a_captcha_marker_at_the_end_of_a_big_page_is_found():
    body = big_product_page(tail='<form action="/errors/validateCaptcha"></form>')
    assert classify(200, HTML, body).error_kind is ErrorKind.CAPTCHA


def test_only_the_head_and_tail_of_a_big_page_are_scanned():
    # Cheapness is the point: a product page mentioning captchas in a review stays a product page.
    body = big_product_page(middle="<p>Review: the box said Type the characters you see, ha.</p>")
    assert len(body) > HEAD_SCAN_BYTES + TAIL_SCAN_BYTES
    assert classify(200, HTML, body).is_product_page


@pytest.mark.parametrize("marker", ["awsWafCookieDomainList", "gokuProps"])
def test_an_aws_waf_challenge_is_blocked_as_waf(marker):
    body = small_page(f'<script>window.{marker} = {{"key": "x"}};</script>')
    result = classify(200, HTML, body)
    assert (result.status, result.error_kind) == (ScrapeStatus.BLOCKED, ErrorKind.WAF)


def test_http_202_is_a_waf_challenge():
    assert classify(202, HTML, b"").error_kind is ErrorKind.WAF


def test_http_429_is_rate_limiting():
    result = classify(429, HTML, small_page("Too many requests"))
    assert (result.status, result.error_kind) == (ScrapeStatus.BLOCKED, ErrorKind.RATE_LIMITED)


def dogs_page(title: str, picture: str = "500_503.png") -> bytes:
    return small_page(
        '<a href="/ref=cs_503_logo"><img alt="Amazon.com"></a>'
        f'<img src="https://images.example/images/G/01/error/{picture}" alt="Sorry! Something went wrong on our end.">'
        '<a href="/dogsofamazon/ref=cs_503_d"><img alt="Dogs of Amazon"></a>',
        title=title,
    )


def test_the_sorry_something_went_wrong_dogs_page_is_service_unavailable():
    result = classify(200, HTML, dogs_page("Sorry! Something went wrong!"))
    assert (result.status, result.error_kind) == (ScrapeStatus.BLOCKED, ErrorKind.SERVICE_UNAVAILABLE)


def test_the_500_variant_of_the_dogs_page_is_also_service_unavailable():
    body = small_page(
        '<img src="https://images.example/images/G/15/error/500-title._TTD_.png" alt="Sorry! Something went wrong.">'
        '<img id="d" alt="Dogs of Amazon / Chiens d\'Amazon">',
        title="Amazon.ca Something Went Wrong / Quelque chose s'est mal passé",
    )
    result = classify(500, HTML, body)
    assert (result.status, result.error_kind) == (ScrapeStatus.BLOCKED, ErrorKind.SERVICE_UNAVAILABLE)


def test_a_bare_http_503_is_service_unavailable():
    result = classify(503, "text/plain", b"Service Unavailable")
    assert (result.status, result.error_kind) == (ScrapeStatus.BLOCKED, ErrorKind.SERVICE_UNAVAILABLE)


def test_a_product_page_mentioning_something_went_wrong_is_not_an_error_page():
    body = big_product_page(head_extra="<script>var msg = 'Something went wrong. Please try again.';</script>")
    assert classify(200, HTML, body).is_product_page


def test_http_404_is_not_found():
    result = classify(404, HTML, small_page("<p>Looking for something?</p>"))
    assert (result.status, result.error_kind) == (ScrapeStatus.FAILED, ErrorKind.NOT_FOUND)


def test_the_404_dogs_page_served_with_200_is_not_found():
    body = small_page(
        '<a href="/ref=cs_404_logo"></a><img alt="Sorry! We couldn\'t find that page. Try searching.">',
        title="Page Not Found",
    )
    assert classify(200, HTML, body).error_kind is ErrorKind.NOT_FOUND


@pytest.mark.parametrize(
    ("status", "kind"),
    [(403, ErrorKind.HTTP_4XX), (410, ErrorKind.HTTP_4XX), (500, ErrorKind.HTTP_5XX), (502, ErrorKind.HTTP_5XX)],
)
def test_other_http_errors_fail_with_their_class(status, kind):
    result = classify(status, HTML, small_page("<p>error</p>"))
    assert (result.status, result.error_kind) == (ScrapeStatus.FAILED, kind)


def test_an_unexpected_redirect_fails():
    assert classify(302, HTML, b"").error_kind is ErrorKind.REDIRECT_REFUSED


@pytest.mark.parametrize("content_type", ["application/json", "image/jpeg", "application/octet-stream"])
def test_a_non_html_content_type_is_not_html(content_type):
    result = classify(200, content_type, small_page("<p>hi</p>"))
    assert (result.status, result.error_kind) == (ScrapeStatus.FAILED, ErrorKind.NOT_HTML)


@pytest.mark.parametrize(
    "body",
    [b"", b'{"price": 1}', b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"just some text without markup"],
)
def test_a_body_that_is_obviously_not_html_is_not_html(body):
    assert classify(200, HTML, body).error_kind is ErrorKind.NOT_HTML


def test_a_missing_content_type_is_judged_by_the_body():
    assert classify(200, None, small_page("<p>hi</p>")).is_product_page
