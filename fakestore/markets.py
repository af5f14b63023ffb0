"""How the fake store dresses a page for each Amazon marketplace: host, language, currency, texts.

One fake store serves every marketplace on one port; which one a request is for comes from its
``Host`` header (``www.amazon.de``) or a path prefix (``/amazon.de/dp/ASIN``), else amazon.com.
Prices are printed by Babel in the marketplace's locale (decimal commas, space and dot grouping,
yen without decimals, Indian lakh grouping), so the parser meets the conventions real pages use;
the texts (availability, list price, block pages) are our own, in each marketplace's language.

The fake store is its own app and imports no other: this table repeats what it needs of
:mod:`scraping.marketplaces` rather than import it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

from babel import Locale
from babel.numbers import format_currency, format_decimal, get_currency_precision, get_currency_symbol

DEFAULT_MARKET = "amazon.com"


@dataclass(frozen=True)
class Texts:
    """What a page says, in one language."""

    in_stock: str
    out_of_stock: str
    unavailable: str
    list_price: str
    captcha: str
    soft_captcha: str
    something_went_wrong: str


TEXTS = {
    "en": Texts(
        "In Stock",
        "Temporarily out of stock.",
        "Currently unavailable.",
        "List Price:",
        "Type the characters you see in this image:",
        "Click the button below to continue shopping",
        "Sorry! Something went wrong!",
    ),
    "de": Texts(
        "Auf Lager",
        "Vorübergehend nicht auf Lager.",
        "Derzeit nicht verfügbar.",
        "Unverb. Preisempf.:",
        "Geben Sie die Zeichen unten ein",
        "Klicken Sie auf die Schaltfläche unten, um mit dem Einkauf fortzufahren",
        "Es ist ein Fehler aufgetreten",
    ),
    "fr": Texts(
        "En stock",
        "Temporairement en rupture de stock.",
        "Actuellement indisponible.",
        "Prix conseillé :",
        "Saisissez les caractères que vous voyez",
        "Cliquez sur le bouton ci-dessous pour continuer vos achats",
        "Une erreur s'est produite",
    ),
    "it": Texts(
        "Disponibilità immediata",
        "Temporaneamente non disponibile.",
        "Attualmente non disponibile.",
        "Prezzo consigliato:",
        "Inserisci i caratteri visualizzati",
        "Fai clic sul pulsante qui sotto per continuare a fare acquisti",
        "Si è verificato un errore",
    ),
    "es": Texts(
        "En stock",
        "Temporalmente sin stock.",
        "Actualmente no disponible.",
        "Precio recomendado:",
        "Introduce los caracteres que ves",
        "Haz clic en el botón de abajo para seguir comprando",
        "Algo salió mal",
    ),
    "pt": Texts(
        "Em estoque",
        "Temporariamente fora de estoque.",
        "Não disponível.",
        "De:",
        "Digite os caracteres que você vê",
        "Clique no botão abaixo para continuar comprando",
        "Algo deu errado",
    ),
    "nl": Texts(
        "Op voorraad",
        "Tijdelijk niet op voorraad.",
        "Momenteel niet verkrijgbaar.",
        "Adviesprijs:",
        "Voer de tekens in die u hieronder ziet",
        "Klik op de knop hieronder om verder te winkelen",
        "Er is iets misgegaan",
    ),
    "sv": Texts(
        "I lager",
        "Tillfälligt slut i lager.",
        "För närvarande inte tillgänglig.",
        "Listpris:",
        "Ange tecknen du ser nedan",
        "Klicka på knappen nedan för att fortsätta handla",
        "Något gick fel",
    ),
    "pl": Texts(
        "Dostępny",
        "Tymczasowo niedostępny.",
        "Obecnie niedostępny.",
        "Cena katalogowa:",
        "Wpisz znaki, które widzisz",
        "Kliknij poniższy przycisk, aby kontynuować zakupy",
        "Coś poszło nie tak",
    ),
    "tr": Texts(
        "Stokta var",
        "Geçici olarak stokta yok.",
        "Şu anda mevcut değil.",
        "Liste Fiyatı:",  # noqa: RUF001 - Turkish dotless i
        "Aşağıda gördüğünüz karakterleri girin",  # noqa: RUF001 - Turkish dotless i
        "Alışverişe devam etmek için aşağıdaki düğmeye tıklayın",  # noqa: RUF001 - Turkish dotless i
        "Bir şeyler ters gitti",
    ),
    "ar": Texts(
        "متوفر",
        "غير متوفر مؤقتًا.",
        "غير متوفر حاليًا.",
        "السعر الأصلي:",
        "أدخل الأحرف التي تراها أدناه",
        "انقر على الزر أدناه لمتابعة التسوق",
        "حدث خطأ ما",
    ),
    "ja": Texts(
        "在庫あり。",
        "一時的に在庫切れ; 入荷時期は未定です。",
        "現在お取り扱いできません。",
        "参考価格:",
        "表示されている文字を入力してください",
        "買い物を続けるには下のボタンをクリックしてください",
        "問題が発生しました",
    ),
}


@dataclass(frozen=True)
class Market:
    """One marketplace as the fake store renders it."""

    code: str
    name: str
    currency: str
    language: str  # BCP 47, e.g. de-DE

    @property
    def locale(self) -> str:
        return self.language.replace("-", "_")

    @property
    def texts(self) -> Texts:
        return TEXTS[self.language.split("-", 1)[0]]

    @property
    def html_lang(self) -> str:
        return self.language.lower()


MARKETS: dict[str, Market] = {
    market.code: market
    for market in (
        Market("amazon.com", "Amazon.com", "USD", "en-US"),
        Market("amazon.ca", "Amazon.ca", "CAD", "en-CA"),
        Market("amazon.com.mx", "Amazon.com.mx", "MXN", "es-MX"),
        Market("amazon.com.br", "Amazon.com.br", "BRL", "pt-BR"),
        Market("amazon.co.uk", "Amazon.co.uk", "GBP", "en-GB"),
        Market("amazon.de", "Amazon.de", "EUR", "de-DE"),
        Market("amazon.fr", "Amazon.fr", "EUR", "fr-FR"),
        Market("amazon.it", "Amazon.it", "EUR", "it-IT"),
        Market("amazon.es", "Amazon.es", "EUR", "es-ES"),
        Market("amazon.nl", "Amazon.nl", "EUR", "nl-NL"),
        Market("amazon.se", "Amazon.se", "SEK", "sv-SE"),
        Market("amazon.pl", "Amazon.pl", "PLN", "pl-PL"),
        Market("amazon.com.be", "Amazon.com.be", "EUR", "fr-BE"),
        Market("amazon.com.tr", "Amazon.com.tr", "TRY", "tr-TR"),
        Market("amazon.ae", "Amazon.ae", "AED", "en-AE"),
        Market("amazon.sa", "Amazon.sa", "SAR", "ar-SA"),
        Market("amazon.eg", "Amazon.eg", "EGP", "ar-EG"),
        Market("amazon.in", "Amazon.in", "INR", "en-IN"),
        Market("amazon.co.jp", "Amazon.co.jp", "JPY", "ja-JP"),
        Market("amazon.sg", "Amazon.sg", "SGD", "en-SG"),
        Market("amazon.com.au", "Amazon.com.au", "AUD", "en-AU"),
    )
}
_PREFIX = re.compile(r"/(amazon\.[a-z.]+?)(?=/)")


def market(code: str | None) -> Market:
    """The marketplace ``code`` (amazon.com when None); raises ValueError for an unknown one."""
    try:
        return MARKETS[code or DEFAULT_MARKET]
    except KeyError:
        raise ValueError(f"unknown marketplace {code!r}; one of {', '.join(sorted(MARKETS))}") from None


def market_of_request(host_header: str | None, path: str) -> tuple[Market, str, str]:
    """Which marketplace a request is for, the path without its prefix, and that prefix.

    A ``/amazon.de`` path prefix wins; else the ``Host`` header (``www.amazon.de:443``); else
    amazon.com (a request to ``127.0.0.1:port``).
    """
    if (match := _PREFIX.match(path)) and match.group(1) in MARKETS:
        return MARKETS[match.group(1)], path[match.end() :], match.group(0)
    host = (host_header or "").rsplit(":", 1)[0].lower().removesuffix(".")
    for prefix in ("www.", "m.", "smile."):
        host = host.removeprefix(prefix)
    return MARKETS.get(host, MARKETS[DEFAULT_MARKET]), path, ""


@cache
def _locale(name: str) -> Locale:
    return Locale.parse(name)


def money(amount: Decimal, market: Market) -> str:
    """``amount`` as the marketplace prints it ("1.234,56 €", "￥1,235", "₹1,23,456.00")."""
    if market.currency == "USD" and market.locale == "en_US":
        return f"${amount:,.2f}"  # the hot path of benchmarks; what Babel prints for en_US
    return format_currency(amount, market.currency, locale=_locale(market.locale))


@dataclass(frozen=True)
class PriceParts:
    """A price split as Amazon's ``.a-price`` markup splits it."""

    symbol: str
    whole: str
    decimal_mark: str
    fraction: str
    symbol_first: bool


def price_parts(amount: Decimal, market: Market) -> PriceParts:
    """Whole part (grouped), decimal mark, fraction and symbol in the marketplace's conventions."""
    locale = _locale(market.locale)
    digits = get_currency_precision(market.currency)
    rounded = amount.quantize(Decimal(1).scaleb(-digits))
    whole = format_decimal(int(rounded), locale=locale)
    fraction = f"{rounded:.{digits}f}".rpartition(".")[2] if digits else ""
    pattern = locale.currency_formats["standard"].pattern
    return PriceParts(
        symbol=get_currency_symbol(market.currency, locale=locale),
        whole=whole,
        decimal_mark=locale.number_symbols["latn"]["decimal"] if digits else "",
        fraction=fraction,
        symbol_first=pattern.lstrip("\u200f\u200e").startswith("¤"),
    )
