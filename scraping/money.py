"""Amounts for people: a price in its currency's format, in the reader's language (Babel).

Prices are stored as ``Decimal`` with the ISO code of the currency the page showed; how they are
written (symbol, its place, decimal and grouping marks, how many decimals) depends on the
currency *and* on who reads: 1234.5 EUR is "1.234,50 €" to a German reader and "€1,234.50" to
an English one, and yen have no decimals in either. CLDR knows all of it; Babel brings CLDR.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency, get_currency_precision

ENGLISH = "en"


@cache
def _locale(language: str) -> Locale:
    try:
        return Locale.parse(language.replace("_", "-") or ENGLISH, sep="-")
    except (ValueError, UnknownLocaleError):
        return Locale.parse(ENGLISH)


def minor_units(currency: str) -> int:
    """How many decimals ``currency`` is written with (2 for EUR, 0 for JPY; CLDR's figure)."""
    return get_currency_precision(currency.upper()) if currency else 2


def format_money(amount: Decimal | None, currency: str | None, *, language: str | None = None) -> str:
    """``amount`` written in ``currency``'s format for a reader of ``language`` (English if unset).

    ``format_money(Decimal("1234.5"), "EUR", language="de-DE")`` -> ``"1.234,50 €"``; yen are
    rounded to whole yen. No currency (an old row, a page that named none): the plain number.
    None: an empty string.
    """
    if amount is None:
        return ""
    if not currency:
        return f"{amount:,.2f}"
    digits = minor_units(currency)
    rounded = amount.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    try:
        return format_currency(rounded, currency.upper(), locale=_locale(language or ENGLISH), currency_digits=True)
    except (ValueError, UnknownLocaleError):  # a currency code CLDR does not know
        return f"{rounded:,} {currency}"
