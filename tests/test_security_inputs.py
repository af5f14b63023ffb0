"""Hostile product references: nothing but Amazon product URLs (on the marketplaces we track) and
ASINs is ever accepted.

tests/test_inputs.py has the table of real URL forms and rejections and the basic properties
(real URLs normalise to their ASIN; random text and random other domains are refused). These
properties go after the tricks: look-alike hosts (Unicode confusables, IDN/punycode, full-width
dots), IP literals in every notation browsers resolve, ports, userinfo, percent-encoding and
backslashes, sponsored-result redirectors, and random mutations of a valid URL. Whatever is
accepted must name a marketplace host *as a browser would read it* and normalise to the same
ASIN as its canonical URL.
"""

from __future__ import annotations

import ipaddress
import string
from urllib.parse import quote, unquote, urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scraping.inputs import (
    AMAZON_HOSTS,
    InvalidProductReference,
    RejectReason,
    canonical_url,
    is_valid_asin,
    normalize_product_reference,
    parse_product_reference,
)

ASIN = "B07FNW9FGJ"


def deterministic(examples: int) -> settings:
    """The same examples on every run (CI must not find a different bug each time)."""
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None)


# Characters that render like ASCII letters of "www.amazon.com" (Cyrillic, Greek, Latin
# extensions, full-width forms) and dots that browsers treat as ".".
CONFUSABLES = {
    "a": "\u0430\u0251\uff41\u00e0\u0101",
    "o": "\u043e\u03bf\uff4f\u00f6\u1d0f",
    "m": "\uff4d\u217f\u043c",
    "z": "\uff5a\u1d22\u017c",
    "n": "\uff4e\u0578\u0144",
    "c": "\u0441\uff43\u03f2",
    "w": "\u051d\uff57\u0461",
    "s": "\u0455\uff53",
    "i": "\u0456\u0131\uff49",
    "l": "\u04cf\u217c\uff4c",
    "e": "\u0435\uff45",
    ".": "\u3002\uff0e\uff61\u2024",
}


def rejected(text: str) -> RejectReason:
    with pytest.raises(InvalidProductReference) as caught:
        normalize_product_reference(text)
    return caught.value.reason


def browser_host(text: str) -> str | None:
    """The host a browser would contact for ``text`` (None: no host, e.g. a bare ASIN)."""
    text = text.strip()
    if "/" not in text and "." not in text and ":" not in text:
        return None
    if text.startswith("//"):
        text = "https:" + text
    elif "://" not in text:
        text = "https://" + text
    # WHATWG URL parsing: "\" is "/" in http(s) URLs; the host is percent-decoded and lower-cased.
    parts = urlsplit(text.replace("\\", "/"))
    return unquote(parts.hostname or "").lower().removesuffix(".")


asins = st.one_of(
    st.text(string.ascii_uppercase + string.digits, min_size=8, max_size=8).map(lambda tail: "B0" + tail),
    st.sampled_from(["0306406152", "080442957X", ASIN]),
)


@st.composite
def lookalike_hosts(draw) -> str:
    host = draw(st.sampled_from(sorted(AMAZON_HOSTS)))
    positions = [i for i, char in enumerate(host) if char in CONFUSABLES]
    chosen = draw(st.lists(st.sampled_from(positions), min_size=1, max_size=3, unique=True))
    chars = list(host)
    for i in chosen:
        chars[i] = draw(st.sampled_from(CONFUSABLES[chars[i]]))
    spoofed = "".join(chars)
    # Also the punycode (ASCII) form a browser would show in the address bar, when there is one.
    # (IDNA maps full-width letters back to ASCII: those forms *are* amazon.com, so keep them
    # in Unicode, which is refused all the same.)
    if draw(st.booleans()):
        try:
            ascii_form = spoofed.encode("idna").decode("ascii")
        except UnicodeError:
            return spoofed
        return spoofed if ascii_form.lower() in AMAZON_HOSTS else ascii_form
    return spoofed


@deterministic(300)
@given(host=lookalike_hosts(), scheme=st.sampled_from(["https://", "http://", "", "//"]), asin=asins)
@example(host="www.\u0430mazon.com", scheme="https://", asin=ASIN)  # Cyrillic a
@example(host="xn--mazon-3ve.com", scheme="https://", asin=ASIN)  # punycode of the same
@example(host="www.amazon\u3002com", scheme="", asin=ASIN)  # ideographic full stop
@example(host="\uff57\uff57\uff57.amazon.com", scheme="https://", asin=ASIN)  # full-width www
def test_look_alike_hosts_are_refused(host, scheme, asin):
    assert rejected(f"{scheme}{host}/dp/{asin}") in {RejectReason.HOST, RejectReason.MALFORMED}


def ipv4_notations(address: ipaddress.IPv4Address) -> list[str]:
    """The notations browsers resolve: dotted, one integer, hex, octal, and short forms."""
    octets = str(address).split(".")
    number = int(address)
    return [
        str(address),
        str(number),
        hex(number),
        ".".join(f"0{int(octet):o}" for octet in octets),
        ".".join(hex(int(octet)) for octet in octets),
        f"{octets[0]}.{int(octets[1]) << 16 | int(octets[2]) << 8 | int(octets[3])}",
        f"{octets[0]}.{octets[1]}.{int(octets[2]) << 8 | int(octets[3])}",
    ]


@deterministic(150)
@given(
    address=st.ip_addresses(v=4),
    scheme=st.sampled_from(["https://", "http://", "", "//"]),
    port=st.sampled_from(["", ":80", ":443"]),
)
@example(address=ipaddress.IPv4Address("169.254.169.254"), scheme="http://", port="")
@example(address=ipaddress.IPv4Address("127.0.0.1"), scheme="", port="")
def test_ipv4_literals_in_any_notation_are_refused(address, scheme, port):
    for host in ipv4_notations(address):
        assert rejected(f"{scheme}{host}{port}/dp/{ASIN}") == RejectReason.IP_LITERAL, host


@deterministic(150)
@given(address=st.ip_addresses(v=6), scheme=st.sampled_from(["https://", "http://", "", "//"]))
@example(address=ipaddress.IPv6Address("::1"), scheme="http://")
@example(address=ipaddress.IPv6Address("::ffff:127.0.0.1"), scheme="https://")
@example(address=ipaddress.IPv6Address("fd00:ec2::254"), scheme="http://")
def test_ipv6_literals_are_refused(address, scheme):
    for host in (f"[{address}]", f"[{address.exploded}]", f"[{address}]:443"):
        assert rejected(f"{scheme}{host}/dp/{ASIN}") == RejectReason.IP_LITERAL, host


@deterministic(200)
@given(
    host=st.sampled_from(sorted(AMAZON_HOSTS)),
    scheme=st.sampled_from(["https", "http"]),
    port=st.integers(min_value=0, max_value=65535),
)
def test_any_port_but_the_schemes_default_is_refused(host, scheme, port):
    text = f"{scheme}://{host}:{port}/dp/{ASIN}"
    if port == {"http": 80, "https": 443}[scheme]:
        assert normalize_product_reference(text) == ASIN
    else:
        assert rejected(text) == RejectReason.PORT


userinfo = st.text(
    alphabet=st.characters(blacklist_categories=("C", "Z"), blacklist_characters="/?#[]"), min_size=0, max_size=20
)


@deterministic(200)
@given(
    user=userinfo,
    password=st.one_of(st.none(), userinfo),
    host=st.sampled_from([*sorted(AMAZON_HOSTS), "evil.example", "127.0.0.1", "amazon.com.evil.example"]),
)
@example(user="www.amazon.com", password=None, host="evil.example")
@example(user="", password=None, host="www.amazon.com")
def test_any_userinfo_is_refused_whoever_the_host_is(user, password, host):
    credentials = user if password is None else f"{user}:{password}"
    assert rejected(f"https://{credentials}@{host}/dp/{ASIN}") in {
        RejectReason.USERINFO,
        RejectReason.MALFORMED,
    }


@deterministic(200)
@given(host=st.sampled_from(sorted(AMAZON_HOSTS)), data=st.data())
def test_a_percent_encoded_host_is_refused(host, data):
    """``%61mazon.com`` is amazon.com to a browser, and ``amazon.com%2f@evil`` something else."""
    indices = data.draw(st.lists(st.integers(0, len(host) - 1), min_size=1, max_size=4, unique=True))
    encoded = "".join(f"%{ord(char):02X}" if i in indices else char for i, char in enumerate(host))
    assert rejected(f"https://{encoded}/dp/{ASIN}") == RejectReason.MALFORMED


@pytest.mark.parametrize(
    "text",
    [
        "https://www.amazon.com%2f@evil.example/dp/B07FNW9FGJ",
        "https://evil.example%2f@www.amazon.com/dp/B07FNW9FGJ",
        "https://www.amazon.com%00.evil.example/dp/B07FNW9FGJ",
        "https://www.amazon.com%252f.evil.example/dp/B07FNW9FGJ",
        "https://evil.example\\@www.amazon.com/dp/B07FNW9FGJ",
        "https://evil.example\\.www.amazon.com/dp/B07FNW9FGJ",
        "https:\\\\evil.example/dp/B07FNW9FGJ",
        "https:/\\evil.example/dp/B07FNW9FGJ",
        "\\\\evil.example/dp/B07FNW9FGJ",
        "https://www.amazon.com\\evil.example/dp/B07FNW9FGJ",
        "https://www.amazon.com#@evil.example/dp/B07FNW9FGJ",
        "https://www.amazon.com?@evil.example/dp/B07FNW9FGJ",
        "https://www.amazon.com/dp/%42%30%37%46%4E%57%39%46%47%4A",
        "https://www.amazon.com/%64p/B07FNW9FGJ",
        "https://www.amazon.com/dp/B07FNW9FGJ%2F..%2F..%2Fadmin",
        "https://www.amazon.com/dp/../../B07FNW9FGJ",
        "https:///www.amazon.com/dp/B07FNW9FGJ",
        "https://@www.amazon.com/dp/B07FNW9FGJ",
        "https://www.amazon.com:/dp/B07FNW9FGJ@evil.example",
        "https://[www.amazon.com]/dp/B07FNW9FGJ",
        "https://www.amazon.com\uff0fdp/B07FNW9FGJ",
        "https://www.amazon.com.\u200b/dp/B07FNW9FGJ",
    ],
)
def test_encoding_and_separator_tricks_are_refused(text):
    rejected(text)


# --- mutations of a valid URL ------------------------------------------------------------------

HOSTILE = ["@", "\\", "%", "%2f", "%40", ":", "/", "//", ".", "#", "?", "[", "]", "\u3002", "\u0430", "0", "x", "/../"]


@st.composite
def mutated_urls(draw) -> str:
    asin = draw(asins)
    text = draw(
        st.sampled_from(
            [
                canonical_url(asin),
                f"www.amazon.com/Some-Thing/dp/{asin}/ref=sr_1_1?th=1",
                f"https://smile.amazon.com/gp/product/{asin}",
                f"amazon.com/dp/{asin}",
            ]
        )
    )
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(text)))
        text = text[:position] + draw(st.sampled_from(HOSTILE)) + text[position:]
    return text


@deterministic(500)
@given(mutated_urls())
def test_a_mutated_url_is_refused_or_still_names_an_amazon_com_product(text):
    try:
        asin = normalize_product_reference(text)
    except InvalidProductReference:
        return
    assert is_valid_asin(asin)
    assert asin.lower() in text.lower()
    assert browser_host(text) in AMAZON_HOSTS, f"accepted {text!r}, which a browser reads as another host"
    assert normalize_product_reference(canonical_url(asin)) == asin


@deterministic(300)
@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=80).map(
        lambda tail: f"https://www.amazon.com/dp/{ASIN}{tail}"
    )
)
def test_anything_after_the_asin_either_keeps_it_or_is_refused(text):
    try:
        asin = normalize_product_reference(text)
    except InvalidProductReference:
        return
    assert asin == ASIN
    assert browser_host(text) in AMAZON_HOSTS


@deterministic(300)
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40))
def test_anything_before_the_host_is_refused_unless_it_is_a_plain_scheme(prefix):
    text = f"{prefix}www.amazon.com/dp/{ASIN}"
    try:
        asin = normalize_product_reference(text)
    except InvalidProductReference:
        return
    assert asin == ASIN
    assert browser_host(text) in AMAZON_HOSTS, f"accepted {text!r}"


def test_percent_encoding_the_path_never_smuggles_another_asin():
    for text in (f"https://www.amazon.com/dp/{quote(ASIN, safe='')}", f"https://www.amazon.com/dp/{ASIN.lower()}"):
        assert normalize_product_reference(text) == ASIN


@deterministic(300)
@given(
    host=st.sampled_from(sorted(AMAZON_HOSTS)),
    target=st.one_of(
        st.text(alphabet=st.characters(codec="utf-8"), max_size=60),
        st.sampled_from(
            ["//evil.example/dp/", "https://evil.example/dp/", "/dp/../", "\\evil.example/dp/", "/Thing/dp/"]
        ).map(lambda prefix: prefix + ASIN),
    ),
)
def test_a_redirector_only_ever_yields_a_product_path_on_its_own_site(host, target):
    text = f"https://{host}/gp/slredirect/picassoRedirect.html/ref=x?url={quote(target, safe='')}"
    try:
        reference = parse_product_reference(text)
    except InvalidProductReference:
        return
    assert target.startswith("/") and not target.startswith("//")
    assert reference.asin.lower() in target.lower()
    assert reference.store is not None and host.endswith(reference.store)
