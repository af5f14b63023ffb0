"""The fake store's pages: our own markup, modelled on amazon.com's 2024+ desktop layout.

Product pages carry the parts our parser reads (``#productTitle``, ``.priceToPay``, ``.basisPrice``,
``#availability``, the buy box) plus decoy prices further down, like the real thing; block pages
reproduce the markers Amazon's captcha, WAF and error pages carry (docs/decisions.md). Every page
is dressed for its marketplace (:mod:`fakestore.markets`: language, currency format, host). Pure
functions of a :class:`Plan`: no state, no I/O.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from fakestore.control import default_price
from fakestore.markets import DEFAULT_MARKET, Market, market, money, price_parts

HTML_TYPE = "text/html;charset=UTF-8"  # as Amazon writes it


@dataclass(frozen=True)
class Plan:
    """What one request gets: decided under the store's lock, served outside it."""

    asin: str
    fault: str | None
    exists: bool
    title: str
    price: Decimal | None
    list_price: Decimal | None
    availability: str
    latency_seconds: float
    padding_kb: int
    hop: int = 0
    market: str = DEFAULT_MARKET


# --- pages (our own markup, modelled on amazon.com's 2024+ desktop layout) ------------------------

FAKE_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 512 + b"\xff\xd9"


def _slug(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-")[:60] or "product"


def _price_to_pay(price: Decimal, shop: Market) -> str:
    parts = price_parts(price, shop)
    symbol = f'<span class="a-price-symbol">{html.escape(parts.symbol)}</span>'
    whole = f'<span class="a-price-whole">{parts.whole}'
    if parts.fraction:
        whole += (
            f'<span class="a-price-decimal">{parts.decimal_mark}</span></span>'
            f'<span class="a-price-fraction">{parts.fraction}</span>'
        )
    else:  # yen: no decimals at all
        whole += "</span>"
    return (
        f'<span id="apex-pricetopay-accessibility-label" class="aok-offscreen"> {money(price, shop)} </span>'
        '<span class="a-price aok-align-center reinventPricePriceToPayMargin priceToPay apex-pricetopay-value" '
        'data-a-size="xl" data-a-color="base"><span class="a-offscreen"> </span><span aria-hidden="true">'
        + (symbol + whole if parts.symbol_first else whole + symbol)
        + "</span></span>"
    )


def _core_price(plan: Plan) -> str:
    if plan.price is None or plan.availability != "in_stock":
        return (
            '<div id="corePriceDisplay_desktop_feature_div" class="celwidget" '
            f'data-feature-name="corePriceDisplay_desktop" data-csa-c-asin="{plan.asin}"></div>'
        )
    savings = basis = ""
    if plan.list_price is not None and plan.list_price > plan.price:
        percent = round((1 - plan.price / plan.list_price) * 100)
        savings = (
            '<span aria-hidden="true" class="a-size-large a-color-price savingPriceOverride aok-align-center '
            f'reinventPriceSavingsPercentageMargin savingsPercentage">-{percent}%</span>'
        )
        shop = market(plan.market)
        listed = html.escape(money(plan.list_price, shop))
        basis = (
            '<div class="a-section a-spacing-small aok-align-center"><span><span class="aok-relative">'
            f'<span class="a-size-small a-color-secondary aok-align-center basisPrice">{shop.texts.list_price} '
            '<span class="a-price a-text-price" data-a-size="s" data-a-strike="true" data-a-color="secondary">'
            f'<span class="a-offscreen">{listed}</span><span aria-hidden="true">'
            f"{listed}</span></span></span></span></span></div>"
        )
    return (
        '<div id="corePriceDisplay_desktop_feature_div" class="celwidget" data-feature-name="corePriceDisplay_desktop" '
        f'data-csa-c-type="widget" data-csa-c-asin="{plan.asin}">'
        '<style type="text/css">.savingPriceOverride { color:#CC0C39!important; font-weight: 300!important; }</style>'
        '<div class="a-section a-spacing-none aok-align-center aok-relative apex-core-price-identifier">'
        f"{savings}{_price_to_pay(plan.price, market(plan.market))}"
        '<span id="taxInclusiveMessage" class="a-size-mini a-color-base aok-align-center aok-nowrap"></span></div>'
        f"{basis}</div>"
    )


def _availability(plan: Plan) -> str:
    texts = market(plan.market).texts
    if plan.availability == "unavailable":
        message = texts.unavailable
        more = "We don't know when or if this item will be back in stock." if plan.market == DEFAULT_MARKET else ""
        return (
            '<div id="outOfStock" class="a-box"><div class="a-box-inner"><div class="a-section a-spacing-small">'
            f'<span class="a-color-price a-text-bold">{message}</span><br>'
            f"{more}</div></div></div>"
            '<div id="availability" class="a-section a-spacing-base">'
            f'<span class="a-size-medium a-color-price">{message}</span></div>'
        )
    if plan.availability == "out_of_stock":
        more = "We are working hard to be back in stock as soon as possible." if plan.market == DEFAULT_MARKET else ""
        return (
            '<div id="availability" class="a-section a-spacing-base"><span class="a-size-medium a-color-price">'
            f"{texts.out_of_stock}</span><br>{more}</div>"
        )
    return (
        '<div id="availability" class="a-section a-spacing-base a-spacing-top-micro">'
        f'<span class="a-size-medium a-color-success primary-availability-message"> {texts.in_stock} </span></div>'
    )


_QUANTITY = (
    '<div class="a-row"><label for="quantity">Quantity:</label><select name="quantity" id="quantity">'
    '<option value="1" selected>1</option><option value="2">2</option><option value="3">3</option></select></div>'
)


def _buy_box(plan: Plan) -> str:
    buyable = plan.availability == "in_stock" and plan.price is not None
    buttons = (
        '<span id="submit.add-to-cart" class="a-button a-button-primary a-button-icon"><span class="a-button-inner">'
        '<input id="add-to-cart-button" name="submit.add-to-cart" title="Add to Shopping Cart" '
        'class="a-button-input" type="submit" value="Add to Cart" aria-labelledby="submit.add-to-cart-announce">'
        '<span id="submit.add-to-cart-announce" class="a-button-text" aria-hidden="true">Add to Cart</span>'
        "</span></span>"
        '<span id="submit.buy-now" class="a-button a-button-oneclick"><span class="a-button-inner">'
        '<input id="buy-now-button" name="submit.buy-now" class="a-button-input" type="submit" value="Buy Now">'
        '<span class="a-button-text" aria-hidden="true">Buy Now</span></span></span>'
        if buyable
        else ""
    )
    offers = (
        '<div id="olpLinkWidget_feature_div" class="celwidget"><a class="a-link-normal" '
        f'href="/gp/offer-listing/{plan.asin}/ref=dp_olp_NEW_mbc">Other sellers on Amazon: New (4) from '
        '<span class="a-price" data-a-size="s"><span class="a-offscreen">'
        f"{html.escape(money(plan.price * Decimal('0.93'), market(plan.market)))}"
        "</span></span></a></div>"
        if buyable and plan.price
        else ""
    )
    return (
        '<div id="desktop_buybox" class="celwidget"><div id="buybox" class="a-section">'
        f"{_availability(plan)}"
        '<form method="post" id="addToCart" action="/cart/add-to-cart/ref=dp_start-bbf_1_glance" '
        'class="a-content" autocomplete="off">'
        f'<input type="hidden" id="ASIN" name="ASIN" value="{plan.asin}">'
        '<input type="hidden" id="session-id" name="session-id" value="000-0000000-0000000">'
        f"{_QUANTITY}{buttons}</form>"
        '<div id="merchantInfoFeature_feature_div" class="celwidget"><span class="a-size-small">Ships from '
        f'{market(plan.market).name}</span> <span class="a-size-small">Sold by {market(plan.market).name}</span></div>'
        f"{offers}</div></div>"
    )


def _related(plan: Plan) -> str:
    # Decoy prices of other products, below the fold, as on every real page.
    cards = []
    shop = market(plan.market)
    for index in range(1, 5):
        other = f"B0FAKE{index:04d}"
        decoy = html.escape(money(default_price(other), shop))
        cards.append(
            '<li class="a-carousel-card"><div class="a-section sims-fbt-image-box">'
            f'<a class="a-link-normal" href="/dp/{other}/ref=sims_dp_d_dex_popular_subs_t3_v6_d_sccl_2_{index}">'
            f"FakeBrand Accessory {index}</a>"
            f'<span class="a-price" data-a-size="m" data-a-color="base"><span class="a-offscreen">'
            f'{decoy}</span><span aria-hidden="true">{decoy}</span>'
            "</span></div></li>"
        )
    return (
        '<div id="sims-consolidated-2_feature_div" class="celwidget"><h2 class="a-carousel-heading">'
        'Products related to this item</h2><ol class="a-carousel" role="list">'
        f"{''.join(cards)}</ol></div>"
    )


def product_page(plan: Plan) -> bytes:
    title = html.escape(plan.title)
    shop = market(plan.market)
    head_padding, tail_padding = _padding(plan.padding_kb)
    return (
        f'<!doctype html><html lang="{shop.html_lang}" class="a-no-js" data-19ax5a9jf="dingo"><head>'
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{shop.name}: {title} : Everything Else</title>"
        f'<link rel="canonical" href="https://www.{shop.code}/{_slug(plan.title)}/dp/{plan.asin}">'
        f'<meta name="description" content="{title}">'
        f"<script>var ue_t0=ue_t0||+new Date();var ue_sn='www.{shop.code}';</script>"
        "</head>"
        '<body class="a-m-us a-aui_72554-c a-aui_killswitch_csa_logger_372963-c dp"><div id="a-page">'
        '<header id="navbar-main" class="nav-opt-sprite"><div id="nav-belt">'
        '<a href="/ref=nav_logo" class="nav-logo-link" aria-label="Amazon">Amazon</a>'
        '<form id="nav-search-bar-form" accept-charset="utf-8" action="/s/ref=nav_bb_sb" method="GET" role="search">'
        '<input type="text" id="twotabsearchtextbox" name="field-keywords" placeholder="Search Amazon"></form>'
        '<a href="/gp/cart/view.html?ref_=nav_cart" id="nav-cart"><span id="nav-cart-count">0</span> Cart</a>'
        "</div></header>"
        f"{head_padding}"
        '<div id="dp" class="fakestore en_US"><div id="dp-container" class="a-container" role="main"><div id="ppd">'
        '<div id="leftCol"><div id="imageBlock"><img id="landingImage" '
        f'alt="{title}" src="/images/I/{plan.asin}.jpg"></div></div>'
        '<div id="centerCol" class="centerColAlign">'
        f'<div id="title_feature_div" class="celwidget" data-feature-name="title" data-csa-c-asin="{plan.asin}">'
        '<div id="titleSection" class="a-section a-spacing-none"><h1 id="title" class="a-size-large a-spacing-none">'
        f'<span id="productTitle" class="a-size-large product-title-word-break">        {title}       </span>'
        "</h1></div></div>"
        '<div id="bylineInfo_feature_div" class="celwidget"><a id="bylineInfo" class="a-link-normal" '
        'href="/stores/FakeBrand/page/00000000-0000-0000-0000-000000000000">Visit the FakeBrand Store</a></div>'
        '<div id="averageCustomerReviews_feature_div" class="celwidget">'
        '<span id="acrPopover" class="reviewCountTextLinkedHistogram" '
        'title="4.6 out of 5 stars"><span class="a-size-base a-color-base">4.6</span></span> '
        '<span id="acrCustomerReviewText" class="a-size-base">1,234 ratings</span></div>'
        f"{_core_price(plan)}"
        '<div id="feature-bullets" class="a-section a-spacing-medium a-spacing-top-small">'
        '<ul class="a-unordered-list a-vertical a-spacing-mini">'
        '<li><span class="a-list-item"> Made of brushed stainless steel; dishwasher safe. </span></li>'
        '<li><span class="a-list-item"> Two in the box; fits every standard fake fixture. </span></li>'
        "</ul></div></div>"
        f'<div id="rightCol">{_buy_box(plan)}</div></div>'
        f"{_related(plan)}{tail_padding}"
        "</div></div></div></body></html>"
    ).encode()


def captcha_page(asin: str, market_code: str = DEFAULT_MARKET) -> bytes:
    shop = market(market_code)
    english = shop.texts.captcha.startswith("Type the characters")
    lead = (
        '<h4>Enter the characters you see below</h4><p class="a-last">Sorry, we just need to make sure you\'re not '
        "a robot. For best results, please make sure your browser is accepting cookies.</p>"
        if english
        else f"<h4>{shop.texts.captcha}</h4>"
    )
    return (
        f'<!doctype html><html lang="{shop.html_lang}" class="a-no-js"><head><meta charset="utf-8">'
        f'<title dir="ltr">{shop.name}</title>'
        f'<script>var ue_sn = "opfcaptcha.{shop.code}", ue_id = "FAKESTORE0000000000";</script></head><body>'
        "<!-- To discuss automated access to Amazon data please contact api-services-support@amazon.com. -->"
        '<div class="a-container a-padding-double-large"><div class="a-row a-spacing-double-large">'
        f'<div class="a-box a-alert a-alert-info a-spacing-base"><div class="a-box-inner">{lead}</div></div>'
        '<form method="get" action="/errors/validateCaptcha" name="">'
        '<input type="hidden" name="amzn" value="ZmFrZXN0b3JlLWNhcHRjaGE=">'
        f'<input type="hidden" name="amzn-r" value="/dp/{asin}">'
        f"<h4>{shop.texts.captcha}</h4>"
        '<div class="a-row a-text-center"><img src="/captcha/fakestore/Captcha_fake.jpg"></div>'
        '<input autocomplete="off" spellcheck="false" placeholder="Type characters" id="captchacharacters" '
        'name="field-keywords" autocapitalize="off" type="text">'
        '<span class="a-button a-button-primary a-span12"><span class="a-button-inner">'
        '<button type="submit" class="a-button-text">Continue shopping</button></span></span></form>'
        "</div></div></body></html>"
    ).encode()


def soft_captcha_page(asin: str, market_code: str = DEFAULT_MARKET) -> bytes:
    shop = market(market_code)
    return (
        f'<!doctype html><html lang="{shop.html_lang}" class="a-no-js"><head><meta charset="utf-8">'
        f'<title dir="ltr">{shop.name}</title></head><body>'
        '<div class="a-container a-padding-double-large"><div class="a-row a-spacing-double-large">'
        '<div class="a-section"><div class="a-box a-color-offset-background"><div class="a-box-inner">'
        f"<h4>{shop.texts.soft_captcha}</h4>"
        '<form method="get" action="/errors/validateCaptcha" name="">'
        '<input type="hidden" name="amzn" value="ZmFrZXN0b3JlLXNvZnQ=">'
        f'<input type="hidden" name="amzn-r" value="/dp/{asin}">'
        '<input type="hidden" name="field-keywords" value="FAKEWD">'
        '<span class="a-button a-button-primary a-span12"><span class="a-button-inner">'
        '<button type="submit" class="a-button-text" alt="Continue shopping">Continue shopping</button>'
        "</span></span></form></div></div></div>"
        '<div class="a-divider a-divider-section"><div class="a-divider-inner"></div></div>'
        '<div class="a-text-center a-spacing-small a-size-mini"><a href="/gp/help/customer/display.html/'
        '?nodeId=508088">Conditions of Use</a></div></div></div></body></html>'
    ).encode()


def waf_page() -> bytes:
    return (
        b'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title></title>'
        b"<script>window.awsWafCookieDomainList = ['.amazon.com'];"
        b'window.gokuProps = {"key": "RkFLRVNUT1JF", "iv": "RkFLRQ==", "context": "ZmFrZXN0b3Jl"};</script>'
        b'<script src="/fake-waf/challenge.js"></script></head><body><div id="challenge-container"></div>'
        b"<script>AwsWafIntegration.saveReferrer(); AwsWafIntegration.checkForceRefresh().then(function (r) "
        b"{ if (r) { window.location.reload(true); } });</script>"
        b"<noscript><h1>JavaScript is disabled</h1>Enable JavaScript to continue.</noscript></body></html>"
    )


def _dogs_page(title: str, message: str, ref: str, image: str) -> bytes:
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title>'
        "<style>body { margin: 0; font-family: Arial, sans-serif } #g { text-align: center; margin: 30px 0 }</style>"
        f'</head><body><a href="/ref={ref}_logo"><img src="/images/G/01/error/logo.png" alt="Amazon.com"></a>'
        f'<form action="/s" method="GET" role="search"><input name="field-keywords" placeholder="Search">'
        f'<input name="ref" type="hidden" value="{ref}_search"></form>'
        f'<div id="g"><div><a href="/ref={ref}_link"><img src="/images/G/01/error/{image}" alt="{message}"></a></div>'
        f'<a href="/dogsofamazon/ref={ref}_d" target="_blank" rel="noopener noreferrer">'
        '<img id="d" alt="Dogs of Amazon" src="/images/G/01/error/21.jpg"></a></div></body></html>'
    ).encode()


def dogs_503_page(market_code: str = DEFAULT_MARKET) -> bytes:
    return _dogs_page(
        market(market_code).texts.something_went_wrong,
        "Sorry! Something went wrong on our end. Please go back and try again or go to Amazon's home page.",
        "cs_503",
        "500_503.png",
    )


def not_found_page() -> bytes:
    return _dogs_page(
        "Page Not Found",
        "Sorry! We couldn't find that page. Try searching or go to Amazon's home page.",
        "cs_404",
        "title._TTD_.png",
    )


def rate_limited_page() -> bytes:
    return (
        b"<!doctype html><html><head><title>Too Many Requests</title></head><body>"
        b"<h1>Too Many Requests</h1><p>Please slow down.</p></body></html>"
    )


# --- filler for realistic page sizes -------------------------------------------------------------


@lru_cache(maxsize=16)
def filler_block(size: int) -> bytes:
    """Roughly ``size`` bytes of product-page-like inline scripts, styles and widgets, with no
    prices, no block-page markers and no ids the parser looks for."""
    parts: list[str] = []
    length = 0
    index = 0
    while length < size:
        state = json.dumps(
            {"widget": f"fake-widget-{index}", "weblab": f"FAKE_WEBLAB_{index:05d}", "treatment": "C", "slot": index}
        )
        kind = index % 3
        if kind == 0:
            part = (
                f'<script type="text/javascript">P.when("A", "ready").execute("fake-widget-{index}", '
                f'function (A) {{ var state = {state}; A.state("fakeWidget{index}", state); }});</script>\n'
            )
        elif kind == 1:
            part = (
                f'<style type="text/css">.fake-widget-{index} .a-section {{ margin: 0 0 {index % 24}px 0; '
                f"padding: {index % 7}px; }} .fake-widget-{index} .a-size-base {{ line-height: 20px; }}</style>\n"
            )
        else:
            part = (
                f'<div id="fake_feature_{index}" class="celwidget fake-widget-{index}" data-feature-name="fake{index}" '
                f'data-csa-c-type="widget"><div class="a-section a-spacing-small"><span class="a-size-base '
                f'a-color-secondary">Frequently viewed accessories and details, section {index}.</span></div></div>\n'
            )
        parts.append(part)
        length += len(part)
        index += 1
    return "".join(parts).encode()[:size]


@lru_cache(maxsize=16)
def _padding(kb: int) -> tuple[str, str]:
    """Filler totalling ``kb`` KiB: 60% before the title (as on real pages), the rest after the buy box."""
    if kb <= 0:
        return "", ""
    text = filler_block(kb * 1024).decode()
    # Cut at a line boundary so no tag is split.
    split = text.rfind("\n", 0, len(text) * 6 // 10) + 1
    end = text.rfind("\n") + 1
    return text[:split], text[split:end]
