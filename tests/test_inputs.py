"""What users may type as a product: Amazon product URLs on every marketplace and ASINs, nothing else."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.provisional import domains

from scraping.inputs import (
    AMAZON_HOSTS,
    InvalidProductReference,
    ProductReference,
    RejectReason,
    canonical_url,
    is_valid_asin,
    normalize_product_reference,
    parse_product_reference,
    product_url,
)
from scraping.marketplaces import HOST_PREFIXES, MARKETPLACES

ASIN = "B07FNW9FGJ"

ACCEPTED = [
    ("B07FNW9FGJ", ASIN),
    ("b07fnw9fgj", ASIN),
    ("  B07FNW9FGJ\n", ASIN),
    ("0306406152", "0306406152"),  # ISBN-10
    ("080442957X", "080442957X"),  # ISBN-10 with an X check character
    ("080442957x", "080442957X"),
    ("https://www.amazon.com/dp/B07FNW9FGJ", ASIN),
    ("https://www.amazon.com/dp/B07FNW9FGJ/", ASIN),
    ("http://www.amazon.com/dp/B07FNW9FGJ", ASIN),
    ("www.amazon.com/dp/B07FNW9FGJ", ASIN),
    ("amazon.com/dp/B07FNW9FGJ", ASIN),
    ("//www.amazon.com/dp/B07FNW9FGJ", ASIN),
    ("HTTPS://WWW.AMAZON.COM/DP/B07FNW9FGJ", ASIN),
    ("https://www.Amazon.com/dp/b07fnw9fgj", ASIN),
    ("https://smile.amazon.com/dp/B07FNW9FGJ", ASIN),
    ("https://m.amazon.com/dp/B07FNW9FGJ", ASIN),
    ("https://www.amazon.com/gp/product/B07FNW9FGJ", ASIN),
    ("https://www.amazon.com/gp/product/B07FNW9FGJ/ref=ppx_yo_dt_b_asin_title_o00_s00?ie=UTF8&psc=1", ASIN),
    ("https://m.amazon.com/gp/aw/d/B07FNW9FGJ", ASIN),
    ("https://www.amazon.com/dp/product/B07FNW9FGJ", ASIN),
    (
        "https://www.amazon.com/Hanes-Mens-Beefy-T-Shirt-Pack/dp/B07FNW9FGJ/ref=sr_1_3?crid=2&keywords=hanes"
        "&qid=1700000000&sr=8-3&th=1&psc=1",
        ASIN,
    ),
    ("https://www.amazon.com/dp/B07FNW9FGJ#customerReviews", ASIN),
    ("https://www.amazon.com:443/dp/B07FNW9FGJ", ASIN),
    ("http://www.amazon.com:80/dp/B07FNW9FGJ", ASIN),
    ("https://www.amazon.com./dp/B07FNW9FGJ", ASIN),
    ("https://www.amazon.com/Learning-Python/dp/0306406152", "0306406152"),
]


@pytest.mark.parametrize(("text", "asin"), ACCEPTED)
def test_it_accepts_real_product_url_forms_and_asins(text, asin):
    assert normalize_product_reference(text) == asin


# Every marketplace, on every host form people share links from.
MARKETPLACE_URLS = [
    (f"https://{prefix}{marketplace.code}/dp/{ASIN}", marketplace.code)
    for marketplace in MARKETPLACES
    for prefix in HOST_PREFIXES
]
# The odd and old forms, on a few marketplaces.
ODD_FORMS = [
    ("https://www.amazon.com/exec/obidos/ASIN/B07FNW9FGJ/ref=nosim/", "amazon.com"),
    ("http://www.amazon.co.uk/exec/obidos/ASIN/B07FNW9FGJ", "amazon.co.uk"),
    ("https://www.amazon.com/exec/obidos/tg/detail/-/B07FNW9FGJ/", "amazon.com"),
    ("https://www.amazon.de/o/ASIN/B07FNW9FGJ/ref=x", "amazon.de"),
    ("https://www.amazon.fr/gp/offer-listing/B07FNW9FGJ/ref=dp_olp_NEW_mbc?condition=new", "amazon.fr"),
    ("https://www.amazon.co.jp/gp/aw/d/B07FNW9FGJ/?th=1", "amazon.co.jp"),
    ("https://www.amazon.es/dp/product/B07FNW9FGJ", "amazon.es"),
    ("https://www.amazon.de/-/de/dp/B07FNW9FGJ", "amazon.de"),
    ("https://www.amazon.de/-/en/Some-Thing/dp/B07FNW9FGJ/ref=sr_1_1", "amazon.de"),
    ("https://www.amazon.com.be/-/nl/gp/product/B07FNW9FGJ", "amazon.com.be"),
    ("https://www.amazon.ae/-/en_AE/dp/B07FNW9FGJ", "amazon.ae"),
    ("amazon.com.mx/Some-Thing/dp/B07FNW9FGJ", "amazon.com.mx"),
    ("https://m.amazon.in/gp/aw/d/B07FNW9FGJ", "amazon.in"),
    # A sponsored result links through a redirector that names the product page, encoded.
    (
        "https://www.amazon.com/gp/slredirect/picassoRedirect.html/ref=pa_sp_atf_aps_sr_pg1_1?ie=UTF8"
        "&adId=A0&url=%2FSome-Thing%2Fdp%2FB07FNW9FGJ%2Fref%3Dsr_1_1_sspa%3Fkeywords%3Dx&qualifier=1",
        "amazon.com",
    ),
    ("https://www.amazon.co.uk/sspa/click?ie=UTF8&spc=x&url=%2Fdp%2FB07FNW9FGJ%2Fref%3Dsspa_dk", "amazon.co.uk"),
    # amzn.com is amazon.com's own short domain, with the ASIN in the link: no request needed.
    ("https://amzn.com/B07FNW9FGJ", "amazon.com"),
    ("amzn.com/dp/B07FNW9FGJ", "amazon.com"),
]


@pytest.mark.parametrize(("text", "store"), MARKETPLACE_URLS + ODD_FORMS)
def test_it_accepts_every_marketplace_and_link_form_and_names_the_marketplace(text, store):
    assert parse_product_reference(text) == ProductReference(ASIN, store)
    assert normalize_product_reference(text, store=store) == ASIN


def test_a_bare_asin_names_no_marketplace_the_caller_chooses():
    assert parse_product_reference(" b07fnw9fgj ") == ProductReference(ASIN, None)
    assert normalize_product_reference(ASIN, store="amazon.de") == ASIN


def test_a_link_on_another_marketplace_is_not_that_stores_product():
    with pytest.raises(InvalidProductReference) as caught:
        normalize_product_reference(f"https://www.amazon.de/dp/{ASIN}", store="amazon.com")
    assert caught.value.reason == RejectReason.MARKETPLACE
    assert "amazon.de" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "link"),
    [
        ("https://a.co/d/1AbCdEf", "https://a.co/d/1AbCdEf"),
        ("a.co/d/1AbCdEf?ref=share", "https://a.co/d/1AbCdEf"),
        ("http://amzn.to/3xYzAbC", "https://amzn.to/3xYzAbC"),
        ("https://amzn.eu/d/abc_DEF-1", "https://amzn.eu/d/abc_DEF-1"),
        ("https://amzn.asia/d/0aBc/", "https://amzn.asia/d/0aBc"),
    ],
)
def test_a_short_link_is_handed_back_as_the_https_link_to_resolve(text, link):
    with pytest.raises(InvalidProductReference) as caught:
        parse_product_reference(text)
    assert caught.value.reason == RejectReason.SHORT_LINK
    assert caught.value.short_link == link


REJECTED = [
    # empty, too long, whitespace and control characters
    ("", RejectReason.EMPTY),
    ("   \n", RejectReason.EMPTY),
    ("https://www.amazon.com/dp/B07FNW9FGJ?x=" + "a" * 2048, RejectReason.TOO_LONG),
    ("https://www.amazon.com/dp/B07FNW9FGJ extra", RejectReason.WHITESPACE),
    ("https://www.amazon.com/dp/\tB07FNW9FGJ", RejectReason.WHITESPACE),
    ("https://www.amazon.com/dp/B07FNW9FGJ\x00", RejectReason.WHITESPACE),
    ("https://www.ama\u200bzon.com/dp/B07FNW9FGJ", RejectReason.WHITESPACE),  # zero-width space
    # schemes
    ("javascript:alert(document.cookie)", RejectReason.SCHEME),
    ("JavaScript://www.amazon.com/dp/B07FNW9FGJ", RejectReason.SCHEME),
    ("file:///etc/passwd", RejectReason.SCHEME),
    ("ftp://www.amazon.com/dp/B07FNW9FGJ", RejectReason.SCHEME),
    ("data:text/html,<script>alert(1)</script>", RejectReason.SCHEME),
    ("https:www.amazon.com/dp/B07FNW9FGJ", RejectReason.MALFORMED),
    # userinfo tricks
    ("https://amazon.com@evil.example/dp/B07FNW9FGJ", RejectReason.USERINFO),
    ("https://evil@amazon.com/dp/B07FNW9FGJ", RejectReason.USERINFO),
    ("https://user:pass@www.amazon.com/dp/B07FNW9FGJ", RejectReason.USERINFO),
    ("https://www.amazon.com\\@evil.example/dp/B07FNW9FGJ", RejectReason.USERINFO),
    # other hosts and look-alikes
    ("https://amazon.com.evil.example/dp/B07FNW9FGJ", RejectReason.HOST),
    ("https://evilamazon.com/dp/B07FNW9FGJ", RejectReason.HOST),
    ("https://amazon.co/dp/B07FNW9FGJ", RejectReason.HOST),
    ("https://www.amazon.com.evil.example/dp/B07FNW9FGJ", RejectReason.HOST),
    ("https://aws.amazon.com/dp/B07FNW9FGJ", RejectReason.HOST),
    ("https://www.amaz\u043en.com/dp/B07FNW9FGJ", RejectReason.HOST),  # Cyrillic o
    ("https://example.com/dp/B07FNW9FGJ", RejectReason.HOST),
    ("https://www.amazon.co/dp/B07FNW9FGJ", RejectReason.HOST),
    ("https://www.amazon.de.evil.example/dp/B07FNW9FGJ", RejectReason.HOST),
    ("https://amazon.com.mx.evil.example/dp/B07FNW9FGJ", RejectReason.HOST),
    ("https://www.amazon.co.jpn/dp/B07FNW9FGJ", RejectReason.HOST),
    ("https://www.amazon.de@evil.example/dp/B07FNW9FGJ", RejectReason.USERINFO),
    ("https://sellercentral.amazon.de/dp/B07FNW9FGJ", RejectReason.HOST),
    # Amazon storefronts we do not track
    ("https://www.amazon.cn/dp/B07FNW9FGJ", RejectReason.MARKETPLACE),
    ("https://www.amazon.co.za/dp/B07FNW9FGJ", RejectReason.MARKETPLACE),
    # IP literals
    ("http://127.0.0.1/dp/B07FNW9FGJ", RejectReason.IP_LITERAL),
    ("http://[::1]/dp/B07FNW9FGJ", RejectReason.IP_LITERAL),
    ("http://169.254.169.254/latest/meta-data/", RejectReason.IP_LITERAL),
    ("http://2130706433/dp/B07FNW9FGJ", RejectReason.IP_LITERAL),
    ("http://0x7f.1/dp/B07FNW9FGJ", RejectReason.IP_LITERAL),
    # ports
    ("https://www.amazon.com:8443/dp/B07FNW9FGJ", RejectReason.PORT),
    ("http://www.amazon.com:443/dp/B07FNW9FGJ", RejectReason.PORT),
    ("www.amazon.com:99999/dp/B07FNW9FGJ", RejectReason.PORT),
    # short links are resolved by the caller (scraping.shortlinks); one without a code is not a link
    ("https://a.co/d/1AbCdEf", RejectReason.SHORT_LINK),
    ("amzn.to/3xYzAbC", RejectReason.SHORT_LINK),
    ("https://amzn.eu/d/abc", RejectReason.SHORT_LINK),
    ("https://a.co/", RejectReason.MALFORMED),
    ("https://amzn.to/3x%2e%2e", RejectReason.MALFORMED),
    ("https://amzn.com/", RejectReason.NOT_PRODUCT_PAGE),
    # search, list and store pages
    ("https://www.amazon.com/s?k=poker+chips", RejectReason.NOT_PRODUCT_PAGE),
    ("https://www.amazon.com/gp/bestsellers/electronics", RejectReason.NOT_PRODUCT_PAGE),
    ("https://www.amazon.com/stores/SLOWPLAY/page/CD8460A7", RejectReason.NOT_PRODUCT_PAGE),
    ("https://www.amazon.com/hz/wishlist/ls/2ABCDEF", RejectReason.NOT_PRODUCT_PAGE),
    ("https://www.amazon.com/", RejectReason.NOT_PRODUCT_PAGE),
    ("https://www.amazon.de/s?k=kaffee", RejectReason.NOT_PRODUCT_PAGE),
    ("https://www.amazon.co.jp/hz/wishlist/ls/2ABCDEF", RejectReason.NOT_PRODUCT_PAGE),
    ("https://www.amazon.co.uk/stores/page/ABC", RejectReason.NOT_PRODUCT_PAGE),
    ("https://www.amazon.fr/-/en/s?k=x", RejectReason.NOT_PRODUCT_PAGE),
    # a redirector is only read for a product path on its own site
    (
        "https://www.amazon.com/gp/slredirect/picassoRedirect.html?url=https%3A%2F%2Fevil.example%2Fdp%2FB07FNW9FGJ",
        RejectReason.NOT_PRODUCT_PAGE,
    ),
    ("https://www.amazon.com/sspa/click?url=%2F%2Fevil.example%2Fdp%2FB07FNW9FGJ", RejectReason.NOT_PRODUCT_PAGE),
    ("https://www.amazon.com/sspa/click?url=%2Fdp%2F..%2F..%2FB07FNW9FGJ", RejectReason.NOT_PRODUCT_PAGE),
    (
        "https://www.amazon.com/sspa/click?url=https%3A%2F%2Fwww.amazon.de%2Fdp%2FB07FNW9FGJ",
        RejectReason.NOT_PRODUCT_PAGE,
    ),
    ("https://www.amazon.com/s?k=x&url=%2Fdp%2FB07FNW9FGJ", RejectReason.NOT_PRODUCT_PAGE),
    # ASINs that are not
    ("hello", RejectReason.INVALID_ASIN),
    ("B07FNW9FG", RejectReason.INVALID_ASIN),
    ("A07FNW9FGJ", RejectReason.INVALID_ASIN),
    ("0306406153", RejectReason.INVALID_ASIN),  # ISBN-10 with a wrong check digit
    ("https://www.amazon.com/dp/B07", RejectReason.INVALID_ASIN),
    ("https://www.amazon.com/dp/", RejectReason.INVALID_ASIN),
]


@pytest.mark.parametrize(("text", "reason"), REJECTED)
def test_it_rejects_everything_else_with_the_reason(text, reason):
    with pytest.raises(InvalidProductReference) as caught:
        normalize_product_reference(text)
    assert caught.value.reason == reason
    assert str(caught.value)  # a message for the user, never empty


def test_each_rejection_reason_has_its_own_message():
    messages: dict[RejectReason, set[str]] = {}
    for text, reason in REJECTED:
        with pytest.raises(InvalidProductReference) as caught:
            normalize_product_reference(text)
        messages.setdefault(reason, set()).add(str(caught.value))
    # No message is shared by two reasons, so the user always learns what exactly is wrong.
    seen: dict[str, RejectReason] = {}
    for reason, texts in messages.items():
        for text in texts:
            assert seen.setdefault(text, reason) == reason


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("https://www.amazon.cn/dp/B07FNW9FGJ", "marketplace we do not support"),
        ("https://a.co/d/1AbCdEf", "short link"),
        ("https://www.amazon.com/s?k=chips", "not a product page"),
        ("https://amazon.com@evil.example/", "user name or password"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("http://127.0.0.1/dp/B07FNW9FGJ", "ip address"),
    ],
)
def test_rejection_messages_tell_the_user_what_to_do(text, words):
    with pytest.raises(InvalidProductReference, match="(?i)" + re.escape(words)):
        normalize_product_reference(text)


def test_invalid_product_reference_is_a_value_error():
    assert issubclass(InvalidProductReference, ValueError)


def test_the_fetch_url_is_built_from_the_base_url_and_asin_only():
    assert product_url(ASIN, "http://127.0.0.1:8001/") == "http://127.0.0.1:8001/dp/B07FNW9FGJ"
    assert product_url(ASIN, "https://www.amazon.com") == "https://www.amazon.com/dp/B07FNW9FGJ"


@pytest.mark.parametrize("bad", ["../admin", "B07FNW9FGJ/../../x", "b07fnw9fgj", "https://evil.example/"])
def test_the_fetch_url_refuses_anything_but_a_normalised_asin(bad):
    with pytest.raises(ValueError):
        product_url(bad, "https://www.amazon.com")
    with pytest.raises(ValueError):
        canonical_url(bad)


def test_the_canonical_url_is_the_www_amazon_com_dp_url():
    assert canonical_url(ASIN) == "https://www.amazon.com/dp/B07FNW9FGJ"


def test_the_canonical_url_is_on_the_products_marketplace():
    assert canonical_url(ASIN, "amazon.co.jp") == "https://www.amazon.co.jp/dp/B07FNW9FGJ"
    for marketplace in MARKETPLACES:
        assert parse_product_reference(canonical_url(ASIN, marketplace.code)) == ProductReference(
            ASIN, marketplace.code
        )


# --- properties ----------------------------------------------------------------------------------

_ALNUM = string.ascii_uppercase + string.digits


def _isbn10(nine_digits: str) -> str:
    check = -sum((10 - i) * int(d) for i, d in enumerate(nine_digits)) % 11
    return nine_digits + ("X" if check == 10 else str(check))


asins = st.one_of(
    st.text(_ALNUM, min_size=8, max_size=8).map(lambda tail: "B0" + tail),
    st.text(string.digits, min_size=9, max_size=9).map(_isbn10),
)


def _random_case(draw, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if flip else c.lower() for c, flip in zip(text, flips, strict=True))


@st.composite
def product_urls(draw) -> tuple[str, str]:
    asin = draw(asins)
    scheme = draw(st.sampled_from(["https://", "http://", "", "//"]))
    host = _random_case(draw, draw(st.sampled_from(sorted(AMAZON_HOSTS))))
    slug = draw(st.from_regex(r"[A-Za-z0-9-]{1,40}", fullmatch=True))
    path = draw(
        st.sampled_from(
            [f"/dp/{asin}", f"/{slug}/dp/{asin}", f"/gp/product/{asin}", f"/gp/aw/d/{asin}", f"/dp/product/{asin}"]
        )
    )
    suffix = draw(st.sampled_from(["", "/", "/ref=sr_1_1", f"/ref=sr_1_1?th=1&psc=1&keywords={slug}", "?th=1"]))
    shown_asin = _random_case(draw, asin) if draw(st.booleans()) else asin
    return f"{scheme}{host}{path.replace(asin, shown_asin)}{suffix}", asin


@settings(max_examples=300)
@given(product_urls())
def test_any_real_product_url_normalises_to_the_asin_of_its_canonical_url(case):
    url, asin = case
    reference = parse_product_reference(url)
    assert reference.asin == asin
    assert reference.store is not None
    assert parse_product_reference(canonical_url(asin, reference.store)) == reference
    assert normalize_product_reference(asin.lower()) == asin


@settings(max_examples=500)
@given(st.text(max_size=300))
def test_random_text_is_either_refused_or_a_valid_asin(text):
    try:
        asin = normalize_product_reference(text)
    except InvalidProductReference:
        return
    assert is_valid_asin(asin)
    assert normalize_product_reference(canonical_url(asin)) == asin


@settings(max_examples=300)
@given(
    scheme=st.sampled_from(["https://", "http://", ""]),
    host=domains().filter(lambda host: host.lower().rstrip(".") not in AMAZON_HOSTS),
    asin=asins,
    tail=st.sampled_from(["", "/", "/ref=x?th=1"]),
)
def test_urls_on_any_other_host_are_never_accepted(scheme, host, asin, tail):
    with pytest.raises(InvalidProductReference):
        normalize_product_reference(f"{scheme}{host}/dp/{asin}{tail}")


@settings(max_examples=200)
@given(prefix=st.text(min_size=1, max_size=30), asin=asins)
def test_an_asin_hidden_in_the_userinfo_or_host_of_a_foreign_url_is_never_accepted(prefix, asin):
    text = f"https://www.amazon.com/dp/{asin}@{prefix}.evil.example/"
    with pytest.raises(InvalidProductReference):
        normalize_product_reference(text)
