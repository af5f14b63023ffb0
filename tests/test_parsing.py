"""The product-page parser: money, every rule in ``RULES`` and the traps each one avoids.

Fixtures are small hand-written pages that mimic Amazon's markup (ids, classes, nesting), one
per rule or trap, so a failing test names the layout that broke.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scraping.parsing import (
    RULES,
    Money,
    PageSource,
    RuleMatch,
    availability_of_text,
    parse_amount,
    parse_money,
    parse_product_page,
    read_asin,
    read_availability,
    read_title,
)
from scraping.results import Availability


def page(*parts: str, canonical: str = "https://www.amazon.com/Widget/dp/B000000001") -> bytes:
    """A minimal product page around ``parts``."""
    body = "\n".join(parts)
    return (
        '<!doctype html><html lang="en-us"><head><meta charset="utf-8">'
        f'<title>Amazon.com: Widget</title><link rel="canonical" href="{canonical}"></head>'
        f'<body><div id="dp"><div id="ppd">{body}</div></div></body></html>'
    ).encode()


def run_rule(name: str, html: bytes) -> RuleMatch | None:
    rule = next(rule for rule in RULES if rule.name == name)
    return rule.match(PageSource(html))


def a_price(amount: str, *, offscreen: str | None = None, cls: str = "", strike: bool = False) -> str:
    """An ``.a-price`` span: screen-reader copy plus visible symbol/whole/fraction parts."""
    whole, _, fraction = amount.partition(".")
    strike_attr = ' data-a-strike="true"' if strike else ""
    hidden = offscreen if offscreen is not None else f"${amount}"
    return (
        f'<span class="a-price {cls}"{strike_attr}><span class="a-offscreen">{hidden}</span>'
        f'<span aria-hidden="true"><span class="a-price-symbol">$</span><span class="a-price-whole">{whole}'
        f'<span class="a-price-decimal">.</span></span><span class="a-price-fraction">{fraction}</span></span></span>'
    )


def core_price_display(inner: str) -> str:
    return f'<div id="corePriceDisplay_desktop_feature_div" class="celwidget">{inner}</div>'


IN_STOCK = '<div id="availability" class="a-section"><span class="a-color-success">In Stock</span></div>'
TITLE = '<span id="productTitle" class="a-size-large">  Acme Widget, Blue  </span>'
ASIN_INPUT = '<input type="hidden" id="ASIN" name="ASIN" value="B000000001">'


# ---- money ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("$1,299.99", "1299.99", "USD"),
        ("1.279,00 €", "1279.00", "EUR"),
        ("₹49,990.00", "49990.00", "INR"),
        ("R$ 796,81", "796.81", "BRL"),
        ("SAR 1,279.00", "1279.00", "SAR"),
        ("SAR1,279.00", "1279.00", "SAR"),
        ("EUR 219,00", "219.00", "EUR"),
        ("£13.53", "13.53", "GBP"),
        ("1\u202f279,00\u00a0€", "1279.00", "EUR"),
        ("8,00€", "8.00", "EUR"),
    ],
)
def test_it_reads_prices_in_every_marketplace_format(text, amount, currency):
    assert parse_money(text) == Money(Decimal(amount), currency)


def test_three_digits_after_a_single_separator_are_thousands():
    assert parse_amount("49,990") == Decimal("49990")
    assert parse_amount("1.279") == Decimal("1279")
    assert parse_amount("8,99") == Decimal("8.99")
    assert parse_amount("1,234,567") == Decimal("1234567")


def test_a_price_range_is_not_a_price():
    assert parse_money("$12.99 - $24.99") is None


def test_text_without_digits_is_not_a_price():
    assert parse_money("Currently unavailable.") is None


def test_a_dollar_sign_on_a_canadian_page_is_canadian_dollars():
    assert parse_money("$19.99", "CAD") == Money(Decimal("19.99"), "CAD")
    assert parse_money("R$ 19,99", "CAD") == Money(Decimal("19.99"), "BRL")


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("$12,345.67 12,345.67", "12345.67"),  # was 123456712345.67
        ("$19.99 2", "19.99"),  # was 19992
        ("$29.99 10% off", "29.99"),  # was 29.9910
        ("1.279,00 € 2.399,00 €", "1279.00"),
        ("1 279,00 € 1 499,00 €", "1279.00"),
        ("₹1,23,456.00 ₹1,50,000.00", "123456.00"),  # India groups lakhs
        ("CHF 1'234.50 statt 1'499.00", "1234.50"),
        ("$5.99 (2 new offers)", "5.99"),
    ],
)
def test_two_numbers_side_by_side_are_never_joined_into_one(text, amount):
    money = parse_money(text)
    assert money is not None and money.amount == Decimal(amount)


@pytest.mark.parametrize("text", ["1,234.567", "19.99,20.00", "$.99"])
def test_a_number_that_is_not_one_well_formed_amount_is_not_a_price(text):
    assert parse_money(text) is None


def format_amount(amount: Decimal, style: str) -> str:
    """``amount`` (two decimals) as one of the marketplaces prints it."""
    whole, fraction = f"{amount:.2f}".split(".")
    if style == "india":
        head, tail = whole[:-3], whole[-3:]
        pairs = [head[max(0, end - 2) : end] for end in range(len(head), 0, -2)][::-1]
        return ",".join([*pairs, tail]) + "." + fraction
    group, decimal = {
        "us": (",", "."),
        "de": (".", ","),
        "fr": ("\u202f", ","),
        "se": ("\u00a0", ","),
        "ch": ("'", "."),
        "plain_dot": ("", "."),
        "plain_comma": ("", ","),
    }[style]
    return f"{int(whole):,}".replace(",", group) + decimal + fraction


SYMBOLS = ["", "$", "€", "£", "R$ ", "SAR ", "¥", "CHF "]
AMOUNTS = st.decimals(min_value=0, max_value=Decimal("99999999999.99"), places=2, allow_nan=False)
STYLES = st.sampled_from(["us", "de", "fr", "se", "ch", "plain_dot", "plain_comma", "india"])
# Whatever sits between the two amounts: anything but a range dash, starting with neither a digit
# nor a separator touching the first amount's last digit (that would make it a longer number).
JOINERS = st.text(alphabet=st.sampled_from(list(" \u00a0abcxyz%()/&:!*+")), min_size=1, max_size=12) | st.sampled_from(
    [" ", " 10% off ", " (2 new offers) ", " / count ", " with 3 coupons: ", " was "]
)


@settings(max_examples=400, deadline=None)
@given(
    first=AMOUNTS,
    second=AMOUNTS,
    styles=st.tuples(STYLES, STYLES),
    symbols=st.tuples(*[st.sampled_from(SYMBOLS)] * 2),
    joiner=JOINERS,
)
def test_any_two_amounts_joined_by_text_parse_as_the_first(first, second, styles, symbols, joiner):
    text = symbols[0] + format_amount(first, styles[0]) + joiner + symbols[1] + format_amount(second, styles[1])
    money = parse_money(text)
    assert money is not None, text
    assert money.amount == first, text


# ---- core_price_display (2022+ layouts) --------------------------------------------------------


def test_it_picks_the_buy_box_price_not_the_list_price():
    # The list price's .a-offscreen comes FIRST in the block: the classic trap.
    html = page(
        core_price_display(
            '<div class="a-section"><span class="basisPrice">List Price: '
            + a_price("40.13", strike=True, cls="a-text-price")
            + "</span></div>"
            + a_price("33.69", cls="priceToPay")
        )
    )
    found = run_rule("core_price_display", html)
    assert found is not None
    assert found.price == Money(Decimal("33.69"), "USD")
    assert found.list_price == Money(Decimal("40.13"), "USD")


def test_it_reads_whole_and_fraction_when_the_offscreen_copy_is_empty():
    html = page(
        core_price_display(
            '<span class="aok-offscreen"> $99.99 </span>' + a_price("99.99", offscreen=" ", cls="priceToPay")
        )
    )
    found = run_rule("core_price_display", html)
    assert found is not None and found.price == Money(Decimal("99.99"), "USD")


def test_it_reads_a_whole_price_without_fraction():
    html = page(
        core_price_display(
            '<span class="a-price priceToPay"><span class="a-offscreen"> </span><span aria-hidden="true">'
            '<span class="a-price-symbol">₹</span><span class="a-price-whole">49,990</span></span></span>'
        ),
        canonical="https://www.amazon.in/x/dp/B000000001",
    )
    found = run_rule("core_price_display", html)
    assert found is not None and found.price == Money(Decimal("49990"), "INR")


def test_it_falls_back_to_the_accessibility_label():
    html = page(
        core_price_display(
            '<span id="apex-pricetopay-accessibility-label" class="aok-offscreen">'
            " 33,69 € avec 16 % d'économies </span>"
        ),
        canonical="https://www.amazon.fr/x/dp/0241401127",
    )
    found = run_rule("core_price_display", html)
    assert found is not None and found.price == Money(Decimal("33.69"), "EUR")


def test_it_ignores_the_per_unit_price():
    html = page(
        core_price_display(
            '<span class="a-price priceToPay"><span class="a-offscreen">8,00€</span></span>'
            '<span class="pricePerUnit">(<span class="a-price a-text-price">'
            '<span class="a-offscreen">57,14€</span></span> / kg)</span>'
        ),
        canonical="https://www.amazon.de/x/dp/000004458X",
    )
    found = run_rule("core_price_display", html)
    assert found is not None and found.price == Money(Decimal("8.00"), "EUR")
    assert found.list_price is None


def test_it_takes_the_featured_offer_not_the_used_accordion_row():
    html = page(
        '<div id="apex_desktop_newAccordionRow">' + core_price_display(a_price("109.99", cls="priceToPay")) + "</div>",
        '<div id="apex_desktop_usedAccordionRow">'
        + core_price_display(
            a_price("79.22", cls="priceToPay")
            + "New Condition Price: "
            + a_price("109.99", strike=True, cls="a-text-price")
        )
        + "</div>",
    )
    found = run_rule("core_price_display", html)
    assert found is not None
    assert found.price == Money(Decimal("109.99"), "USD")
    assert found.list_price is None


def test_it_ignores_coupons_prime_prices_and_protection_plans_around_the_price_block():
    html = page(
        '<div id="apex_desktop">',
        core_price_display(a_price("8.99", cls="priceToPay")),
        '<div id="promoPriceBlockMessage_feature_div">Save $2.00 with coupon</div>',
        '<div id="primeExclusivePricingMessage">Join Prime to buy this item at $8.09</div>',
        "</div>",
        '<div id="mbc">Add a protection plan: 2-Year Plan for $1.22</div>',
    )
    result = parse_product_page(html)
    assert result.price == Decimal("8.99")
    assert result.rule == "core_price_display"


def test_it_reads_the_mobile_price_block():
    html = page(
        '<div id="corePriceDisplay_mobile_feature_div">'
        '<span class="a-price priceToPay"><span class="a-offscreen"> </span><span aria-hidden="true">'
        '<span class="a-price-symbol">R$</span>'
        '<span class="a-price-whole">796<span class="a-price-decimal">,</span></span>'
        '<span class="a-price-fraction">81</span></span></span>'
        '<span class="basisPrice">De: <span class="a-price a-text-price" data-a-strike="true">'
        '<span class="a-offscreen">R$849,00</span></span></span>'
        "<div>Em até 10x R$ 79,69 sem juros</div></div>",
        canonical="https://www.amazon.com.br/x/dp/B0DKLQT9XR",
    )
    found = run_rule("core_price_display", html)
    assert found is not None
    assert found.price == Money(Decimal("796.81"), "BRL")
    assert found.list_price == Money(Decimal("849.00"), "BRL")


# ---- core_price_table (2023 table layout) ------------------------------------------------------


def test_it_reads_the_price_row_of_the_core_price_table():
    html = page(
        '<div id="corePrice_desktop"><table>'
        "<tr><td>List Price:</td><td>" + a_price("307.95", strike=True, cls="a-text-price") + "</td></tr>"
        "<tr><td>Price:</td><td>" + a_price("269.95", cls="a-text-price apexPriceToPay") + "</td></tr>"
        "<tr><td>You Save:</td><td>" + a_price("38.00", cls="a-text-price") + "</td></tr>"
        "</table></div>"
    )
    found = run_rule("core_price_table", html)
    assert found is not None
    assert found.price == Money(Decimal("269.95"), "USD")
    assert found.list_price == Money(Decimal("307.95"), "USD")


def test_an_empty_core_price_table_is_no_match():
    assert run_rule("core_price_table", page('<div id="corePrice_desktop"><div class="a-section"></div></div>')) is None


# ---- core_price_buybox ---------------------------------------------------------------------------


def test_it_reads_the_buy_box_copy_of_the_price_skipping_struck_and_unit_prices():
    html = page(
        '<div id="corePrice_feature_div">'
        '<span class="pricePerUnit"><span class="a-price"><span class="a-offscreen">$0.50</span></span>/count</span>'
        + a_price("15.00", strike=True, cls="a-text-price")
        + '<span class="a-price"><span class="a-offscreen">$12.00</span></span></div>'
    )
    found = run_rule("core_price_buybox", html)
    assert found is not None
    assert found.price == Money(Decimal("12.00"), "USD")
    assert found.list_price == Money(Decimal("15.00"), "USD")


# ---- priceblock (2015-2021 layouts) --------------------------------------------------------------


def old_price_table(*rows: str) -> str:
    return '<div id="price" class="a-section"><table class="a-lineitem">' + "".join(rows) + "</table></div>"


def test_it_reads_the_old_priceblock_not_the_shipping_charge():
    html = page(
        old_price_table(
            '<tr id="priceblock_ourprice_row"><td>Price:</td><td>'
            '<span id="priceblock_ourprice" class="a-color-price">$1.19</span>'
            '<span id="ourprice_shippingmessage">+ $5.39 shipping</span></td></tr>'
        )
    )
    found = run_rule("priceblock", html)
    assert found is not None
    assert found.price == Money(Decimal("1.19"), "USD")
    assert found.list_price is None


def test_it_takes_the_old_list_price_from_the_struck_through_row():
    html = page(
        old_price_table(
            '<tr><td>Precio recomendado:</td><td><span class="a-text-strike"> EUR 239,00</span></td></tr>',
            '<tr><td>Precio:</td><td><span id="priceblock_ourprice">EUR 219,00</span></td></tr>',
            '<tr id="regularprice_savings"><td>Ahorras:</td><td>EUR 20,00 (8%)</td></tr>',
        ),
        canonical="https://www.amazon.es/x/dp/B01MUGXRT9",
    )
    found = run_rule("priceblock", html)
    assert found is not None
    assert found.price == Money(Decimal("219.00"), "EUR")
    assert found.list_price == Money(Decimal("239.00"), "EUR")


def test_a_deal_price_wins_over_the_regular_price():
    html = page(
        old_price_table(
            '<tr><td>Was:</td><td><span id="priceblock_ourprice" class="a-text-strike">$20.00</span></td></tr>',
            '<tr><td>Deal Price:</td><td><span id="priceblock_dealprice">$15.00</span></td></tr>',
        )
    )
    found = run_rule("priceblock", html)
    assert found is not None
    assert found.price == Money(Decimal("15.00"), "USD")
    assert found.list_price == Money(Decimal("20.00"), "USD")


def test_a_priceblock_range_is_not_a_price():
    html = page(old_price_table('<tr><td><span id="priceblock_ourprice">$12.48 - $45.00</span></td></tr>'))
    assert run_rule("priceblock", html) is None


def test_the_unit_price_next_to_the_priceblock_is_ignored():
    html = page(
        old_price_table(
            '<tr><td><span id="priceblock_ourprice">$12.48</span>'
            '<span class="a-size-small">($6.24 / Pack)</span></td></tr>'
        )
    )
    found = run_rule("priceblock", html)
    assert found is not None and found.price == Money(Decimal("12.48"), "USD")


# ---- buy_new_offer, kindle_price, used_only_offer ----------------------------------------------------


def test_it_reads_the_buy_new_row_and_ignores_the_used_row():
    html = page(
        '<div id="buybox"><div id="rbbContainer">'
        '<div id="buyNewSection"><span class="a-color-price offer-price">£13.53</span></div>'
        '<div id="buyNewInner"><span class="a-color-secondary a-text-strike">£16.99</span> You Save: £3.46</div>'
        '<div id="usedBuySection"><span class="a-color-price offer-price">£8.50</span></div>'
        "</div></div>",
        canonical="https://www.amazon.co.uk/x/dp/1849757097",
    )
    found = run_rule("buy_new_offer", html)
    assert found is not None
    assert found.price == Money(Decimal("13.53"), "GBP")
    assert found.list_price == Money(Decimal("16.99"), "GBP")


def test_it_reads_the_kindle_price_not_the_other_formats():
    html = page(
        '<div id="tmmSwatches"><span class="a-color-price">$8.00</span> Paperback</div>',
        '<div id="buybox"><table>'
        '<tr class="print-list-price"><td>Print List Price:</td><td class="a-text-strike">$10.00</td></tr>'
        '<tr class="kindle-price"><td>Kindle Price:</td><td class="a-color-price a-size-medium">$9.99</td></tr>'
        "</table></div>",
    )
    found = run_rule("kindle_price", html)
    assert found is not None
    assert found.price == Money(Decimal("9.99"), "USD")
    assert found.list_price == Money(Decimal("10.00"), "USD")


def test_a_class_name_that_only_starts_like_the_kindle_row_is_not_it():
    html = page('<table><tr class="kindle-price-note"><td class="a-color-price">$1.00</td></tr></table>')
    assert run_rule("kindle_price", html) is None


def test_a_used_only_buy_box_sells_the_used_copy():
    html = page(
        '<div id="usedOnlyBuybox"><div id="usedBuySection">'
        '<span class="a-color-price offer-price">£4.45</span></div>'
        '<div id="usedbuyBox"><span>£3.99 delivery</span></div></div>',
        canonical="https://www.amazon.co.uk/x/dp/1849757097",
    )
    found = run_rule("used_only_offer", html)
    assert found is not None
    assert found.price == Money(Decimal("4.45"), "GBP")


def test_a_used_offer_next_to_a_new_one_is_not_the_used_only_rule():
    html = page('<div id="usedBuySection"><span class="offer-price">£8.50</span></div>')
    assert run_rule("used_only_offer", html) is None


# ---- no-price states ------------------------------------------------------------------------------


def test_currently_unavailable_is_a_no_price_state():
    html = page(
        '<div id="availability"><span>Currently unavailable. '
        "We don't know when or if this item will be back in stock.</span></div>",
        '<div id="outOfStock" class="a-box"><span class="a-text-bold">Currently unavailable.</span></div>',
    )
    assert run_rule("no_price:currently_unavailable", html) == RuleMatch(availability=Availability.UNAVAILABLE)
    result = parse_product_page(html)
    assert result.price is None
    assert result.availability is Availability.UNAVAILABLE
    assert result.rule == "no_price:currently_unavailable"


def test_an_out_of_stock_box_in_any_language_means_unavailable():
    html = page('<div id="outOfStock" class="a-box"><span>Momentan nicht erhältlich.</span></div>')
    assert run_rule("no_price:currently_unavailable", html) == RuleMatch(availability=Availability.UNAVAILABLE)


def test_temporarily_out_of_stock_is_out_of_stock():
    html = page('<div id="availability"><span>Temporarily out of stock.</span></div>')
    assert run_rule("no_price:currently_unavailable", html) == RuleMatch(availability=Availability.OUT_OF_STOCK)


def test_no_featured_offer_gives_no_price_even_with_similar_items_priced_nearby():
    html = page(
        '<div id="buybox"><div id="unqualifiedBuyBox" class="a-box">'
        '<div id="exportAlternativeContentTitle">Similar items shipping to Philippines</div>'
        '<span class="a-color-price">$129.99</span><span class="a-color-price">$89.99</span>'
        '<span id="buybox-see-all-buying-choices" class="a-button"><a href="/gp/offer-listing/B000000001">'
        "See All Buying Options</a></span></div></div>",
        '<div id="corePrice_desktop"><div class="a-section"></div></div>',
    )
    result = parse_product_page(html)
    assert result.price is None
    assert result.rule == "no_price:no_featured_offer"
    assert result.availability is Availability.UNKNOWN
    assert result.currency == "USD"


def test_a_variant_not_selected_gives_no_price_and_unknown_availability():
    html = page(
        TITLE,
        '<div id="priceNotAvailable_feature_div">'
        "<span>To see product details, add this item to your cart.</span></div>",
        '<div id="corePriceDisplay_desktop_feature_div" class="celwidget"> </div>',
        '<div id="partialStateBuyBox_feature_div"><form id="addToCart"><div id="partialStateBuyboxForMerch">'
        "<span>To buy, select</span> <span>Size</span>"
        '<input id="add-to-cart-button" type="submit" value="Add to Cart"></div></form></div>',
    )
    result = parse_product_page(html)
    assert result.price is None
    assert result.rule == "no_price:variant_not_selected"
    assert result.availability is Availability.UNKNOWN


def test_a_price_shown_only_in_the_cart_is_a_no_price_state():
    html = page(
        '<div id="dpSorryPage"><h1 id="title" class="a-size-large"><span>Elon Musk</span></h1>'
        '<span class="a-color-secondary">Our Price: </span>'
        "<span>To see product details, add this item to your cart. You can always remove it later.</span>"
        '<form id="addToCart"><input id="add-to-cart-button" type="submit" value="Add to Cart"></form></div>',
        '<div id="similarities_feature_div">Frequently bought together. This item: Elon Musk $20.36</div>',
    )
    result = parse_product_page(html)
    assert result.price is None
    assert result.rule == "no_price:price_in_cart"
    assert result.title == "Elon Musk"
    assert result.availability is Availability.IN_STOCK


def test_a_page_with_neither_price_nor_known_state_matches_no_rule():
    result = parse_product_page(page(TITLE, IN_STOCK))
    assert result.rule == ""
    assert result.price is None
    assert result.title == "Acme Widget, Blue"


def test_rule_names_are_unique_and_price_rules_come_before_no_price_states():
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    first_state = next(i for i, name in enumerate(names) if name.startswith("no_price:"))
    assert all(name.startswith("no_price:") for name in names[first_state:])


# ---- finding regions in the raw bytes ------------------------------------------------------------


def test_an_id_inside_a_script_template_is_not_the_element():
    html = page(
        '<script type="text/template"><div id="corePriceDisplay_desktop_feature_div">'
        '<span class="a-price priceToPay"><span class="a-offscreen">$1.00</span></span></div></script>',
        core_price_display(a_price("25.00", cls="priceToPay")),
    )
    assert parse_product_page(html).price == Decimal("25.00")


def test_commented_out_markup_is_ignored():
    html = page(
        '<!-- <span id="priceblock_ourprice">$1.00</span> -->',
        old_price_table('<tr><td><span id="priceblock_ourprice">$30.00</span></td></tr>'),
    )
    assert parse_product_page(html).price == Decimal("30.00")


def test_a_data_attribute_ending_in_id_is_not_an_id():
    html = page(
        '<div data-csa-c-slot-id="corePriceDisplay_desktop_feature_div"><span class="a-price priceToPay">'
        '<span class="a-offscreen">$1.00</span></span></div>',
        core_price_display(a_price("42.00", cls="priceToPay")),
    )
    assert parse_product_page(html).price == Decimal("42.00")


def test_a_region_ends_at_its_own_closing_tag_even_with_nested_divs_and_scripts():
    html = page(
        '<div id="availability"><div><div>In Stock</div></div><script>var s = "<div>";</script></div>',
        "<div>Only 1 left in stock - order soon</div>",
    )
    source = PageSource(html)
    region = source.element("availability")
    assert region is not None
    assert region.get_text(" ", strip=True).startswith("In Stock")
    assert "order soon" not in region.get_text()


# ---- title, ASIN, currency, availability ---------------------------------------------------------


def test_it_reads_the_title_from_product_title_then_the_kindle_title_then_h1_title():
    assert read_title(PageSource(page(TITLE))) == "Acme Widget, Blue"
    kindle = page('<h1 id="title"><span id="ebooksProductTitle">The Whole Truth</span> Kindle Edition</h1>')
    assert read_title(PageSource(kindle)) == "The Whole Truth"
    assert read_title(PageSource(page('<h1 id="title"><span>Elon Musk</span></h1>'))) == "Elon Musk"


def test_the_buy_box_asin_wins_over_a_canonical_url_that_names_the_parent():
    html = page(
        '<input type="hidden" id="ASIN" name="ASIN" value="B0CVCV33BG">',
        canonical="https://www.amazon.com/x/dp/B09CSFFHYF",
    )
    assert read_asin(PageSource(html)) == "B0CVCV33BG"


def test_the_asin_comes_from_the_canonical_url_when_there_is_no_input():
    assert read_asin(PageSource(page(canonical="https://www.amazon.com/Elon-Musk/dp/1982181281"))) == "1982181281"


def test_the_requested_asin_is_used_when_the_page_names_none():
    html = b"<html><body><p>nothing</p></body></html>"
    assert read_asin(PageSource(html), "B000000042") == "B000000042"


def test_a_page_without_a_price_still_reports_its_marketplace_currency():
    html = page('<div id="unqualifiedBuyBox"></div>', canonical="https://www.amazon.es/x/dp/B01MUGXRT9")
    assert parse_product_page(html).currency == "EUR"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("In Stock", Availability.IN_STOCK),
        ("Only 1 left in stock (more on the way).", Availability.IN_STOCK),
        ("Sólo queda(n) 3 en stock.", Availability.IN_STOCK),
        ("Em estoque", Availability.IN_STOCK),
        ("Gewöhnlich versandfertig in 2 bis 3 Tagen.", Availability.IN_STOCK),
        ("Currently unavailable. We don't know when or if this item will be back in stock.", Availability.UNAVAILABLE),
        ("Temporarily out of stock.", Availability.OUT_OF_STOCK),
        ("Derzeit nicht auf Lager.", Availability.OUT_OF_STOCK),
        ("Customize device to see availability", Availability.UNKNOWN),
    ],
)
def test_it_maps_availability_lines_in_several_languages(text, expected):
    assert availability_of_text(text) is expected


def test_an_empty_availability_line_with_an_add_to_cart_button_is_in_stock():
    html = page('<div id="availability"> </div>', '<input id="add-to-cart-button" type="submit">')
    assert read_availability(PageSource(html)) is Availability.IN_STOCK


def test_a_digital_item_with_a_one_click_button_is_in_stock():
    html = page('<span id="one-click-button" class="a-button"></span>')
    assert read_availability(PageSource(html)) is Availability.IN_STOCK


def test_without_availability_line_or_buy_button_availability_is_unknown():
    assert read_availability(PageSource(page(TITLE))) is Availability.UNKNOWN


def test_a_whole_new_layout_page_parses_end_to_end():
    html = page(
        TITLE,
        '<div id="apex_desktop">' + core_price_display(a_price("17.95", offscreen=" ", cls="priceToPay")) + "</div>",
        '<div id="olp_feature_div">2 new from $15.00</div>',
        '<div id="buybox">' + ASIN_INPUT + IN_STOCK + '<input id="add-to-cart-button" type="submit"></div>',
    )
    result = parse_product_page(html)
    assert result.asin == "B000000001"
    assert result.title == "Acme Widget, Blue"
    assert result.price == Decimal("17.95")
    assert result.currency == "USD"
    assert result.availability is Availability.IN_STOCK
    assert result.list_price is None
    assert result.rule == "core_price_display"


def test_a_device_from_price_is_the_price_and_customize_to_see_availability_is_unknown():
    html = page(
        old_price_table(
            '<tr id="priceblock_ourprice_row"><td id="priceblock_ourprice_lbl">From:</td>'
            '<td><span id="priceblock_ourprice">$119.99</span> &amp; FREE Shipping.</td></tr>'
        ),
        '<div id="availability"><span>Customize device to see availability</span></div>',
        '<div id="buybox">Add accessories: cover $19.99, charger $1.99'
        '<input id="add-to-cart-button" type="submit"></div>',
    )
    result = parse_product_page(html)
    assert (result.price, result.rule) == (Decimal("119.99"), "priceblock")
    assert result.availability is Availability.UNKNOWN


def test_the_first_condition_row_of_a_renewed_item_is_the_featured_offer():
    def table(price: str) -> str:
        return (
            '<div id="corePrice_desktop"><table><tr><td>List Price:</td><td>'
            + a_price("307.95", strike=True, cls="a-text-price")
            + "</td></tr><tr><td>Price:</td><td>"
            + a_price(price, cls="apexPriceToPay")
            + "</td></tr></table></div>"
        )

    html = page(table("269.95"), table("238.00"), table("230.00"))
    result = parse_product_page(html)
    assert (result.price, result.list_price, result.rule) == (Decimal("269.95"), Decimal("307.95"), "core_price_table")


def test_an_empty_featured_availability_line_is_not_replaced_by_the_used_offers_line():
    html = page(
        core_price_display(a_price("749.00", cls="priceToPay")),
        '<div id="newAccordionRow"><div id="availability"> </div><input id="add-to-cart-button" type="submit"></div>',
        '<div id="usedAccordionRow"><div id="availability"><span>Temporarily out of stock.</span></div></div>',
    )
    assert parse_product_page(html).availability is Availability.IN_STOCK
