"""The Amazon retail marketplaces we track: their hosts, currency and language.

Static facts about Amazon, not policy: a marketplace's politeness (rate, minimum interval,
breaker, enabled flag) and the currency and language we send are its ``Store`` row, seeded from
this table (data migration ``scraping/0004``, or :func:`scraping.models.get_store` on first use)
and edited in the admin afterwards.

A marketplace's code is its bare host (``amazon.de``); it is also the ``Store.code`` and the
provider code. Product links come from ``www.``, ``m.`` and ``smile.`` hosts too; short links
(``a.co``, ``amzn.to`` ...) are not marketplaces, they redirect to one
(:mod:`scraping.shortlinks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

DEFAULT_MARKETPLACE = "amazon.com"
# The subdomains product links are shared from: desktop, mobile and the retired AmazonSmile.
HOST_PREFIXES = ("", "www.", "m.", "smile.")


@dataclass(frozen=True, slots=True)
class Marketplace:
    """One Amazon storefront.

    ``language`` is the BCP 47 tag of the storefront's default language: what we ask for in
    ``Accept-Language``, and the locale whose conventions its pages print prices in.
    """

    code: str
    name: str
    currency: str
    language: str

    @property
    def hosts(self) -> frozenset[str]:
        """Every host a product link on this marketplace may use."""
        return frozenset(prefix + self.code for prefix in HOST_PREFIXES)

    @property
    def public_base_url(self) -> str:
        """``https://www.amazon.de``: where its product pages live on the internet."""
        return f"https://www.{self.code}"


MARKETPLACES: tuple[Marketplace, ...] = (
    Marketplace("amazon.com", "Amazon.com", "USD", "en-US"),
    Marketplace("amazon.ca", "Amazon.ca", "CAD", "en-CA"),
    Marketplace("amazon.com.mx", "Amazon.com.mx", "MXN", "es-MX"),
    Marketplace("amazon.com.br", "Amazon.com.br", "BRL", "pt-BR"),
    Marketplace("amazon.co.uk", "Amazon.co.uk", "GBP", "en-GB"),
    Marketplace("amazon.de", "Amazon.de", "EUR", "de-DE"),
    Marketplace("amazon.fr", "Amazon.fr", "EUR", "fr-FR"),
    Marketplace("amazon.it", "Amazon.it", "EUR", "it-IT"),
    Marketplace("amazon.es", "Amazon.es", "EUR", "es-ES"),
    Marketplace("amazon.nl", "Amazon.nl", "EUR", "nl-NL"),
    Marketplace("amazon.se", "Amazon.se", "SEK", "sv-SE"),
    Marketplace("amazon.pl", "Amazon.pl", "PLN", "pl-PL"),
    Marketplace("amazon.com.be", "Amazon.com.be", "EUR", "fr-BE"),
    Marketplace("amazon.com.tr", "Amazon.com.tr", "TRY", "tr-TR"),
    Marketplace("amazon.ae", "Amazon.ae", "AED", "en-AE"),
    Marketplace("amazon.sa", "Amazon.sa", "SAR", "ar-SA"),
    Marketplace("amazon.eg", "Amazon.eg", "EGP", "ar-EG"),
    Marketplace("amazon.in", "Amazon.in", "INR", "en-IN"),
    Marketplace("amazon.co.jp", "Amazon.co.jp", "JPY", "ja-JP"),
    Marketplace("amazon.sg", "Amazon.sg", "SGD", "en-SG"),
    Marketplace("amazon.com.au", "Amazon.com.au", "AUD", "en-AU"),
)
# A store's default plausible maximum (Store.max_plausible_price) is 1,000,000 in dollars; in a
# currency with more units to the dollar the same ceiling is a bigger number (a 1,500,000 yen
# camera is a real price). Rounded up generously: this only catches misparsed pages.
PLAUSIBLE_MAXIMUM = {
    "USD": Decimal("1000000"),
    "CAD": Decimal("2000000"),
    "MXN": Decimal("25000000"),
    "BRL": Decimal("10000000"),
    "GBP": Decimal("1000000"),
    "EUR": Decimal("1000000"),
    "SEK": Decimal("15000000"),
    "PLN": Decimal("5000000"),
    "TRY": Decimal("50000000"),
    "AED": Decimal("5000000"),
    "SAR": Decimal("5000000"),
    "EGP": Decimal("100000000"),
    "INR": Decimal("100000000"),
    "JPY": Decimal("200000000"),
    "SGD": Decimal("2000000"),
    "AUD": Decimal("2000000"),
}
_BY_CODE = {marketplace.code: marketplace for marketplace in MARKETPLACES}
_BY_HOST = {host: marketplace for marketplace in MARKETPLACES for host in marketplace.hosts}

# Every host of every marketplace: product links, and where a fetch may be redirected.
MARKETPLACE_HOSTS = frozenset(_BY_HOST)

# Amazon storefronts that exist but are not retail marketplaces we track (China closed its
# retail site; South Africa and Ireland are not supported yet): refused with their own message.
UNSUPPORTED_MARKETPLACE_SUFFIXES = ("cn", "co.za", "ie")


def marketplace(code: str) -> Marketplace:
    """The marketplace with this code (``amazon.de``); raises KeyError."""
    return _BY_CODE[code]


def find_marketplace(code: str) -> Marketplace | None:
    """The marketplace with this code, or None."""
    return _BY_CODE.get(code)


def marketplace_for_host(host: str) -> Marketplace | None:
    """The marketplace a lower-case host (``www.amazon.co.jp``) belongs to, or None."""
    return _BY_HOST.get(host)


def is_unsupported_marketplace_host(host: str) -> bool:
    """True for a host of an Amazon storefront we do not track (``www.amazon.cn``)."""
    return any(
        host == f"{prefix}amazon.{suffix}" for suffix in UNSUPPORTED_MARKETPLACE_SUFFIXES for prefix in HOST_PREFIXES
    )


def accept_language(language: str) -> str:
    """The ``Accept-Language`` header for a storefront language, as Firefox sends it.

    ``de-DE`` -> ``de-DE,de;q=0.5`` (the shape of Firefox's ``en-US,en;q=0.5``).
    """
    primary = language.split("-", 1)[0]
    return language if primary == language else f"{language},{primary};q=0.5"
