"""Turn what a user typed (an Amazon product URL or an ASIN) into a store and an ASIN, or refuse it.

The user's string is only ever *read* here: the URL we fetch is rebuilt from the ASIN and the
store's base URL by :func:`product_url`, so nothing a user types can make us request another
host, port, path or scheme (no SSRF). Rejections carry a message a user understands and a
machine-readable :class:`RejectReason`, so the API can answer 400 with a clear sentence.

Accepted: a bare ASIN (the caller picks the marketplace), and product URLs on every marketplace
of :mod:`scraping.marketplaces`, in the forms people paste (``/dp/``, ``/gp/product/``, mobile
``/gp/aw/d/``, ``/gp/offer-listing/``, the old ``/exec/obidos/ASIN/`` and ``/o/ASIN/``, a
``/-/de/`` language prefix, and sponsored-result redirectors whose ``url=`` names a product
path). Short links (``a.co``, ``amzn.to``, ``amzn.eu``, ``amzn.asia``) are recognised and refused
with :attr:`RejectReason.SHORT_LINK` and the URL to resolve (:mod:`scraping.shortlinks` follows
them, hop by hop, within this same allow-list).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import SplitResult, parse_qsl, urlsplit

from scraping.marketplaces import (
    DEFAULT_MARKETPLACE,
    MARKETPLACE_HOSTS,
    find_marketplace,
    is_unsupported_marketplace_host,
    marketplace_for_host,
)

MAX_INPUT_LENGTH = 2048

# Every host a product link may name (all marketplaces, with their www./m./smile. forms). The
# fetch URL never uses them: it is built from the store's base URL.
AMAZON_HOSTS = MARKETPLACE_HOSTS
# Amazon's link shorteners. ``amzn.com`` is amazon.com's own short domain: its links carry the
# ASIN (amzn.com/B0..., amzn.com/dp/B0...) and are read without a request.
SHORT_LINK_HOSTS = frozenset({"a.co", "amzn.to", "amzn.eu", "amzn.asia", "www.amzn.to"})
AMAZON_COM_ALIASES = frozenset({"amzn.com", "www.amzn.com"})
# A short link's code: letters, digits, "/", "-" and "_" (a.co/d/0AbC1dE, amzn.to/3xYz).
_SHORT_LINK_PATH = re.compile(r"/[A-Za-z0-9_/-]{1,100}")

# A non-book ASIN is "B0" + 8 letters/digits; a book's ASIN is its ISBN-10.
_B0_ASIN = re.compile(r"B0[A-Z0-9]{8}")
_ISBN10 = re.compile(r"[0-9]{9}[0-9X]")
# Scheme per RFC 3986. "www.amazon.com:443/dp/X" also matches the pattern, so a "scheme" followed
# by digits is treated as host:port instead (see _split_url).
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
# An optional "/-/de" (or "/-/en_GB") language prefix, an optional slug, then the product path:
# /dp/ASIN, /dp/product/ASIN, /gp/product/ASIN, /gp/aw/d/ASIN (mobile), /gp/offer-listing/ASIN,
# /exec/obidos/ASIN/ASIN and /exec/obidos/tg/detail/-/ASIN (pre-2010), /o/ASIN/ASIN; each may be
# followed by /ref=... or more segments. "dp/product" comes before "dp" so that "product" is not
# taken for the ASIN.
_LANGUAGE_PREFIX = r"(?:/-/[A-Za-z]{2}(?:[_-][A-Za-z]{2})?)?"
_PRODUCT_PATH = re.compile(
    _LANGUAGE_PREFIX + r"(?:/[^/]+)?"
    r"/(?:dp/product|dp|gp/product|gp/aw/d|gp/offer-listing|exec/obidos/ASIN|exec/obidos/tg/detail/-|o/ASIN)"
    r"/(?P<asin>[^/]*)(?:/.*)?",
    re.IGNORECASE,
)
# Sponsored results and sign-in pages link through a redirector whose query names the product
# page, percent-encoded ("url=%2FSome-Thing%2Fdp%2FB0..."); only these paths and parameters count.
_REDIRECTOR_PATH = re.compile(
    _LANGUAGE_PREFIX + r"/(?:gp/slredirect/picassoRedirect\.html|sspa/click|gp/redirect\.html)(?:/.*)?",
    re.IGNORECASE,
)
_REDIRECTOR_PARAMETERS = ("url", "location")
# Hosts that browsers resolve as IPv4 addresses: "127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1".
_NUMERIC_HOST = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+))*", re.IGNORECASE)


_IP_MESSAGE = "Links to an IP address are not accepted; paste an Amazon product URL."


class RejectReason(StrEnum):
    """Why a product reference was refused (stable codes for API clients and tests)."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    WHITESPACE = "whitespace"
    MALFORMED = "malformed"
    SCHEME = "scheme"
    USERINFO = "userinfo"
    IP_LITERAL = "ip_literal"
    PORT = "port"
    SHORT_LINK = "short_link"
    MARKETPLACE = "marketplace"
    HOST = "host"
    NOT_PRODUCT_PAGE = "not_product_page"
    INVALID_ASIN = "invalid_asin"


class InvalidProductReference(ValueError):
    """The text is not an Amazon product URL or ASIN; ``str(exc)`` is shown to the user.

    For :attr:`RejectReason.SHORT_LINK`, ``short_link`` is the link to resolve (https, no query).
    """

    def __init__(self, message: str, *, reason: RejectReason = RejectReason.MALFORMED, short_link: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.short_link = short_link


@dataclass(frozen=True, slots=True)
class ProductReference:
    """An ASIN and the marketplace it was named on (None for a bare ASIN: the caller chooses)."""

    asin: str
    store: str | None = None


def _reject(reason: RejectReason, message: str) -> InvalidProductReference:
    return InvalidProductReference(message, reason=reason)


def is_valid_asin(value: str) -> bool:
    """True for an upper-case ASIN: ``B0`` + 8 letters/digits, or an ISBN-10 with a valid check digit."""
    if _B0_ASIN.fullmatch(value):
        return True
    return bool(_ISBN10.fullmatch(value)) and _isbn10_checksum_ok(value)


def _isbn10_checksum_ok(isbn: str) -> bool:
    # Weights 10..1; "X" is 10 and only allowed as the check character.
    digits = [10 if char == "X" else int(char) for char in isbn]
    return sum(weight * digit for weight, digit in zip(range(10, 0, -1), digits, strict=True)) % 11 == 0


def _asin_or_reject(candidate: str) -> str:
    asin = candidate.upper()
    if is_valid_asin(asin):
        return asin
    if _ISBN10.fullmatch(asin):
        raise _reject(
            RejectReason.INVALID_ASIN,
            f"{candidate[:20]!r} looks like an ISBN-10 but its check digit is wrong; check for a typo.",
        )
    raise _reject(
        RejectReason.INVALID_ASIN,
        f"{candidate[:20]!r} is not a valid ASIN: an ASIN is 10 letters and digits starting with B0, "
        "or a book's 10-digit ISBN.",
    )


def parse_product_reference(text: str) -> ProductReference:
    """The ASIN and marketplace named by ``text``, or raise InvalidProductReference.

    A bare ASIN or ISBN-10 gives ``store=None``. A URL gives its marketplace's code
    (``amazon.de`` for ``https://www.amazon.de/-/en/dp/B0...``). Leading and trailing whitespace
    (a pasted newline) is ignored; anything else unusual is refused. A short link is refused with
    :attr:`RejectReason.SHORT_LINK` and ``exc.short_link`` set: resolving it takes requests,
    which is :func:`scraping.shortlinks.resolve_short_link`'s job.
    """
    if len(text) > MAX_INPUT_LENGTH:
        raise _reject(
            RejectReason.TOO_LONG, f"That is too long for a product URL (at most {MAX_INPUT_LENGTH} characters)."
        )
    text = text.strip()
    if not text:
        raise _reject(RejectReason.EMPTY, "Enter an Amazon product URL or an ASIN.")
    if any(unicodedata.category(char)[0] in "CZ" for char in text):  # controls, invisible formatting, spaces
        raise _reject(
            RejectReason.WHITESPACE,
            "The text contains spaces or control characters; paste the product URL exactly as your browser shows it.",
        )
    if not any(char in text for char in "/.:"):
        if len(text) != 10:
            raise _reject(
                RejectReason.INVALID_ASIN,
                "Enter an Amazon product URL or an ASIN (10 letters and digits starting with B0, or a book's ISBN-10).",
            )
        return ProductReference(_asin_or_reject(text))
    return _reference_from_url(_split_url(text))


def normalize_product_reference(text: str, *, store: str = DEFAULT_MARKETPLACE) -> str:
    """The ASIN named by ``text`` on marketplace ``store`` (a bare ASIN, or a URL on that store).

    A URL on another marketplace is refused (:attr:`RejectReason.MARKETPLACE`), as is a short link.
    """
    reference = parse_product_reference(text)
    if reference.store is not None and reference.store != store:
        raise _reject(
            RejectReason.MARKETPLACE,
            f"This link is on {reference.store}, not {store[:100]}; add it as a product of {reference.store}.",
        )
    return reference.asin


def _split_url(text: str) -> SplitResult:
    match = _SCHEME.match(text)
    if match and not text[match.end() :][:1].isdigit():
        scheme = match.group(1).lower()
        if scheme not in {"http", "https"}:
            raise _reject(RejectReason.SCHEME, "Only http:// and https:// links to Amazon are accepted.")
        if not text[match.end() :].startswith("//"):
            raise _reject(RejectReason.MALFORMED, "That is not a valid URL: expected https://www.amazon.com/...")
    elif text.startswith("//"):
        text = "https:" + text
    else:
        text = "https://" + text
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. a bracketed host that is not an IPv6 address
        raise _reject(RejectReason.MALFORMED, "That is not a valid URL.") from None
    if not parts.netloc:
        raise _reject(RejectReason.MALFORMED, "That is not a valid URL: it has no host.")
    return parts


def checked_host(parts: SplitResult) -> str:
    """The lower-case host of an http(s) URL, refusing userinfo, odd characters, IPs and ports.

    Shared with the short-link resolver, which checks every redirect target this way before it
    requests it. Raises InvalidProductReference.
    """
    netloc = parts.netloc
    # Any userinfo is refused: "https://amazon.com@evil.example/" goes to evil.example.
    if "@" in netloc:
        raise _reject(
            RejectReason.USERINFO,
            "Links with a user name or password before the host (user@host) are not accepted.",
        )
    # Browsers read "\" as "/" in http(s) URLs while Python does not; refuse the ambiguity.
    if "\\" in netloc or "%" in netloc:
        raise _reject(RejectReason.MALFORMED, "That is not a valid URL: the host contains unexpected characters.")
    if netloc.startswith("["):
        raise _reject(RejectReason.IP_LITERAL, _IP_MESSAGE)
    host = (parts.hostname or "").removesuffix(".")
    if not host or not host.isascii():
        # Non-ASCII hosts are look-alikes (e.g. a Cyrillic "o" in amazon.com) or invalid.
        raise _reject(RejectReason.HOST, "Only Amazon product links are accepted.")
    if _is_ip_literal(host):
        raise _reject(RejectReason.IP_LITERAL, _IP_MESSAGE)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and port != {"http": 80, "https": 443}.get(parts.scheme):
        raise _reject(RejectReason.PORT, "Links with a port number are not accepted; paste the product URL as shown.")
    return host


def _reference_from_url(parts: SplitResult) -> ProductReference:
    host = checked_host(parts)
    if host in SHORT_LINK_HOSTS:
        path = parts.path.rstrip("/")
        if not _SHORT_LINK_PATH.fullmatch(path):
            raise _reject(RejectReason.MALFORMED, f"That {host} link has no link code; copy the whole link.")
        raise InvalidProductReference(
            f"{host} is a short link: it is resolved by following its redirects to the product page.",
            reason=RejectReason.SHORT_LINK,
            short_link=f"https://{host}{path}",
        )
    if host in AMAZON_COM_ALIASES:
        # amzn.com/B0... and amzn.com/dp/B0... are amazon.com product links with the ASIN in them.
        segments = [segment for segment in parts.path.split("/") if segment]
        if segments[:1] == ["dp"]:
            segments = segments[1:]
        if not segments:
            raise _reject(RejectReason.NOT_PRODUCT_PAGE, "That amzn.com link names no product.")
        return ProductReference(_asin_or_reject(segments[0]), DEFAULT_MARKETPLACE)
    marketplace = marketplace_for_host(host)
    if marketplace is None:
        if is_unsupported_marketplace_host(host):
            raise _reject(
                RejectReason.MARKETPLACE,
                f"{host[:100]} is an Amazon marketplace we do not support yet.",
            )
        raise _reject(
            RejectReason.HOST,
            f"Only Amazon product links are accepted (amazon.com, amazon.de, amazon.co.jp and the other "
            f"Amazon marketplaces), not {host[:100]}.",
        )
    asin = _asin_from_path(parts.path) or _asin_from_redirector(parts, host)
    if asin is None:
        raise _reject(
            RejectReason.NOT_PRODUCT_PAGE,
            "This Amazon link is not a product page (search results, lists, best sellers and stores are "
            "not supported); open the product and paste the URL of its page.",
        )
    return ProductReference(asin, marketplace.code)


def _asin_from_path(path: str) -> str | None:
    match = _PRODUCT_PATH.fullmatch(path)
    return None if match is None else _asin_or_reject(match.group("asin"))


def _asin_from_redirector(parts: SplitResult, host: str) -> str | None:
    """The ASIN of the product page a sponsored-result redirector points to, on the same host.

    The target is decoded once (``parse_qsl``) and must be a path on this site ("/...", not
    "//host"), or an absolute https URL on the same marketplace; no dot segments.
    """
    if not _REDIRECTOR_PATH.fullmatch(parts.path):
        return None
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if name.lower() not in _REDIRECTOR_PARAMETERS:
            continue
        if value.startswith("/") and not value.startswith("//") and "\\" not in value:
            target_path = value.split("?", 1)[0].split("#", 1)[0]
        else:
            try:
                target = urlsplit(value)
            except ValueError:
                continue
            if target.scheme != "https" or _split_host_or_none(target) != host:
                continue
            target_path = target.path
        if any(segment in (".", "..") for segment in target_path.split("/")) or "%" in target_path:
            continue
        if (asin := _asin_from_path(target_path)) is not None:
            return asin
    return None


def _split_host_or_none(parts: SplitResult) -> str | None:
    try:
        return checked_host(parts)
    except InvalidProductReference:
        return None


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # Browsers also resolve "127.1", "2130706433" and "0x7f.1" as addresses.
        return bool(_NUMERIC_HOST.fullmatch(host))
    return True


def _checked(asin: str) -> str:
    if not is_valid_asin(asin):
        raise ValueError(f"not a normalised ASIN: {asin[:20]!r}")
    return asin


def product_url(asin: str, base_url: str) -> str:
    """The URL to fetch: built from the ASIN and the store's base URL only, never from user text."""
    return f"{base_url.rstrip('/')}/dp/{_checked(asin)}"


def canonical_url(asin: str, store: str = DEFAULT_MARKETPLACE) -> str:
    """The product's public URL on its marketplace (``https://www.amazon.de/dp/ASIN``), for display and links."""
    marketplace = find_marketplace(store)
    base = marketplace.public_base_url if marketplace is not None else f"https://www.{DEFAULT_MARKETPLACE}"
    return f"{base}/dp/{_checked(asin)}"
