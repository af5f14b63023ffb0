"""Parse an Amazon product page: title, ASIN, buy-box price, currency, availability, list price.

Why the page is not handed to BeautifulSoup whole: a real product page is 0.3-3 MB, and
``BeautifulSoup(page, "lxml")`` costs about ten times a bare ``lxml.html.fromstring`` of it. The
answer lives in a handful of small, id-named regions (the centre price block, the buy box, the
availability line), so :class:`PageSource` finds those regions in the raw bytes (one ``bytes.find``
pass indexes every ``id="..."``; a tag-balancing walk that skips scripts and comments finds each
element's end) and gives BeautifulSoup only those fragments, parsed lazily and cached. Rules that
do not run cost nothing.

The rules live in :data:`RULES`, in the order they are tried. Each is a small named function over
a :class:`PageSource`; the first that matches names how the price was found (or which no-price
state the page is in: no featured offer, variant not selected, price shown only in the cart,
currently unavailable). Pages change: add a rule, give it a test, put it in its place.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache, cached_property

from bs4 import BeautifulSoup, Tag

from scraping.results import Availability, ParsedPage

# --------------------------------------------------------------------------------------------
# Money
# --------------------------------------------------------------------------------------------

# Symbols and prefixes as Amazon (and CLDR, which its pages follow) prints them, longest first so
# "R$" wins over "$". The Arabic abbreviations are the Gulf and Egyptian marketplaces' own.
CURRENCY_SYMBOLS: tuple[tuple[str, str], ...] = (
    ("CDN$", "CAD"),
    ("US$", "USD"),
    ("CA$", "CAD"),
    ("AU$", "AUD"),
    ("MX$", "MXN"),
    ("ر.س", "SAR"),
    ("د.إ", "AED"),
    ("ج.م", "EGP"),
    ("C$", "CAD"),
    ("A$", "AUD"),
    ("S$", "SGD"),
    ("R$", "BRL"),
    ("E£", "EGP"),
    ("Rs.", "INR"),
    ("₹", "INR"),
    ("£", "GBP"),
    ("€", "EUR"),
    ("￥", "JPY"),
    ("¥", "JPY"),
    ("円", "JPY"),
    ("zł", "PLN"),
    ("₺", "TRY"),
    ("TL", "TRY"),
    ("kr", "SEK"),
    ("$", "USD"),
)
ISO_CURRENCY_CODES = frozenset(
    {"USD", "CAD", "MXN", "BRL", "GBP", "EUR", "SEK", "PLN", "TRY", "AED", "SAR", "EGP", "INR", "JPY", "SGD", "AUD"}
    | {"CNY", "ZAR", "NGN", "CHF"}
)
# The currency of each marketplace, keyed by the host suffix after "amazon.". Used when a
# symbol is ambiguous ("$" on amazon.ca is CAD) and for pages that show no price at all.
MARKETPLACE_CURRENCIES: dict[str, str] = {
    "com": "USD",
    "ca": "CAD",
    "com.mx": "MXN",
    "com.br": "BRL",
    "co.uk": "GBP",
    "de": "EUR",
    "fr": "EUR",
    "es": "EUR",
    "it": "EUR",
    "nl": "EUR",
    "ie": "EUR",
    "com.be": "EUR",
    "se": "SEK",
    "pl": "PLN",
    "com.tr": "TRY",
    "ae": "AED",
    "sa": "SAR",
    "eg": "EGP",
    "in": "INR",
    "co.jp": "JPY",
    "sg": "SGD",
    "com.au": "AUD",
    "cn": "CNY",
    "co.za": "ZAR",
}
# Currencies written with "$" or "¥": the marketplace decides which one is meant.
AMBIGUOUS_SYMBOL_CURRENCIES = {"USD": {"CAD", "MXN", "AUD", "SGD"}, "JPY": {"CNY"}}

# One well-formed amount as Amazon prints it, in text whose spaces are already collapsed to " ".
# Thousands are grouped by threes with one consistent separator (",", ".", "'" or a space) and
# the decimals (one or two digits) follow the other separator; India groups lakhs (1,23,456.00);
# or plain digits with optional decimals. Anything else is not one amount: a separator may join
# digits only where the grouping allows it, so "$12,345.67 12,345.67", "$19.99 2" and
# "$29.99 10% off" read as their first amount instead of one long number. The lookarounds keep
# a match from starting or ending inside a longer number ("1,234.567" is not "1,234.56").
_AMOUNT = re.compile(
    r"(?<![\d.,'])"
    r"(?:"
    r"\d{1,3}(?P<group>[,.' ])\d{3}(?:(?P=group)\d{3})*(?:(?!(?P=group))[.,]\d{1,2})?"
    r"|\d{1,2}(?:,\d{2})+,\d{3}(?:\.\d{1,2})?"
    r"|\d+(?:[.,]\d{1,2})?"
    r")"
    r"(?!\d|[.,']\d)"
)
_SPACES = re.compile(r"[\s\u00a0\u202f\u2007\u2009]+")
# Digits and separators as some marketplaces print them, mapped to ASCII: Arabic-Indic and
# Eastern Arabic-Indic digits with the Arabic decimal and thousands marks (amazon.eg, amazon.sa in
# Arabic), full-width digits, and the typographic apostrophe CLDR groups Swiss francs with.
# Bidirectional marks around an Arabic price carry no meaning for the amount and are dropped.
_NUMERALS = str.maketrans(
    {
        **{chr(0x0660 + digit): str(digit) for digit in range(10)},
        **{chr(0x06F0 + digit): str(digit) for digit in range(10)},
        **{chr(0xFF10 + digit): str(digit) for digit in range(10)},
        "\u066b": ".",
        "\u066c": ",",
        "\u2019": "'",
        "\uff0c": ",",
        "\uff0e": ".",
        **dict.fromkeys(("\u200e", "\u200f", "\u061c", "\u202a", "\u202b", "\u202c")),
        **dict.fromkeys(("\u2066", "\u2067", "\u2068", "\u2069")),
    }
)


def ascii_numerals(text: str) -> str:
    """``text`` with its digits and number separators in ASCII and bidirectional marks removed."""
    return text.translate(_NUMERALS)


@dataclass(frozen=True, slots=True)
class Money:
    """An amount and the ISO currency it was written in (None when the page did not say)."""

    amount: Decimal
    currency: str | None


def parse_amount(number: str) -> Decimal | None:
    """Turn "1.279,00", "49,990.00", "1 279,00", "8,99" or "1,279" into a Decimal.

    When both "." and "," occur, the last one is the decimal separator. When only one kind
    occurs once and is followed by exactly three digits it groups thousands ("49,990",
    "1.279"); otherwise it is the decimal separator ("8,99", "8.9"). Amazon's marketplaces all
    use two-decimal currencies (JPY none), so three decimals never happen.
    """
    digits = re.sub(r"[\s\u00a0\u202f']", "", number)
    if not digits or not digits[0].isdigit():
        return None
    last_dot, last_comma = digits.rfind("."), digits.rfind(",")
    if last_dot >= 0 and last_comma >= 0:
        decimal_sep = "." if last_dot > last_comma else ","
    elif last_dot >= 0 or last_comma >= 0:
        sep = "." if last_dot >= 0 else ","
        tail = digits.rpartition(sep)[2]
        decimal_sep = sep if digits.count(sep) == 1 and len(tail) != 3 else ""
    else:
        decimal_sep = ""
    if decimal_sep:
        whole, _, fraction = digits.rpartition(decimal_sep)
    else:
        whole, fraction = digits, ""
    whole = re.sub(r"[.,]", "", whole)
    if not whole.isdigit() or (fraction and not fraction.isdigit()):
        return None
    try:
        return Decimal(f"{whole}.{fraction}" if fraction else whole)
    except InvalidOperation:
        return None


def currency_of(text: str, marketplace_currency: str | None = None) -> str | None:
    """The ISO code for the currency symbol or code in ``text`` ("R$ 796,81" -> "BRL")."""
    # Codes may touch the digits ("SAR1,279.00"), so no \b: just not inside a longer word.
    for word in re.findall(r"(?<![A-Za-z])[A-Z]{3}(?![A-Za-z])", text):
        if word in ISO_CURRENCY_CODES:
            return word
    for symbol, code in CURRENCY_SYMBOLS:
        if symbol in text:
            if marketplace_currency in AMBIGUOUS_SYMBOL_CURRENCIES.get(code, ()):
                return marketplace_currency
            return code
    return None


def parse_money(text: str, marketplace_currency: str | None = None) -> Money | None:
    """The first well-formed amount in ``text`` with its currency; None when there is no price.

    Two numbers are never joined into one: "$19.99 2" is 19.99. A range ("$12.99 - $24.99") is
    not a price a shopper pays, so it gives None.
    """
    text = _SPACES.sub(" ", ascii_numerals(text)).strip()
    numbers = list(_AMOUNT.finditer(text))
    if not numbers:
        return None
    if len(numbers) >= 2 and re.search("[-\u2013]", text[numbers[0].end() : numbers[1].start()]):
        return None
    amount = parse_amount(numbers[0].group())
    if amount is None:
        return None
    # The symbol sits right before or right after the number ("$8.99", "8,00 €", "SAR 1,279.00").
    around = text[max(0, numbers[0].start() - 8) : numbers[0].end() + 8]
    return Money(amount, currency_of(around, marketplace_currency) or marketplace_currency)


def text_of(tag: Tag | None) -> str:
    """The visible text of an element, whitespace collapsed."""
    if tag is None:
        return ""
    return _SPACES.sub(" ", tag.get_text(" ", strip=True)).strip()


# --------------------------------------------------------------------------------------------
# Finding regions in the raw bytes
# --------------------------------------------------------------------------------------------

# A region bigger than this is cut off (BeautifulSoup closes what is left open): the regions we
# look for are 0.2-40 KB; a runaway walk on broken markup must not cost a full parse.
MAX_FRAGMENT_BYTES = 256 * 1024
# A real page has a handful of look-alike matches per needle (in scripts, in data attributes);
# a pathological one could have millions, each costing a backwards scan: stop looking after this.
MAX_CANDIDATES = 32
MAX_ID_LENGTH = 128
MAX_CLASS_ATTRIBUTE = 300
VOID_TAGS = frozenset({b"input", b"img", b"link", b"meta", b"br", b"hr", b"source", b"area", b"base", b"col", b"wbr"})
_TAG_NAME = re.compile(rb"<([a-zA-Z][a-zA-Z0-9]*)")
_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_-]+)""", re.IGNORECASE)
_CANONICAL_HOST = re.compile(r"https?://(?:www\.|smile\.|m\.)?amazon\.([a-z.]+?)(?:/|$)")
ASIN_PATTERN = re.compile(r"^[A-Z0-9]{10}$")
_DP_ASIN = re.compile(r"/(?:dp|gp/product|gp/aw/d)/([A-Z0-9]{10})(?:[/?]|$)")


# Opening or closing tags of one name, plus the starts of scripts and comments (skipped whole:
# Amazon inlines HTML templates in both, and a "<div" inside them must not count).
@cache
def _tag_scanner(tag: bytes) -> re.Pattern[bytes]:
    return re.compile(rb"<(script)\b|<(!--)|<(/?)" + re.escape(tag) + rb"(?=[\s>/])", re.IGNORECASE)


def _inside(body: bytes, pos: int, opener: bytes, closer: bytes) -> bool:
    return body.rfind(opener, 0, pos) > body.rfind(closer, 0, pos)


class PageSource:
    """A raw page that hands out small parsed fragments on demand.

    ``element("availability")`` returns the first element with that id outside any script or
    comment, parsed with BeautifulSoup (lxml builder) from its own bytes only; fragments are
    cached, so rules may ask for the same region freely.
    """

    def __init__(self, body: bytes, encoding: str | None = None, *, currency_hint: str | None = None) -> None:
        self.body = body
        self.encoding = encoding or self._declared_charset() or "utf-8"
        self.currency_hint = currency_hint
        self._elements: dict[str, Tag | None] = {}

    def _declared_charset(self) -> str | None:
        match = _CHARSET.search(self.body[:4096])
        return match.group(1).decode("ascii").lower() if match else None

    def _decode(self, data: bytes) -> str:
        try:
            return data.decode(self.encoding, errors="replace")
        except LookupError:  # an unknown charset name in the page
            return data.decode("utf-8", errors="replace")

    def _tag_start(self, attr_pos: int) -> int | None:
        """Where the tag holding the attribute at ``attr_pos`` opens, or None if not in a tag."""
        start = self.body.rfind(b"<", 0, attr_pos)
        if start < 0 or self.body.find(b">", start, attr_pos) >= 0:
            return None
        if _inside(self.body, start, b"<script", b"</script") or _inside(self.body, start, b"<!--", b"-->"):
            return None
        return start

    def _find_tag_start(self, needles: tuple[bytes, ...], *, prefix_ok: Callable[[int], bool]) -> int | None:
        """First tag (outside scripts and comments) whose attribute text matches one of ``needles``."""
        best: int | None = None
        for needle in needles:
            pos = self.body.find(needle)
            for _ in range(MAX_CANDIDATES):
                if pos < 0 or (best is not None and pos > best):
                    break
                if prefix_ok(pos) and (start := self._tag_start(pos)) is not None:
                    best = start if best is None else min(best, start)
                    break
                pos = self.body.find(needle, pos + 1)
        return best

    @cached_property
    def _id_positions(self) -> dict[bytes, list[int]]:
        """Where each ``id="..."`` attribute sits, per id value, in document order.

        One pass over the body (a ``bytes.find`` loop: no copy of the page) instead of a full
        scan per id asked for: a page without a price asks for ~20 ids, most of them absent, and
        each miss would scan it all.
        """
        body = self.body
        positions: dict[bytes, list[int]] = {}
        # Amazon writes id="..."; id='...' is only looked for when the page uses it at all.
        quotes = (b'"', b"'") if b"id='" in body else (b'"',)
        for quote in quotes:
            needle = b"id=" + quote
            pos = body.find(needle)
            while pos >= 0:
                value_start = pos + len(needle)
                value_end = body.find(quote, value_start, value_start + MAX_ID_LENGTH)
                # " id=" must be a whole attribute: data-csa-c-slot-id="..." is not an id.
                if value_end > 0 and body[pos - 1 : pos].isspace():
                    found = positions.setdefault(body[value_start:value_end], [])
                    if len(found) < MAX_CANDIDATES:
                        found.append(pos)
                pos = body.find(needle, value_start)
        if len(quotes) > 1:
            for found in positions.values():
                found.sort()
        return positions

    def _id_start(self, element_id: str) -> int | None:
        """Where the first element with this id (outside scripts and comments) opens."""
        for attr_pos in self._id_positions.get(element_id.encode(), ()):
            if (start := self._tag_start(attr_pos)) is not None:
                return start
        return None

    def _fragment(self, start: int) -> bytes:
        """The bytes of the element opening at ``start``, up to its matching end tag.

        Linear in the fragment: one regex scan for tags of the same name, jumping over scripts
        and comments with ``bytes.find``. Unclosed markup stops at ``MAX_FRAGMENT_BYTES``.
        """
        body = self.body
        name_match = _TAG_NAME.match(body, start)
        open_end = body.find(b">", start)
        if name_match is None or open_end < 0:
            return b""
        tag = name_match.group(1).lower()
        if tag in VOID_TAGS or body[open_end - 1 : open_end] == b"/":
            return body[start : open_end + 1]
        limit = min(len(body), start + MAX_FRAGMENT_BYTES)
        scanner = _tag_scanner(tag)
        depth, pos = 1, open_end + 1
        while (match := scanner.search(body, pos, limit)) is not None:
            if match.group(1) or match.group(2):
                closer = b"</script" if match.group(1) else b"-->"
                end = body.find(closer, match.end(), limit)
                if end < 0:
                    break
                pos = end + len(closer)
                continue
            depth += -1 if match.group(3) == b"/" else 1
            if depth == 0:
                end = body.find(b">", match.end(), limit)
                return body[start : end + 1 if end >= 0 else limit]
            pos = match.end()
        return body[start:limit]

    def _parse(self, start: int | None, find: Callable[[BeautifulSoup], Tag | None]) -> Tag | None:
        """Parse the element opening at ``start`` alone and pick it out with ``find``."""
        if start is None:
            return None
        return find(BeautifulSoup(self._decode(self._fragment(start)), "lxml"))

    def element(self, element_id: str) -> Tag | None:
        """The first element with id ``element_id`` (outside scripts and comments), or None."""
        if element_id not in self._elements:
            self._elements[element_id] = self._parse(self._id_start(element_id), lambda soup: soup.find(id=element_id))
        return self._elements[element_id]

    def has_element(self, element_id: str) -> bool:
        """Whether an element with this id exists, without parsing it."""
        return self._id_start(element_id) is not None

    def _is_class_token(self, pos: int, length: int) -> bool:
        """Whether ``body[pos:pos + length]`` is one whole token of a ``class="..."`` value."""
        before = self.body[max(0, pos - MAX_CLASS_ATTRIBUTE) : pos]
        after = self.body[pos + length : pos + length + 1]
        for quote in (b'"', b"'"):
            attr = before.rfind(b"class=" + quote)
            if attr >= 0 and quote not in before[attr + 7 :]:
                return (before[-1:].isspace() or before[-1:] == quote) and (after.isspace() or after == quote)
        return False

    def element_with_class(self, class_name: str) -> Tag | None:
        """The first element carrying the CSS class ``class_name``, or None."""
        key = "." + class_name
        if key not in self._elements:
            raw = class_name.encode()
            start = self._find_tag_start((raw,), prefix_ok=lambda pos: self._is_class_token(pos, len(raw)))
            self._elements[key] = self._parse(start, lambda soup: soup.find(class_=class_name))
        return self._elements[key]

    @cached_property
    def canonical_url(self) -> str | None:
        """The ``<link rel="canonical">`` URL: it names the marketplace and, usually, the ASIN."""
        start = self._find_tag_start((b'rel="canonical"', b"rel='canonical'"), prefix_ok=lambda pos: True)
        if start is None:
            return None
        link = self._parse(start, lambda soup: soup.find("link"))
        href = link.get("href") if link is not None else None
        return href if isinstance(href, str) else None

    @cached_property
    def marketplace_currency(self) -> str | None:
        """The currency of the marketplace the page came from: from its canonical URL, else the
        store's (``currency_hint``: the page was fetched from that marketplace)."""
        match = _CANONICAL_HOST.match(self.canonical_url or "")
        found = MARKETPLACE_CURRENCIES.get(match.group(1)) if match else None
        return found or self.currency_hint


# --------------------------------------------------------------------------------------------
# Reading prices out of fragments
# --------------------------------------------------------------------------------------------


def read_price(tag: Tag | None, marketplace_currency: str | None) -> Money | None:
    """The price an ``.a-price`` (or a plain price span) shows.

    Order: the screen-reader copy ``.a-offscreen`` (empty on 2024+ pages), then the visible
    whole + fraction + symbol parts, then the element's own text.
    """
    if tag is None:
        return None
    offscreen = tag.select_one(".a-offscreen")
    if offscreen is not None and (money := parse_money(text_of(offscreen), marketplace_currency)):
        return money
    whole = tag.select_one(".a-price-whole")
    if whole is not None:
        whole_digits = re.sub(r"[^0-9]", "", ascii_numerals(text_of(whole)))
        fraction_digits = re.sub(r"[^0-9]", "", ascii_numerals(text_of(tag.select_one(".a-price-fraction"))))
        symbol = text_of(tag.select_one(".a-price-symbol"))
        if whole_digits:
            amount = Decimal(f"{whole_digits}.{fraction_digits}" if fraction_digits else whole_digits)
            return Money(amount, currency_of(symbol, marketplace_currency) or marketplace_currency)
    return parse_money(text_of(tag), marketplace_currency)


def _strike_price(region: Tag | None, marketplace_currency: str | None) -> Money | None:
    """The struck-through list price in a price block ("List Price", "RRP", "Prix conseillé")."""
    if region is None:
        return None
    for selector in (".basisPrice .a-price", '.a-text-price[data-a-strike="true"]', ".a-text-strike"):
        if (money := read_price(region.select_one(selector), marketplace_currency)) is not None:
            return money
    return None


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """What a rule found. ``price`` None means a known no-price state.

    ``availability`` None means "read it from the page"; no-price states that already say what
    a shopper sees (no featured offer, variant not chosen) set it.
    """

    price: Money | None = None
    list_price: Money | None = None
    availability: Availability | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One named way of reading a page; :data:`RULES` tries them in order."""

    name: str
    match: Callable[[PageSource], RuleMatch | None]


def _core_price_display(page: PageSource) -> RuleMatch | None:
    """2022+ layouts: the centre (or buy-box) ``corePriceDisplay`` block, desktop or mobile.

    The first block on the page is the featured offer; later copies belong to used or renewed
    accordion rows. Inside it, ``.priceToPay`` is the price; ``.basisPrice`` is the list price,
    which on some pages is the first non-empty ``.a-offscreen`` of the block (a trap).
    """
    currency = page.marketplace_currency
    for region_id in ("corePriceDisplay_desktop_feature_div", "corePriceDisplay_mobile_feature_div"):
        region = page.element(region_id)
        if region is None:
            continue
        price = read_price(region.select_one(".priceToPay, .apexPriceToPay"), currency)
        if price is None:
            # The accessibility label reads "$109.99" or "33,69 € avec 16 % d'économies".
            label = region.select_one("#apex-pricetopay-accessibility-label")
            price = parse_money(text_of(label), currency) if label is not None else None
        if price is not None:
            return RuleMatch(price, _strike_price(region, currency))
    return None


def _core_price_table(page: PageSource) -> RuleMatch | None:
    """2023 table layout (``corePrice_desktop``): "List Price / Price / You Save" rows."""
    region = page.element("corePrice_desktop")
    if region is None:
        return None
    price = read_price(region.select_one(".apexPriceToPay, .priceToPay"), page.marketplace_currency)
    return RuleMatch(price, _strike_price(region, page.marketplace_currency)) if price else None


def _core_price_buybox(page: PageSource) -> RuleMatch | None:
    """The buy box's own copy of the price (``corePrice_feature_div``), when the centre has none."""
    region = page.element("corePrice_feature_div")
    if region is None:
        return None
    tag = region.select_one(".priceToPay, .apexPriceToPay")
    if tag is None:
        # Skip per-unit prices ("(57,14 € / kg)") and struck-through ones.
        tag = next(
            (
                candidate
                for candidate in region.select(".a-price")
                if not candidate.has_attr("data-a-strike") and candidate.find_parent(class_="pricePerUnit") is None
            ),
            None,
        )
    price = read_price(tag, page.marketplace_currency)
    return RuleMatch(price, _strike_price(region, page.marketplace_currency)) if price else None


def _priceblock(page: PageSource) -> RuleMatch | None:
    """2015-2021 layouts: ``#priceblock_dealprice`` / ``_saleprice`` / ``_ourprice`` in ``#price``.

    A deal or sale price is what the shopper pays when shown; "Price:" is then struck through.
    The list price is the first struck-through cell of the ``#price`` table.
    """
    currency = page.marketplace_currency
    for block_id in ("priceblock_dealprice", "priceblock_saleprice", "priceblock_ourprice"):
        if (price := read_price(page.element(block_id), currency)) is not None:
            return RuleMatch(price, _strike_price(page.element("price"), currency))
    return None


def _buy_new_offer(page: PageSource) -> RuleMatch | None:
    """Older books and media: the "Buy New" accordion row of the buy box (``#buyNewSection``)."""
    currency = page.marketplace_currency
    price = read_price(page.element("newBuyBoxPrice"), currency)
    if price is None:
        section = page.element("buyNewSection")
        price = read_price(section.select_one(".offer-price") if section else None, currency)
    return RuleMatch(price, _strike_price(page.element("buyNewInner"), currency)) if price else None


def _kindle_price(page: PageSource) -> RuleMatch | None:
    """Kindle e-books: "Kindle Price" row of the buy box; "Print List Price" is the list price."""
    row = page.element_with_class("kindle-price")
    price = read_price(row.select_one(".a-color-price") if row else None, page.marketplace_currency)
    if price is None:
        return None
    list_row = page.element_with_class("print-list-price")
    return RuleMatch(price, _strike_price(list_row, page.marketplace_currency))


def _used_only_offer(page: PageSource) -> RuleMatch | None:
    """No new offer at all: the buy box sells a used copy (``#usedOnlyBuybox``); that is the price."""
    box = page.element("usedOnlyBuybox")
    if box is None:
        return None
    for tag in box.select("#usedBuySection .offer-price"):
        if (price := read_price(tag, page.marketplace_currency)) is not None:
            return RuleMatch(price)
    return None


# Availability lines in every marketplace's language, lower-cased. Checked group by group, in
# this order, because the texts contain each other: "Currently unavailable. We don't know when or
# if this item will be back in stock" contains "in stock", Italian "Temporaneamente non
# disponibile" (temporarily out of stock) contains "non disponibile" (unavailable), and every
# negative ("nicht auf Lager", "niet op voorraad", "slut i lager", "غير متوفر") contains its
# positive. So: what says "no date known" first, then "temporarily out", then plain
# "unavailable", and only then "in stock".
UNAVAILABLE_PHRASES = (
    "currently unavailable",
    "don't know when or if",
    "derzeit nicht verfügbar",
    "actuellement indisponible",
    "attualmente non disponibile",
    "actualmente no disponible",
    "no disponible por el momento",
    "indisponível no momento",
    "momenteel niet verkrijgbaar",
    "momenteel niet beschikbaar",
    "för närvarande inte tillgänglig",
    "obecnie niedostępny",
    "şu anda mevcut değil",
    "غير متوفر حالياً",
    "غير متوفر حاليًا",
    "غير متاح حاليًا",
    "現在お取り扱いできません",
    "再入荷予定は立っておりません",
)
OUT_OF_STOCK_PHRASES = (
    "out of stock",
    "nicht auf lager",
    "rupture de stock",
    "temporaneamente non disponibile",
    "esaurito",
    "agotado",
    "sin stock",
    "fora de estoque",
    "esgotado",
    "niet op voorraad",
    "uitverkocht",
    "slut i lager",
    "tymczasowo niedostępny",
    "brak w magazynie",
    "stokta yok",
    "tükendi",
    "غير متوفر مؤقتاً",
    "غير متوفر مؤقتًا",
    "نفدت الكمية",
    "在庫切れ",
)
# Plain "unavailable", after the temporary forms that contain it.
UNAVAILABLE_GENERIC_PHRASES = (
    "no disponible",
    "non disponibile",
    "não disponível",
    "indisponível",
    "indisponible",
    "niet beschikbaar",
    "inte tillgänglig",
    "otillgänglig",
    "niedostępny",
    "mevcut değil",
    "غير متوفر",
    "غير متاح",
)
IN_STOCK_PHRASES = (
    "in stock",
    "en stock",
    "em estoque",
    "auf lager",
    "op voorraad",
    "i lager",
    "na stanie",
    "w magazynie",
    "dostępny",
    "stokta",
    # "Disponible." is amazon.com.mx's in-stock line; every "not available" form is caught above.
    "disponible",
    "disponibile",
    "disponibili",
    "disponível",
    "disponibilità immediata",
    "versandfertig",
    "usually ships",
    "usually dispatched",
    "ships within",
    "available to ship",
    "left in stock",
    "habituellement expédié",
    "généralement expédié",
    "normalmente se envía",
    "generalmente spedito",
    "متوفر",
    "在庫あり",
    "ご注文はお早めに",
)
_AVAILABILITY_GROUPS = (
    (UNAVAILABLE_PHRASES, Availability.UNAVAILABLE),
    (OUT_OF_STOCK_PHRASES, Availability.OUT_OF_STOCK),
    (UNAVAILABLE_GENERIC_PHRASES, Availability.UNAVAILABLE),
    (IN_STOCK_PHRASES, Availability.IN_STOCK),
)
# Buttons that put this item in the cart or buy it now: their presence means it can be bought.
BUY_BUTTON_IDS = ("add-to-cart-button", "add-to-cart-button-ubb", "buy-now-button", "one-click-button")


def availability_of_text(text: str) -> Availability:
    """Map an availability line in any of Amazon's languages to :class:`Availability`."""
    # casefold() rather than lower(): "İ" and "ß" compare as the phrases are written.
    lowered = unicodedata.normalize("NFC", text).casefold().replace("\u2019", "'")
    for phrases, availability in _AVAILABILITY_GROUPS:
        if any(phrase in lowered for phrase in phrases):
            return availability
    return Availability.UNKNOWN


def _out_of_stock_box(page: PageSource) -> Availability | None:
    """The ``#outOfStock`` buy box replaces the buy button: the item cannot be bought now."""
    box = page.element("outOfStock")
    if box is None:
        return None
    if availability_of_text(text_of(box)) is Availability.OUT_OF_STOCK:
        return Availability.OUT_OF_STOCK
    return Availability.UNAVAILABLE  # whatever language it says it in


def _currently_unavailable(page: PageSource) -> RuleMatch | None:
    """No price because the item cannot be bought: ``#outOfStock`` box or "Currently unavailable"."""
    availability = _out_of_stock_box(page) or availability_of_text(text_of(page.element("availability")))
    if availability in (Availability.UNAVAILABLE, Availability.OUT_OF_STOCK):
        return RuleMatch(availability=availability)
    return None


def _no_featured_offer(page: PageSource) -> RuleMatch | None:
    """No featured offer ("See All Buying Options" instead of a buy box): no price to report."""
    if page.has_element("unqualifiedBuyBox") or page.has_element("buybox-see-all-buying-choices"):
        return RuleMatch(availability=Availability.UNKNOWN)
    return None


def _variant_not_selected(page: PageSource) -> RuleMatch | None:
    """Apparel and other variation parents: "To buy, select Size"; the price needs a variant."""
    if page.has_element("partialStateBuyBox_feature_div") or page.has_element("partialStateBuyboxForMerch"):
        return RuleMatch(availability=Availability.UNKNOWN)
    return None


PRICE_IN_CART_PHRASES = ("add this item to your cart", "add to cart to see", "see price in cart", "to see our price")


def _price_in_cart(page: PageSource) -> RuleMatch | None:
    """Price shown only in the cart ("To see product details, add this item to your cart")."""
    for region_id in ("priceNotAvailable_feature_div", "dpSorryPage", "price"):
        text = text_of(page.element(region_id)).lower()
        if any(phrase in text for phrase in PRICE_IN_CART_PHRASES):
            return RuleMatch()
    return None


# The one ordered list of rules. Price rules first (newest layouts first), then the no-price
# states; the first rule that matches wins and its name is recorded with the result.
RULES: tuple[Rule, ...] = (
    Rule("core_price_display", _core_price_display),
    Rule("core_price_table", _core_price_table),
    Rule("core_price_buybox", _core_price_buybox),
    Rule("priceblock", _priceblock),
    Rule("buy_new_offer", _buy_new_offer),
    Rule("kindle_price", _kindle_price),
    Rule("used_only_offer", _used_only_offer),
    Rule("no_price:currently_unavailable", _currently_unavailable),
    Rule("no_price:no_featured_offer", _no_featured_offer),
    Rule("no_price:variant_not_selected", _variant_not_selected),
    Rule("no_price:price_in_cart", _price_in_cart),
)


# --------------------------------------------------------------------------------------------
# Title, ASIN, availability
# --------------------------------------------------------------------------------------------

TITLE_IDS = ("productTitle", "ebooksProductTitle", "title")


def read_title(page: PageSource) -> str | None:
    """The product title: ``#productTitle``, the Kindle ``#ebooksProductTitle``, else ``h1#title``."""
    for title_id in TITLE_IDS:
        tag = page.element(title_id)
        if tag is not None and tag.name in ("span", "h1", "div") and (title := text_of(tag)):
            return title
    return None


def read_asin(page: PageSource, asin_hint: str | None = None) -> str | None:
    """The page's ASIN: the buy box's ``input#ASIN``, else the canonical ``/dp/`` URL, else the hint.

    ``input#ASIN`` comes first because a variation child's canonical URL points to its parent.
    """
    tag = page.element("ASIN")
    value = tag.get("value") if tag is not None else None
    if isinstance(value, str) and ASIN_PATTERN.match(value.strip()):
        return value.strip()
    if match := _DP_ASIN.search(page.canonical_url or ""):
        return match.group(1)
    return asin_hint


def read_availability(page: PageSource) -> Availability:
    """What the page says about stock: the ``#availability`` line, else a buy button, else unknown.

    The first ``#availability`` is the featured offer's; when it is empty (Amazon omits it for
    some new offers and for digital items) an Add to Cart / Buy Now button means buyable.
    """
    if (availability := _out_of_stock_box(page)) is not None:
        return availability
    text = text_of(page.element("availability"))
    if text:
        return availability_of_text(text)
    if any(page.has_element(button_id) for button_id in BUY_BUTTON_IDS):
        return Availability.IN_STOCK
    return Availability.UNKNOWN


def parse_product_page(
    body: bytes, *, encoding: str | None = None, asin_hint: str | None = None, currency_hint: str | None = None
) -> ParsedPage:
    """Parse a page already classified as a product page.

    Returns a :class:`ParsedPage`; ``rule`` names the rule that matched, or is empty when no
    rule did (neither a price nor a known no-price state: the caller reports a parse error).
    ``currency_hint`` is the currency of the marketplace the page was fetched from; the page's
    own canonical URL, and the symbol next to the price, win over it.
    """
    page = PageSource(body, encoding, currency_hint=currency_hint)
    rule_name, found = "", RuleMatch()
    for rule in RULES:
        if (match := rule.match(page)) is not None:
            rule_name, found = rule.name, match
            break
    price = found.price
    currency = (price.currency if price else None) or page.marketplace_currency
    return ParsedPage(
        asin=read_asin(page, asin_hint),
        title=read_title(page),
        price=price.amount if price else None,
        currency=currency,
        availability=read_availability(page) if found.availability is None else found.availability,
        list_price=found.list_price.amount if found.list_price else None,
        rule=rule_name,
    )
