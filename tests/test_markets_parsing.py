"""Prices, availability and block pages in every marketplace's conventions and language.

Money: a table of the formats each marketplace prints, and a property: any amount Babel writes
in a marketplace's locale (CLDR, which Amazon's pages follow) reads back as itself, in the right
currency. Pages: our own small fixtures in each language (product pages, captchas, the
"continue shopping" check, the dogs error page), plus the shared non-US pages
(tests/test_shared_corpus.py reads them all).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from babel.numbers import format_currency, get_currency_precision
from hypothesis import given, settings
from hypothesis import strategies as st

from scraping.classify import classify
from scraping.marketplaces import MARKETPLACES
from scraping.pages import analyse
from scraping.parsing import Money, availability_of_text, parse_money
from scraping.results import Availability, ErrorKind, ScrapeStatus

# ---- money ------------------------------------------------------------------------------------

# "1,279.00" and "1,234.56" as amazon.sa and amazon.eg print them in Arabic (after a right-to-left mark).
ARABIC_1279 = "\u200f\u0661\u066c\u0662\u0667\u0669\u066b\u0660\u0660"
ARABIC_1234_56 = "\u200f\u0661\u066c\u0662\u0663\u0664\u066b\u0665\u0666"


@pytest.mark.parametrize(
    ("text", "marketplace_currency", "amount", "currency"),
    [
        ("$1,234.56", "USD", "1234.56", "USD"),
        ("$1,234.56", "CAD", "1234.56", "CAD"),
        ("CDN$ 1,234.56", None, "1234.56", "CAD"),
        ("$1,234.56", "MXN", "1234.56", "MXN"),
        ("$1,234.56", "AUD", "1234.56", "AUD"),
        ("S$1,234.56", None, "1234.56", "SGD"),
        ("$1,234.56", "SGD", "1234.56", "SGD"),
        ("R$ 1.234,56", None, "1234.56", "BRL"),
        ("£1,234.56", None, "1234.56", "GBP"),
        ("1.234,56 €", None, "1234.56", "EUR"),
        ("1.234,56€", "EUR", "1234.56", "EUR"),
        ("1\u202f234,56\u00a0€", None, "1234.56", "EUR"),  # French: narrow no-break space
        ("€ 1.234,56", None, "1234.56", "EUR"),  # Dutch
        ("1 234,56 kr", None, "1234.56", "SEK"),
        ("1 234,56 zł", None, "1234.56", "PLN"),
        ("1.234,56 TL", None, "1234.56", "TRY"),
        ("₺1.234,56", None, "1234.56", "TRY"),
        ("AED 1,234.56", None, "1234.56", "AED"),
        ("\u200f1,234.56\u00a0د.إ.\u200f", None, "1234.56", "AED"),
        ("SAR 1,279.00", None, "1279.00", "SAR"),
        # Arabic-Indic digits with the Arabic thousands and decimal marks
        (ARABIC_1279 + "\u00a0ر.س.\u200f", None, "1279.00", "SAR"),
        ("EGP 1,234.56", None, "1234.56", "EGP"),
        (ARABIC_1234_56 + "\u00a0ج.م.\u200f", None, "1234.56", "EGP"),
        ("₹1,23,456.00", None, "123456.00", "INR"),
        ("₹49,990", None, "49990", "INR"),
        ("￥1,234", None, "1234", "JPY"),
        ("¥12,345", "JPY", "12345", "JPY"),
        ("1,234円", None, "1234", "JPY"),
        ("CHF 1'234.50", None, "1234.50", "CHF"),
        ("CHF 1\u2019234.50", None, "1234.50", "CHF"),  # CLDR's typographic apostrophe
        ("\uff25\uff35\uff32\uff11\uff12\uff13\uff14\uff0c\uff15\uff16", "EUR", "1234.56", "EUR"),  # full width
    ],
)
def test_it_reads_prices_in_each_marketplaces_conventions(text, marketplace_currency, amount, currency):
    assert parse_money(text, marketplace_currency) == Money(Decimal(amount), currency)


# Each marketplace's own locale, plus the other locales its pages come in (amazon.ca in French,
# amazon.com.be in Dutch, the Gulf and Egypt in Arabic with its own digits).
LOCALES = sorted(
    {(marketplace.currency, marketplace.language.replace("-", "_")) for marketplace in MARKETPLACES}
    | {("CAD", "fr_CA"), ("EUR", "nl_BE"), ("AED", "ar_AE"), ("SAR", "en_AE"), ("MXN", "en_US"), ("USD", "es_US")}
)
NUMBERING = {"ar_EG": ("latn", "arab"), "ar_SA": ("latn", "arab"), "ar_AE": ("latn", "arab")}


@st.composite
def formatted_prices(draw) -> tuple[str, Decimal, str]:
    currency, locale = draw(st.sampled_from(LOCALES))
    digits = get_currency_precision(currency)
    amount = draw(st.decimals(min_value=0, max_value=Decimal("99999999.99"), places=digits, allow_nan=False))
    numbering = draw(st.sampled_from(NUMBERING.get(locale, ("latn",))))
    text = format_currency(amount, currency, locale=locale, numbering_system=numbering)
    return text, amount, currency


@settings(max_examples=1000, deadline=None)
@given(formatted_prices())
def test_any_amount_formatted_in_any_marketplace_locale_reads_back_as_itself(case):
    text, amount, currency = case
    money = parse_money(text, currency)
    assert money is not None, text
    assert money == Money(amount, currency), text


@pytest.mark.parametrize("marketplace", MARKETPLACES, ids=lambda marketplace: marketplace.code)
def test_the_currency_is_the_iso_code_of_what_the_page_shows_even_on_another_marketplace(marketplace):
    # A page of this marketplace showing a price in pounds: the page's symbol wins.
    assert parse_money("£12.34", marketplace.currency) == Money(Decimal("12.34"), "GBP")


# ---- availability in every language -------------------------------------------------------------

AVAILABILITY_LINES = {
    Availability.IN_STOCK: [
        "In Stock",
        "Auf Lager.",
        "Nur noch 3 auf Lager (mehr ist unterwegs).",
        "En stock",
        "Il ne reste plus que 2 exemplaire(s) en stock.",
        "Disponibilità immediata",
        "Solo 2 disponibili",
        "En stock.",
        "Em estoque",
        "Op voorraad",
        "I lager",
        "Endast 3 kvar i lager",
        "Dostępny",
        "Stokta var",
        "Stokta sadece 3 adet kaldı",  # noqa: RUF001 - Turkish dotless i
        "متوفر",
        "متوفر في المخزون",
        "在庫あり。",
        "残り2点 ご注文はお早めに",
    ],
    Availability.OUT_OF_STOCK: [
        "Temporarily out of stock.",
        "Vorübergehend nicht auf Lager.",
        "Temporairement en rupture de stock.",
        "Temporaneamente non disponibile.",
        "Temporalmente sin stock.",
        "Temporariamente fora de estoque.",
        "Tijdelijk niet op voorraad.",
        "Tillfälligt slut i lager.",
        "Tymczasowo niedostępny.",
        "Geçici olarak stokta yok.",
        "غير متوفر مؤقتًا.",
        "一時的に在庫切れ; 入荷時期は未定です。",
    ],
    Availability.UNAVAILABLE: [
        "Currently unavailable.",
        "Derzeit nicht verfügbar.",
        "Actuellement indisponible.",
        "Attualmente non disponibile.",
        "No disponible.",
        "Actualmente no disponible.",
        "Não disponível.",
        "Momenteel niet verkrijgbaar.",
        "För närvarande inte tillgänglig.",
        "Obecnie niedostępny.",
        "Şu anda mevcut değil.",
        "غير متوفر حاليًا.",
        "現在お取り扱いできません。",
        "現在在庫切れです。この商品の再入荷予定は立っておりません。",
    ],
}


@pytest.mark.parametrize(
    ("line", "expected"),
    [(line, availability) for availability, lines in AVAILABILITY_LINES.items() for line in lines],
)
def test_availability_lines_in_every_marketplace_language(line, expected):
    assert availability_of_text(line) is expected
    assert availability_of_text(line.upper()) is expected  # case does not matter (Turkish İ included)


# ---- our own pages in each language --------------------------------------------------------------


def product_page(*, lang: str, host: str, price_html: str, availability: str) -> bytes:
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{host}</title>'
        f'<link rel="canonical" href="https://www.{host}/Ding/dp/B0LOCALE01"></head><body><div id="dp">'
        '<span id="productTitle"> Ding </span>'
        f'<div id="corePriceDisplay_desktop_feature_div"><span class="a-price priceToPay">{price_html}</span></div>'
        f'<div id="availability"><span class="a-size-medium">{availability}</span></div>'
        '<input type="hidden" id="ASIN" name="ASIN" value="B0LOCALE01"></div></body></html>'
    ).encode()


def parts(symbol: str, whole: str, decimal: str = "", fraction: str = "", *, symbol_first: bool) -> str:
    symbol_html = f'<span class="a-price-symbol">{symbol}</span>'
    whole_html = f'<span class="a-price-whole">{whole}'
    whole_html += f'<span class="a-price-decimal">{decimal}</span></span>' if decimal else "</span>"
    fraction_html = f'<span class="a-price-fraction">{fraction}</span>' if fraction else ""
    body = whole_html + fraction_html
    return (
        '<span class="a-offscreen"> </span><span aria-hidden="true">'
        + (symbol_html + body if symbol_first else body + symbol_html)
        + "</span>"
    )


@pytest.mark.parametrize(
    ("host", "lang", "price_html", "availability", "price", "currency", "expected_availability"),
    [
        ("amazon.de", "de-de", parts("€", "1.234", ",", "56", symbol_first=False), "Auf Lager", "1234.56", "EUR",
         Availability.IN_STOCK),
        ("amazon.co.jp", "ja-jp", parts("￥", "12,345", symbol_first=True), "在庫あり。", "12345", "JPY",
         Availability.IN_STOCK),
        ("amazon.in", "en-in", parts("₹", "1,23,456", ".", "00", symbol_first=True), "In stock", "123456.00", "INR",
         Availability.IN_STOCK),
        ("amazon.pl", "pl-pl", parts("zł", "1 234", ",", "50", symbol_first=False), "Dostępny", "1234.50", "PLN",
         Availability.IN_STOCK),
        ("amazon.se", "sv-se", parts("kr", "1 999", ",", "00", symbol_first=False), "I lager", "1999.00", "SEK",
         Availability.IN_STOCK),
        ("amazon.com.tr", "tr-tr", parts("TL", "2.499", ",", "90", symbol_first=False), "Stokta var", "2499.90",
         "TRY", Availability.IN_STOCK),
        ("amazon.sa", "ar-sa", parts("ر.س.", ARABIC_1279[1:6], ARABIC_1279[6], ARABIC_1279[7:], symbol_first=False),
         "متوفر", "1279.00", "SAR",
         Availability.IN_STOCK),
        ("amazon.ca", "fr-ca", parts("$", "1 234", ",", "56", symbol_first=False), "En stock", "1234.56", "CAD",
         Availability.IN_STOCK),
        ("amazon.com.mx", "es-mx", parts("$", "1,234", ".", "56", symbol_first=True), "Disponible.", "1234.56",
         "MXN", Availability.IN_STOCK),
        ("amazon.sg", "en-sg", parts("S$", "89", ".", "90", symbol_first=True), "In stock", "89.90", "SGD",
         Availability.IN_STOCK),
        ("amazon.com.au", "en-au", parts("$", "89", ".", "90", symbol_first=True), "In stock", "89.90", "AUD",
         Availability.IN_STOCK),
        ("amazon.nl", "nl-nl", parts("€", "12", ",", "99", symbol_first=True), "Op voorraad", "12.99", "EUR",
         Availability.IN_STOCK),
    ],
)  # fmt: skip
def test_a_product_page_of_each_marketplace_parses_in_its_conventions(
    host, lang, price_html, availability, price, currency, expected_availability
):
    result = analyse(
        200, "text/html", product_page(lang=lang, host=host, price_html=price_html, availability=availability)
    )
    assert result.status is ScrapeStatus.SUCCESS
    assert (result.price, result.currency, result.availability) == (Decimal(price), currency, expected_availability)


@pytest.mark.parametrize(("currency_hint", "expected"), [("CAD", "CAD"), ("AUD", "AUD"), ("USD", "USD"), (None, "USD")])
def test_without_a_canonical_link_the_store_decides_what_a_dollar_is(currency_hint, expected):
    page = product_page(lang="en", host="example.test", price_html=parts("$", "5", ".", "00", symbol_first=True),
                        availability="In stock").replace(b'rel="canonical"', b'rel="alternate"')  # fmt: skip
    assert analyse(200, "text/html", page, currency_hint=currency_hint).currency == expected


# Block pages: our own, written the way Amazon's are built (the same form and image paths on every
# marketplace), with their sentences in each language.
CAPTCHA_SENTENCES = [
    "Geben Sie die Zeichen unten ein",
    "Saisissez les caractères que vous voyez",
    "Inserisci i caratteri visualizzati",
    "Introduce los caracteres que ves",
    "Digite os caracteres que você vê",
    "Voer de tekens in die u hieronder ziet",
    "Ange tecknen du ser nedan",
    "Wpisz znaki, które widzisz",
    "Aşağıda gördüğünüz karakterleri girin",  # noqa: RUF001 - Turkish dotless i
    "أدخل الأحرف التي تراها أدناه",
    "表示されている文字を入力してください",
]


@pytest.mark.parametrize("sentence", CAPTCHA_SENTENCES)
def test_an_image_captcha_in_any_language_is_a_captcha(sentence):
    page = (
        f'<html><head><title>Amazon</title></head><body><h4>{sentence}</h4><form action="/errors/validateCaptcha">'
        '<img src="https://images-eu.ssl-images-amazon.com/captcha/abc/Captcha_x.jpg">'
        '<input id="captchacharacters" name="field-keywords"></form></body></html>'
    ).encode()
    assert classify(200, "text/html", page).error_kind is ErrorKind.CAPTCHA


@pytest.mark.parametrize("sentence", CAPTCHA_SENTENCES)
def test_a_captcha_cut_off_before_its_form_is_still_a_captcha_by_its_sentence(sentence):
    page = f"<html><head><title>Amazon</title></head><body><h4>{sentence}</h4>".encode()
    assert classify(200, "text/html", page).error_kind is ErrorKind.CAPTCHA


@pytest.mark.parametrize(
    "button",
    ["Weiter einkaufen", "Continuer les achats", "Continua gli acquisti", "Seguir comprando", "ショッピングを続ける",
     "متابعة التسوق", "Alışverişe devam et"],  # noqa: RUF001 - Turkish dotless i
)  # fmt: skip
def test_the_continue_shopping_check_in_any_language_is_a_soft_captcha(button):
    # Recognised by its form (a hidden search field, no image), whatever its words.
    page = (
        '<html><body><div class="a-box"><h4>?</h4><form method="get" action="/errors/validateCaptcha">'
        '<input type="hidden" name="amzn" value="x"><input type="hidden" name="amzn-r" value="/dp/B0X">'
        '<input type="hidden" name="field-keywords" value="ABCDEF">'
        f'<button type="submit" class="a-button-text">{button}</button></form></div></body></html>'
    ).encode()
    assert classify(200, "text/html", page).error_kind is ErrorKind.SOFT_CAPTCHA


@pytest.mark.parametrize(
    "title",
    ["Es ist ein Fehler aufgetreten", "Une erreur s'est produite", "Algo salió mal", "Er is iets misgegaan",
     "Något gick fel", "Coś poszło nie tak", "حدث خطأ ما", "問題が発生しました"],
)  # fmt: skip
@pytest.mark.parametrize("status", [500, 200])
def test_the_dogs_error_page_in_any_language_is_the_store_shedding_us(title, status):
    page = (
        f'<html><head><title>{title}</title></head><body><a href="/ref=cs_503_logo">Amazon</a>'
        '<img src="/images/G/03/error/500_503.png"><a href="/dogsofamazon">Dogs</a></body></html>'
    ).encode()
    result = classify(status, "text/html", page)
    assert (result.status, result.error_kind) == (ScrapeStatus.BLOCKED, ErrorKind.SERVICE_UNAVAILABLE)


def test_the_not_found_dogs_page_in_another_language_is_not_found():
    page = (
        b'<html><head><title>Seite nicht gefunden</title></head><body><a href="/ref=cs_404_logo">Amazon</a>'
        b'<a href="/dogsofamazon">Hunde</a></body></html>'
    )
    assert classify(200, "text/html", page).error_kind is ErrorKind.NOT_FOUND
