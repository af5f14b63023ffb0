"""Hostile request bodies get a clear 4xx in the one JSON error shape, and nothing is stored.

Huge and deeply nested bodies, NUL bytes and lone surrogates (PostgreSQL refuses both in text:
they must be a 400 before any query), emoji and right-to-left text, absurd prices and intervals,
other content types, malformed JSON and wrong JSON types. No error shows a traceback or a setting.
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings as django_settings
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from accounts.models import User
from tests.conftest import auth_client
from tests.tracking_factories import make_product, make_tracker
from tracking.models import PricePoint, Product, ScrapeRun, Tracker

ASIN = "B0823MDHDJ"
PASSWORD = "correct-horse-battery-9"
FIVE_MB = 5 * 1024 * 1024


@pytest.fixture(autouse=True)
def _isolated(provider) -> None:
    """The scripted provider, so nothing is fetched."""


def counts() -> dict[str, int]:
    return {
        "users": User.objects.count(),
        "trackers": Tracker.objects.count(),
        "products": Product.objects.count(),
        "runs": ScrapeRun.objects.count(),
        "points": PricePoint.objects.count(),
    }


def assert_clean_error(response, *statuses: int) -> dict:
    """A JSON ``{"message", "code", "errors"?}`` with one of ``statuses``, and nothing internal."""
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict)
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["code"], str) and body["code"]
    assert set(body) <= {"message", "code", "errors", "retry_after_seconds", "tracker_id"}
    text = response.content.decode()
    for secret in (
        "Traceback",
        'File "',
        django_settings.SECRET_KEY,
        django_settings.SIMPLE_JWT["SIGNING_KEY"],
        str(django_settings.BASE_DIR),
        str(django_settings.DATABASES["default"]["NAME"]),
    ):
        assert secret not in text
    return body


@pytest.fixture
def endpoints(alice, store):
    """``(client, method, url, field names)`` of the endpoints that take a JSON body."""
    tracker = make_tracker(alice, make_product(store, "B000000001"))
    signed_in = auth_client(alice)
    anonymous = APIClient()
    return {
        "create tracker": (signed_in, "post", "/api/trackers/", ["url", "asin", "target_price", "interval_minutes"]),
        "change tracker": (signed_in, "patch", f"/api/trackers/{tracker.pk}/", ["target_price", "interval_minutes"]),
        "register": (anonymous, "post", "/api/auth/register/", ["email", "password"]),
        "sign in": (anonymous, "post", "/api/auth/token/", ["email", "password"]),
        "profile": (signed_in, "patch", "/api/auth/me/", ["notification_email"]),
        "reset": (anonymous, "post", "/api/auth/password/reset/", ["email"]),
        "reset confirm": (anonymous, "post", "/api/auth/password/reset/confirm/", ["uid", "token", "new_password"]),
        "change password": (signed_in, "post", "/api/auth/password/change/", ["old_password", "new_password"]),
        "refresh": (anonymous, "post", "/api/auth/token/refresh/", ["refresh"]),
        "logout": (signed_in, "post", "/api/auth/logout/", ["refresh"]),
        "confirm email": (anonymous, "post", "/api/auth/email/confirm/", ["token"]),
    }


ENDPOINTS = [
    "create tracker",
    "change tracker",
    "register",
    "sign in",
    "profile",
    "reset",
    "reset confirm",
    "change password",
    "refresh",
    "logout",
    "confirm email",
]


def send(endpoint, raw: bytes | str, content_type: str = "application/json"):
    client, method, url, _ = endpoint
    return client.generic(method.upper(), url, raw, content_type=content_type)


# --- size and depth -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENDPOINTS)
@pytest.mark.parametrize("size", ["just over the limit", "5 MB"])
def test_a_body_over_the_upload_limit_is_a_413_and_stores_nothing(endpoints, name, size):
    endpoint = endpoints[name]
    length = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024 if size == "just over the limit" else FIVE_MB
    body = json.dumps({endpoint[3][0]: "x" * length})
    before = counts()

    response = send(endpoint, body)

    body = assert_clean_error(response, 413)
    assert body["code"] == "too_large"
    assert counts() == before


def test_a_body_just_under_the_limit_is_read_and_validated(endpoints):
    body = json.dumps({"url": "x" * (django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE - 1024), "target_price": "1.00"})

    response = send(endpoints["create tracker"], body)

    assert "url" in assert_clean_error(response, 400)["errors"]


@pytest.mark.parametrize(
    "document",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 30_000 + "1" + "}" * 30_000,
        '{"url": ' + "[" * 20_000 + "]" * 20_000 + ', "target_price": "1.00"}',
    ],
    ids=["arrays", "objects", "inside a field"],
)
@pytest.mark.parametrize("name", ["create tracker", "register", "sign in"])
def test_deeply_nested_json_is_a_400_not_a_crash(endpoints, name, document):
    before = counts()

    response = send(endpoints[name], document)

    assert assert_clean_error(response, 400)["code"] == "parse_error"
    assert counts() == before


def test_moderately_nested_json_is_a_validation_error(endpoints):
    response = send(endpoints["create tracker"], json.dumps({"url": [[[["x"]]]] * 50, "target_price": "1.00"}))

    assert "url" in assert_clean_error(response, 400)["errors"]


# --- unicode ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENDPOINTS)
@pytest.mark.parametrize(
    "bad", ["\u0000", "\ud800", "\udfff"], ids=["NUL", "lone high surrogate", "lone low surrogate"]
)
def test_nul_bytes_and_lone_surrogates_in_any_string_field_are_a_clean_400(endpoints, name, bad):
    """PostgreSQL refuses NUL in text and no database stores a lone surrogate: refuse them first."""
    endpoint = endpoints[name]
    before = counts()
    for field in endpoint[3]:
        value = f"B0823{bad}MDHD" if field == "asin" else f"alice{bad}@example.com"
        body = {
            "target_price": "1.00",
            **{f: "x" for f in endpoint[3] if f not in {"target_price", "interval_minutes"}},
        }
        body[field] = value
        response = send(endpoint, json.dumps(body))

        errors = assert_clean_error(response, 400, 401).get("errors", {})
        assert response.status_code == 401 or errors, field
    assert counts() == before


@pytest.mark.parametrize(
    "query",
    [
        ("/api/scrape-runs/", {"asin": "B0\u0000"}),
        ("/api/scrape-runs/", {"status": "\u0000"}),
        ("/api/trackers/", {"enabled": "\u0000"}),
        ("/api/notifications/", {"status": "FAILED\u0000"}),
        ("/api/trackers/", {"page": "\u0000"}),
        ("/api/trackers/", {"page_size": "\u0000"}),
    ],
)
def test_nul_bytes_in_query_parameters_are_a_clean_4xx(alice, query):
    url, params = query

    response = auth_client(alice).get(url, params)

    assert_clean_error(response, 400, 404)


def test_nul_bytes_in_history_windows_and_confirmation_links_are_a_clean_400(alice, store):
    tracker = make_tracker(alice, make_product(store, "B000000001"))

    assert_clean_error(auth_client(alice).get(f"/api/trackers/{tracker.pk}/history/", {"from": "2026\u0000"}), 400)
    assert_clean_error(auth_client(alice).get(f"/api/trackers/{tracker.pk}/stats/", {"to": "\u0000"}), 400)
    assert_clean_error(APIClient().get("/api/auth/email/confirm/", {"token": "login.\u0000.x"}), 400)


@pytest.mark.parametrize(
    "text",
    [
        "https://www.amazon.com/dp/B0823MDHDJ\U0001f600",
        "\u202ehttps://www.amazon.com/dp/B0823MDHDJ",  # right-to-left override
        "https://www.amazon.com/\u05e2\u05d1\u05e8\u05d9\u05ea/dp/B0823MDHDJ\u200f",
        "B0823MDHDJ\ufeff",
        "\U0001f4a9" * 500,
    ],
)
def test_emoji_and_right_to_left_text_in_a_product_reference_is_refused_with_a_message(alice, text):
    before = counts()

    response = auth_client(alice).post("/api/trackers/", {"url": text, "target_price": "1.00"}, format="json")

    assert assert_clean_error(response, 400)["errors"]["url"]
    assert counts() == before


@pytest.mark.parametrize(
    "password",
    [
        "\U0001f511\U0001f40d correct horse \U0001f511",
        "\u05e1\u05d9\u05e1\u05de\u05d4-\u05d0\u05e8\u05d5\u05db\u05d4-42",
        "p\u00e4ssw\u00f6rd-\u00fcber-l\u00e4nge",
    ],
)
def test_unicode_passwords_work(api_client, password):
    assert (
        api_client.post(
            "/api/auth/register/", {"email": "dave@example.com", "password": password}, format="json"
        ).status_code
        == 201
    )

    response = api_client.post("/api/auth/token/", {"email": "dave@example.com", "password": password}, format="json")

    assert response.status_code == 200


def test_a_unicode_title_from_the_store_is_returned_intact(alice, provider, django_capture_on_commit_callbacks):
    from scraping.results import Availability, ScrapeResult, ScrapeStatus

    title = "\u05de\u05d5\u05e6\u05e8 \U0001f600 \u202eevil\u202c caf\u00e9"
    provider.queue(
        ASIN,
        ScrapeResult(
            status=ScrapeStatus.SUCCESS,
            asin=ASIN,
            title=title,
            price=__import__("decimal").Decimal("12.00"),
            currency="USD",
            availability=Availability.IN_STOCK,
            rule="scripted",
        ),
    )
    with django_capture_on_commit_callbacks(execute=True):
        created = auth_client(alice).post("/api/trackers/", {"asin": ASIN, "target_price": "1.00"}, format="json")

    tracker = auth_client(alice).get(f"/api/trackers/{created.json()['id']}/").json()
    assert tracker["product"]["title"] == title


# --- prices and intervals -------------------------------------------------------------------


@pytest.mark.parametrize(
    "price",
    [
        "0",
        "0.00",
        "-0.01",
        "-5",
        -5,
        0,
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "-Infinity",
        "inf",
        "1e999",
        "1e-999",
        "1E2",
        " 10.00 ",
        "10.001",
        "99999999999.99",
        "1" * 400,
        "1,000.00",
        "$10",
        "0x10",
        "\u0661\u0660",  # Arabic-Indic "10"
        "",
        True,
        None,
        [],
        {},
        ["10.00"],
        {"amount": "10.00"},
        1e308,
    ],
    ids=repr,
)
def test_absurd_target_prices_are_refused_and_store_nothing(alice, price):
    before = counts()

    response = auth_client(alice).post("/api/trackers/", {"asin": ASIN, "target_price": price}, format="json")

    assert "target_price" in assert_clean_error(response, 400)["errors"]
    assert counts() == before


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_json_number_literals_are_refused(alice, literal):
    before = counts()

    response = auth_client(alice).post(
        "/api/trackers/", f'{{"asin": "{ASIN}", "target_price": {literal}}}', content_type="application/json"
    )

    assert_clean_error(response, 400)
    assert counts() == before


@pytest.mark.parametrize("price", ["19.99", 19.99, 20, "0.01", "9999999999.99"], ids=repr)
def test_sane_target_prices_are_taken_as_exact_decimals(alice, price):
    response = auth_client(alice).post("/api/trackers/", {"asin": ASIN, "target_price": price}, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["target_price"] == f"{float(price):.2f}"


@pytest.mark.parametrize(
    "interval",
    [0, -1, 29, 10**9, 2**63, 2**64, 10**100, 1.5, 60.0, "60", "sixty", True, None, [60], {"minutes": 60}],
    ids=repr,
)
def test_intervals_under_the_minimum_absurd_or_of_the_wrong_type_are_refused(alice, store, interval):
    store.min_interval_minutes = 30
    store.save()
    before = counts()

    response = auth_client(alice).post(
        "/api/trackers/", {"asin": ASIN, "target_price": "10.00", "interval_minutes": interval}, format="json"
    )

    assert "interval_minutes" in assert_clean_error(response, 400)["errors"]
    assert counts() == before


def test_a_refused_change_leaves_the_tracker_as_it_was(alice, store):
    tracker = make_tracker(alice, make_product(store, "B000000001"), target="50.00")

    for body in ({"target_price": "NaN"}, {"interval_minutes": 0}, {"enabled": "yes"}, {"target_price": "-1"}):
        assert_clean_error(auth_client(alice).patch(f"/api/trackers/{tracker.pk}/", body, format="json"), 400)

    tracker.refresh_from_db()
    assert (str(tracker.target_price), tracker.interval_minutes, tracker.enabled) == ("50.00", 60, True)


@pytest.mark.parametrize("refusal", ["interval", "limit"])
def test_a_refused_tracker_leaves_no_product_behind(alice, store, refusal):
    """A refusal after the reference was understood must not keep the Product row it created."""
    store.min_interval_minutes = 30
    store.save()
    alice.max_trackers = 0 if refusal == "limit" else 10
    alice.save()
    before = counts()
    body = {"asin": ASIN, "target_price": "10.00", "interval_minutes": 5 if refusal == "interval" else 60}

    response = auth_client(alice).post("/api/trackers/", body, format="json")

    assert_clean_error(response, 400, 403)
    assert counts() == before


# --- content types, malformed JSON, wrong types ---------------------------------------------------


@pytest.mark.parametrize("name", ["create tracker", "register", "sign in", "profile"])
@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        ("application/x-www-form-urlencoded", "asin=B0823MDHDJ&target_price=1.00&email=a%40b.c&password=x"),
        (
            "multipart/form-data; boundary=xyz",
            '--xyz\r\nContent-Disposition: form-data; name="asin"\r\n\r\nB0\r\n--xyz--\r\n',
        ),
        ("text/plain", '{"asin": "B0823MDHDJ", "target_price": "1.00"}'),
        ("application/xml", "<tracker><asin>B0823MDHDJ</asin></tracker>"),
        ("text/html", "<script>alert(1)</script>"),
        ("", '{"asin": "B0823MDHDJ"}'),
    ],
    ids=["form", "multipart", "text", "xml", "html", "none"],
)
def test_bodies_that_are_not_json_are_a_415(endpoints, name, content_type, raw):
    before = counts()

    response = send(endpoints[name], raw, content_type=content_type)

    assert assert_clean_error(response, 415)["code"] == "unsupported_media_type"
    assert counts() == before


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'{"asin": "B0823MDHDJ", "target_price": "1.00",}',
        b"{'asin': 'B0823MDHDJ'}",
        b'{"asin": "B0823MDHDJ"} trailing',
        b'\xef\xbb\xbf{"asin": "B0823MDHDJ", "target_price": "1.00"}',
        b'{"asin": "\xff\xfe"}',
        b"\x00\x00\x00",
        b'{"asin": "B0823MDHDJ", "asin": ',
        b"\\u0000",
    ],
    ids=[
        "unclosed",
        "trailing comma",
        "single quotes",
        "trailing text",
        "BOM",
        "bad utf-8",
        "NULs",
        "cut off",
        "escape",
    ],
)
@pytest.mark.parametrize("name", ["create tracker", "register", "sign in", "refresh"])
def test_malformed_json_is_a_400_parse_error(endpoints, name, raw):
    before = counts()

    response = send(endpoints[name], raw)

    assert assert_clean_error(response, 400)["code"] == "parse_error"
    assert counts() == before


def test_json_declared_in_another_charset_is_refused(endpoints):
    response = send(endpoints["create tracker"], b'{"asin": "B0823MDHDJ"}', "application/json; charset=utf-16")

    assert_clean_error(response, 400)


@pytest.mark.parametrize("document", ["[]", '["B0823MDHDJ"]', '"B0823MDHDJ"', "42", "null", "true"])
@pytest.mark.parametrize("name", ENDPOINTS)
def test_a_body_that_is_not_an_object_is_a_400(endpoints, name, document):
    before = counts()

    response = send(endpoints[name], document)

    assert_clean_error(response, 400)
    assert counts() == before


@pytest.mark.parametrize("wrong", [["B0823MDHDJ"], {"asin": "B0823MDHDJ"}, True, 823, None], ids=repr)
@pytest.mark.parametrize("name", ENDPOINTS)
def test_a_non_string_where_a_string_belongs_is_a_400(endpoints, name, wrong):
    endpoint = endpoints[name]
    before = counts()
    for field in endpoint[3]:
        if field in {"target_price", "interval_minutes"}:
            continue
        body = {f: "x" for f in endpoint[3] if f not in {"target_price", "interval_minutes"}}
        body.update({"target_price": "1.00", field: wrong})

        response = send(endpoint, json.dumps(body))

        assert_clean_error(response, 400, 401)
    assert counts() == before


@pytest.mark.parametrize("enabled", ["true", "false", "yes", 1, 0, None, "on", []], ids=repr)
def test_enabled_must_be_a_json_boolean(alice, enabled):
    response = auth_client(alice).post(
        "/api/trackers/", {"asin": ASIN, "target_price": "1.00", "enabled": enabled}, format="json"
    )

    assert "enabled" in assert_clean_error(response, 400)["errors"]


@pytest.mark.parametrize(("value", "listed"), [("true", 1), ("false", 0), ("1", 1), ("", 1)])
def test_the_enabled_filter_takes_true_or_false(alice, store, value, listed):
    make_tracker(alice, make_product(store, "B000000001"))

    response = auth_client(alice).get("/api/trackers/", {"enabled": value})

    assert response.json()["count"] == listed


@pytest.mark.parametrize("value", ["flase", "yes", "null", "2"])
def test_a_misspelt_enabled_filter_is_a_400_not_everything(alice, value):
    assert "enabled" in assert_clean_error(auth_client(alice).get("/api/trackers/", {"enabled": value}), 400)["errors"]


@pytest.mark.parametrize("size", ["0", "-1", "abc", "1.5", "null"])
def test_a_bad_page_size_is_a_400(alice, size):
    assert (
        "page_size" in assert_clean_error(auth_client(alice).get("/api/trackers/", {"page_size": size}), 400)["errors"]
    )


def test_a_huge_page_size_is_capped(alice):
    assert auth_client(alice).get("/api/trackers/", {"page_size": "10000000000000000000000"}).status_code == 200


# --- errors never show internals --------------------------------------------------------------


def test_an_unexpected_error_shows_no_traceback_even_with_debug_on(alice, settings, monkeypatch, caplog):
    settings.DEBUG = True

    def explode(**kwargs):
        raise RuntimeError(f"boom {django_settings.SECRET_KEY} {django_settings.DATABASES['default']['NAME']}")

    monkeypatch.setattr("tracking.services.tracker_create", explode)

    response = auth_client(alice).post("/api/trackers/", {"asin": ASIN, "target_price": "1.00"}, format="json")

    assert_clean_error(response, 500)


def test_a_failed_csv_download_answers_a_json_error(alice, bob, store):
    bobs = make_tracker(bob, make_product(store, "B000000002"))
    mine = make_tracker(alice, make_product(store, "B000000001"))

    not_found = auth_client(alice).get(f"/api/trackers/{bobs.pk}/history/", {"format": "csv"})
    bad_window = auth_client(alice).get(f"/api/trackers/{mine.pk}/history/", {"format": "csv", "from": "soon"})
    anonymous = APIClient().get(f"/api/trackers/{mine.pk}/history/", {"format": "csv"})

    assert assert_clean_error(not_found, 404)["code"] == "not_found"
    assert "from" in assert_clean_error(bad_window, 400)["errors"]
    assert_clean_error(anonymous, 401)


# --- history and stats windows ----------------------------------------------------------------

WINDOW_VIEWS = [("history/", {}), ("stats/", {}), ("history/", {"format": "csv"})]


@pytest.mark.parametrize(
    "bound",
    [
        "2026-13-45",  # no such month
        "2026-02-30",  # no such day
        "2026-01-01T25:00:00",  # no such hour
        "2026-01-01T00:00:00+99:00",  # an offset of four days
        "0001-01-01T00:00:00+23:59",  # before the first representable UTC instant
        "9999-12-31T23:59:59-23:59",  # after the last one
    ],
)
@pytest.mark.parametrize(("path", "extra"), WINDOW_VIEWS)
@pytest.mark.parametrize("name", ["from", "to"])
def test_an_impossible_date_in_a_window_is_a_400_naming_the_parameter(alice, store, bound, path, extra, name):
    tracker = make_tracker(alice, make_product(store, "B000000001"))

    response = auth_client(alice).get(f"/api/trackers/{tracker.pk}/{path}", {name: bound, **extra})

    assert name in assert_clean_error(response, 400)["errors"]


def window_bounds() -> st.SearchStrategy[str]:
    """ISO-8601-shaped text, each part in or out of its range (month 13, hour 25, offset +99:00),
    years at both ends of what datetime can hold, plus arbitrary text."""

    def part(largest_valid: int) -> st.SearchStrategy[str]:
        return (st.integers(min_value=0, max_value=largest_valid) | st.integers(min_value=0, max_value=99)).map(
            lambda n: f"{n:02d}"
        )

    year = (st.sampled_from([1, 9999]) | st.integers(min_value=0, max_value=9999)).map(lambda n: f"{n:04d}")
    date = st.builds(lambda y, m, d: f"{y}-{m}-{d}", year, part(12), part(31))
    clock = st.builds(lambda h, m, s: f"T{h}:{m}:{s}", part(23), part(59), part(59)) | st.builds(
        lambda h, m, s, us: f" {h}:{m}:{s}.{us:06d}", part(23), part(59), part(59), st.integers(0, 999_999)
    )
    offset = st.sampled_from(["", "Z"]) | st.builds(
        lambda sign, h, m: f"{sign}{h}:{m}", st.sampled_from("+-"), part(23), part(59)
    )
    return date | st.builds(lambda d, c, o: d + c + o, date, clock, offset) | st.text(max_size=40)


@given(bound=window_bounds(), view=st.sampled_from(WINDOW_VIEWS), name=st.sampled_from(["from", "to"]))
@hypothesis_settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    # One tracker serves every example: the property is about the query string alone.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@example(bound="2026-02-30", view=WINDOW_VIEWS[0], name="from")
@example(bound="0001-01-01T00:00:00+23:59", view=WINDOW_VIEWS[1], name="to")
@example(bound="2026-01-01T00:00:00+99:00", view=WINDOW_VIEWS[2], name="from")
def test_any_window_bound_is_answered_or_refused_with_a_400_never_a_500(alice, store, bound, view, name):
    tracker = Tracker.objects.filter(user=alice).first() or make_tracker(alice, make_product(store, "B000000001"))
    path, extra = view

    response = auth_client(alice).get(f"/api/trackers/{tracker.pk}/{path}", {name: bound, **extra})

    if response.status_code == 200:
        # The CSV is streamed: a bound the database cannot take would only fail while streaming.
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert body
    else:
        assert name in assert_clean_error(response, 400)["errors"]
