"""Turn what a user typed (an amazon.com product URL or an ASIN) into an ASIN, or refuse it.

The user's string is only ever *read* here: the URL we fetch is rebuilt from the ASIN and the
configured base URL by :func:`product_url`, so nothing a user types can make us request another
host, port, path or scheme (no SSRF). Rejections carry a message a user understands and a
machine-readable :class:`RejectReason`, so the API can answer 400 with a clear sentence.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from enum import StrEnum
from urllib.parse import SplitResult, urlsplit

MAX_INPUT_LENGTH = 2048

# The storefront hosts whose product pages we accept. The fetch URL never uses them: it is built
# from settings.AMAZON_BASE_URL.
AMAZON_HOSTS = frozenset({"amazon.com", "www.amazon.com", "smile.amazon.com", "m.amazon.com"})
SHORT_LINK_HOSTS = frozenset({"a.co", "amzn.to", "amzn.com", "www.amzn.com", "amzn.eu", "amzn.asia"})
# Other Amazon storefronts: refused with their own message, as users paste them by mistake.
OTHER_MARKETPLACE_SUFFIXES = (
    "ae", "ca", "cn", "co.jp", "co.uk", "co.za", "com.au", "com.be", "com.br", "com.mx", "com.tr",
    "de", "eg", "es", "fr", "ie", "in", "it", "nl", "pl", "sa", "se", "sg",
)  # fmt: skip

# A non-book ASIN is "B0" + 8 letters/digits; a book's ASIN is its ISBN-10.
_B0_ASIN = re.compile(r"B0[A-Z0-9]{8}")
_ISBN10 = re.compile(r"[0-9]{9}[0-9X]")
# Scheme per RFC 3986. "www.amazon.com:443/dp/X" also matches the pattern, so a "scheme" followed
# by digits is treated as host:port instead (see _split_url).
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
# /dp/ASIN, /<slug>/dp/ASIN, /dp/product/ASIN, /gp/product/ASIN, /gp/aw/d/ASIN, each optionally
# followed by /ref=... or more segments. "dp/product" comes before "dp" so that "product" is not
# taken for the ASIN.
_PRODUCT_PATH = re.compile(r"/(?:[^/]+/)?(?:dp/product|dp|gp/product|gp/aw/d)/(?P<asin>[^/]*)(?:/.*)?", re.IGNORECASE)
# Hosts that browsers resolve as IPv4 addresses: "127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1".
_NUMERIC_HOST = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+))*", re.IGNORECASE)


_IP_MESSAGE = "Links to an IP address are not accepted; paste an amazon.com product URL."


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
    """The text is not an amazon.com product URL or ASIN; ``str(exc)`` is shown to the user."""

    def __init__(self, message: str, *, reason: RejectReason = RejectReason.MALFORMED) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


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


def normalize_product_reference(text: str) -> str:
    """Return the ASIN (10 characters, upper case) named by ``text``, or raise InvalidProductReference.

    Accepts a bare ASIN or ISBN-10 and amazon.com product URLs in their real forms (``/dp/ASIN``,
    ``/<slug>/dp/ASIN/ref=...?th=1``, ``/gp/product/ASIN``, ``/gp/aw/d/ASIN``, ``/dp/product/ASIN``)
    on ``amazon.com``, ``www.``, ``smile.`` and ``m.`` hosts, with or without ``http(s)://``.
    Leading and trailing whitespace (a pasted newline) is ignored; anything else unusual is refused.
    """
    if len(text) > MAX_INPUT_LENGTH:
        raise _reject(
            RejectReason.TOO_LONG, f"That is too long for a product URL (at most {MAX_INPUT_LENGTH} characters)."
        )
    text = text.strip()
    if not text:
        raise _reject(RejectReason.EMPTY, "Enter an amazon.com product URL or an ASIN.")
    if any(unicodedata.category(char)[0] in "CZ" for char in text):  # controls, invisible formatting, spaces
        raise _reject(
            RejectReason.WHITESPACE,
            "The text contains spaces or control characters; paste the product URL exactly as your browser shows it.",
        )
    if not any(char in text for char in "/.:"):
        if len(text) != 10:
            raise _reject(
                RejectReason.INVALID_ASIN,
                "Enter an amazon.com product URL or an ASIN (10 letters and digits starting with B0, "
                "or a book's ISBN-10).",
            )
        return _asin_or_reject(text)
    return _asin_from_url(_split_url(text))


def _split_url(text: str) -> SplitResult:
    match = _SCHEME.match(text)
    if match and not text[match.end() :][:1].isdigit():
        scheme = match.group(1).lower()
        if scheme not in {"http", "https"}:
            raise _reject(RejectReason.SCHEME, "Only http:// and https:// links to amazon.com are accepted.")
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


def _asin_from_url(parts: SplitResult) -> str:
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
        raise _reject(RejectReason.HOST, "Only amazon.com product links are accepted.")
    if _is_ip_literal(host):
        raise _reject(RejectReason.IP_LITERAL, _IP_MESSAGE)
    if host in SHORT_LINK_HOSTS:
        raise _reject(
            RejectReason.SHORT_LINK,
            "Short links (a.co, amzn.to, amzn.com) cannot be resolved safely; open it and paste the full product URL.",
        )
    if _is_other_marketplace(host):
        raise _reject(
            RejectReason.MARKETPLACE,
            f"Only amazon.com is supported for now; {host[:100]} is another Amazon marketplace.",
        )
    if host not in AMAZON_HOSTS:
        raise _reject(
            RejectReason.HOST,
            f"Only amazon.com product links are accepted (www.amazon.com, smile.amazon.com, m.amazon.com), "
            f"not {host[:100]}.",
        )
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and port != {"http": 80, "https": 443}[parts.scheme]:
        raise _reject(RejectReason.PORT, "Links with a port number are not accepted; paste the product URL as shown.")
    match = _PRODUCT_PATH.fullmatch(parts.path)
    if match is None:
        raise _reject(
            RejectReason.NOT_PRODUCT_PAGE,
            "This amazon.com link is not a product page (search results, lists, best sellers and stores are "
            "not supported); open the product and paste the URL of its page.",
        )
    return _asin_or_reject(match.group("asin"))


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # Browsers also resolve "127.1", "2130706433" and "0x7f.1" as addresses.
        return bool(_NUMERIC_HOST.fullmatch(host))
    return True


def _is_other_marketplace(host: str) -> bool:
    return any(
        host == f"amazon.{suffix}" or host.endswith(f".amazon.{suffix}") for suffix in OTHER_MARKETPLACE_SUFFIXES
    )


def _checked(asin: str) -> str:
    if not is_valid_asin(asin):
        raise ValueError(f"not a normalised ASIN: {asin[:20]!r}")
    return asin


def product_url(asin: str, base_url: str) -> str:
    """The URL to fetch: built from the ASIN and the configured base URL only, never from user text."""
    return f"{base_url.rstrip('/')}/dp/{_checked(asin)}"


def canonical_url(asin: str) -> str:
    """The product's public amazon.com URL, for display and links."""
    return f"https://www.amazon.com/dp/{_checked(asin)}"
