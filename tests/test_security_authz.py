"""Authorization matrix: every endpoint in the URLconf x (anonymous, owner, other user, staff).

Alice owns the objects in the URLs. Bob is another user; Charlie is staff and superuser, who gets
no special powers through the API (the admin is a separate, session-based site). Another user's
tracker, history, stats, runs and notifications are a 404, never a 403, and no response shows
anything of another user's. The endpoint list comes from the URL resolver, so a new endpoint
without a matrix entry fails ``test_every_endpoint_in_the_urlconf_has_a_matrix_entry``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
import time_machine
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from notifications.models import Notification
from tests.conftest import auth_client
from tests.tracking_factories import make_product, make_tracker, record, success
from tracking.models import ScrapeRun, Tracker

PASSWORD = "correct-horse-battery-9"
NEW_PASSWORD = "tiger-lily-on-the-moon-42"
ROLES = ("anonymous", "owner", "other", "staff")

# Endpoints anyone may call without a token. Every other endpoint must refuse anonymous clients.
PUBLIC = {
    "accounts:register",
    "accounts:token",
    "accounts:token-refresh",
    "accounts:email-confirm",
    "accounts:password-reset",
    "accounts:password-reset-confirm",
    "health",
    "home",
    "schema",
    "docs",
    "metrics",  # guarded by its own token / network allow-list, not by user accounts
}


# --- the world: Alice's and Bob's data -------------------------------------------------------


@dataclass
class World:
    """Alice and Bob each track a product that has a price history, a scrape run and an alert."""

    ids: dict[str, dict[str, int]]
    markers: dict[str, tuple[bytes, ...]]

    def leaks(self, owner: str, content: bytes) -> bool:
        """Does ``content`` show anything that only ``owner`` may see?"""
        return any(marker in content for marker in self.markers[owner])

    def leaks_bob(self, content: bytes) -> bool:
        return self.leaks("bob", content)


def build_world(*, alice, bob, store) -> World:
    ids: dict[str, dict[str, int]] = {}
    markers: dict[str, tuple[bytes, ...]] = {}
    for name, user, asin in (("alice", alice, "B0ALICE001"), ("bob", bob, "B0BOBBB001")):
        title = f"Kettle tracked by {name.title()} only"
        product = make_product(store, asin, title=title)
        tracker = make_tracker(user, product, target="100.00")
        # A day ago, so a manual scrape now is not "too soon".
        with time_machine.travel(timezone.now() - timedelta(days=1), tick=False):
            run = record(product, success("90.00", title=title))  # below target: an alert
        assert run is not None
        ids[name] = {
            "trackers": tracker.pk,
            "scrape-runs": run.pk,
            "notifications": Notification.objects.get(user=user, product=product).pk,
            "rules": tracker.rules.get().pk,
        }
        markers[name] = (asin.encode(), title.encode(), user.email.encode())
    return World(ids=ids, markers=markers)


@pytest.fixture
def charlie(make_user):
    """Staff and superuser: may use the admin, has no special powers in the API."""
    return make_user("charlie@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def world(alice, bob, store, clear_cache) -> World:
    return build_world(alice=alice, bob=bob, store=store)


# --- the matrix ----------------------------------------------------------------------------

Body = dict | Callable[[World, object], dict] | None


@dataclass(frozen=True)
class Expect:
    """Status per role; ``shows_own``: the response must show the caller's own data."""

    anonymous: int | tuple[int, ...]
    owner: int | tuple[int, ...]
    other: int | tuple[int, ...]
    staff: int | tuple[int, ...]
    body: Body = None
    shows_own: bool = False
    query: dict = field(default_factory=dict)

    def status(self, role: str) -> tuple[int, ...]:
        value = getattr(self, role)
        return value if isinstance(value, tuple) else (value,)


def _private(owner: int, other: int, **kwargs) -> Expect:
    """An endpoint for signed-in users: anonymous 401; staff treated like any other user."""
    return Expect(anonymous=401, owner=owner, other=other, staff=other, **kwargs)


def _public(status: int | tuple[int, ...], **kwargs) -> Expect:
    """An endpoint that answers everyone the same, token or not."""
    return Expect(anonymous=status, owner=status, other=status, staff=status, **kwargs)


def _alices_refresh(world: World, alice) -> dict:
    return {"refresh": str(RefreshToken.for_user(alice))}


MATRIX: dict[tuple[str, str], Expect] = {
    # Alice's objects: a 404 for everybody else.
    ("tracker-detail", "GET"): _private(200, 404, shows_own=True),
    ("tracker-detail", "PATCH"): _private(200, 404, body={"target_price": "5.00"}),
    ("tracker-detail", "DELETE"): _private(204, 404),
    ("tracker-history", "GET"): _private(200, 404, shows_own=False),
    ("tracker-scrape", "POST"): _private(202, 404),
    ("tracker-stats", "GET"): _private(200, 404),
    ("tracker-rule-list", "GET"): _private(200, 404),
    ("tracker-rule-list", "POST"): _private(201, 404, body={"kind": "drop_percent", "percent": "10"}),
    ("tracker-rule-detail", "GET"): _private(200, 404),
    ("tracker-rule-detail", "PATCH"): _private(200, 404, body={"cooldown_minutes": 30}),
    ("tracker-rule-detail", "DELETE"): _private(204, 404),
    ("scrape-run-detail", "GET"): _private(200, 404, shows_own=True),
    ("notification-detail", "GET"): _private(200, 404, shows_own=True),
    # Lists and the caller's own account: everyone sees only their own.
    ("tracker-list", "GET"): _private(200, 200, shows_own=True),
    ("tracker-list", "POST"): _private(201, 201, body={"asin": "B0CREATE01", "target_price": "10.00"}),
    ("scrape-run-list", "GET"): _private(200, 200, shows_own=True),
    ("notification-list", "GET"): _private(200, 200, shows_own=True),
    ("notification-test", "POST"): _private(200, 200, shows_own=True),
    ("accounts:me", "GET"): _private(200, 200, shows_own=True),
    ("accounts:me", "PATCH"): _private(200, 200, body={"notification_email": "alerts@example.org"}, shows_own=True),
    ("accounts:email-resend", "POST"): _private(200, 200),
    ("accounts:password-change", "POST"): _private(
        200, 200, body={"old_password": PASSWORD, "new_password": NEW_PASSWORD}
    ),
    # Alice's refresh token: only Alice may revoke it.
    ("accounts:logout", "POST"): _private(204, 400, body=_alices_refresh),
    # Public: the same answer with or without a token.
    ("accounts:register", "POST"): _public(201, body={"email": "dave@example.com", "password": NEW_PASSWORD}),
    ("accounts:token", "POST"): _public(200, body={"email": "alice@example.com", "password": PASSWORD}),
    ("accounts:token-refresh", "POST"): _public(200, body=_alices_refresh),
    ("accounts:email-confirm", "GET"): _public(400, query={"token": "login.MQ.bad-token"}),
    ("accounts:email-confirm", "POST"): _public(400, body={"token": "login.MQ.bad-token"}),
    ("accounts:password-reset", "POST"): _public(202, body={"email": "alice@example.com"}),
    ("accounts:password-reset-confirm", "POST"): _public(
        400, body={"uid": "MQ", "token": "bad-token", "new_password": NEW_PASSWORD}
    ),
    ("health", "GET"): _public((200, 503)),
    ("schema", "GET"): _public(200),
    ("docs", "GET"): _public(200),
    ("home", "GET"): _public(302),
    # From loopback without a token; a user's JWT is no metrics token (a staff member's neither).
    ("metrics", "GET"): Expect(anonymous=200, owner=403, other=403, staff=403),
}

# URLs naming one of Alice's objects, and which kind.
OBJECT_IN_URL = {
    "tracker-detail": "trackers",
    "tracker-history": "trackers",
    "tracker-scrape": "trackers",
    "tracker-stats": "trackers",
    "scrape-run-detail": "scrape-runs",
    "notification-detail": "notifications",
}


# Django answers HEAD like GET, and OPTIONS describes the endpoint; neither is its own endpoint.
IMPLICIT_METHODS = {"head", "options"}


def _view_methods(pattern: URLPattern) -> list[str]:
    callback = pattern.callback
    actions = getattr(callback, "actions", None)
    if actions:  # a DRF viewset route
        return sorted(method.upper() for method in actions if method not in IMPLICIT_METHODS)
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is None:
        # A plain function view: the ones we have answer GET only (require_GET).
        return ["GET"]
    return sorted(
        method.upper()
        for method in view_class.http_method_names
        if method not in {"options", "head"} and hasattr(view_class, method)
    )


def _walk(patterns, prefix: str = "", namespace: str = "") -> Iterator[tuple[str, str]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            space = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), space)
        elif isinstance(pattern, URLPattern):
            route = prefix + str(pattern.pattern)
            if route.startswith("admin/"):  # the admin site: see test_the_admin_is_not_open_to_api_tokens
                continue
            assert pattern.name, f"URL {route!r} has no name, so it cannot have a matrix entry"
            for method in _view_methods(pattern):
                yield f"{namespace}{pattern.name}", method


def urlconf_endpoints() -> set[tuple[str, str]]:
    return set(_walk(get_resolver().url_patterns))


def test_every_endpoint_in_the_urlconf_has_a_matrix_entry():
    endpoints = urlconf_endpoints()

    assert endpoints - set(MATRIX) == set(), "new endpoints: add them to MATRIX (and PUBLIC if anonymous)"
    assert set(MATRIX) - endpoints == set(), "MATRIX names endpoints that no longer exist"


def test_only_the_allow_listed_endpoints_are_open_to_anonymous_clients():
    for (name, method), expect in MATRIX.items():
        if name in PUBLIC:
            assert 401 not in expect.status("anonymous"), (name, method)
        else:
            assert expect.status("anonymous") == (401,), f"{method} {name} must refuse anonymous clients"


# URLs naming one of Alice's trackers and one of its rules.
RULE_IN_URL = {"tracker-rule-list", "tracker-rule-detail"}


def _url(name: str, world: World, query: dict) -> str:
    kwargs = {"pk": world.ids["alice"][OBJECT_IN_URL[name]]} if name in OBJECT_IN_URL else {}
    if name in RULE_IN_URL:
        kwargs = {"tracker_pk": world.ids["alice"]["trackers"]}
        if name == "tracker-rule-detail":
            kwargs["pk"] = world.ids["alice"]["rules"]
    url = reverse(name, kwargs=kwargs)
    return f"{url}?{urlencode(query)}" if query else url


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "method"), sorted(MATRIX), ids=[f"{m} {n}" for n, m in sorted(MATRIX)])
def test_each_role_gets_the_right_status_and_only_its_own_data(
    name, method, role, world, alice, bob, charlie, django_capture_on_commit_callbacks
):
    expect = MATRIX[(name, method)]
    user = {"anonymous": None, "owner": alice, "other": bob, "staff": charlie}[role]
    client = APIClient() if user is None else auth_client(user)
    body = expect.body(world, alice) if callable(expect.body) else expect.body
    alices_tracker = Tracker.objects.get(pk=world.ids["alice"]["trackers"])
    runs_before = ScrapeRun.objects.count()

    response = getattr(client, method.lower())(_url(name, world, expect.query), body, format="json")

    assert response.status_code in expect.status(role), response.content[:500]
    content = b"".join(response.streaming_content) if response.streaming else response.content
    if role != "owner":
        assert not world.leaks("alice", content), f"{role} saw Alice's data"
    if role != "other":
        assert not world.leaks("bob", content), f"{role} saw Bob's data"
    if expect.shows_own and role in {"owner", "other"} and response.status_code < 300:
        assert world.leaks("alice" if role == "owner" else "bob", content), "the caller's own data is missing"
    if role in {"other", "staff", "anonymous"}:
        # Nothing of Alice's changed: no edit, no deletion, no scrape queued in her name.
        alices_tracker.refresh_from_db()
        assert alices_tracker.target_price == Decimal("100.00")
        if name.startswith("tracker-") and name != "tracker-list":
            assert ScrapeRun.objects.count() == runs_before


def test_a_created_tracker_belongs_to_whoever_created_it(world, bob):
    response = auth_client(bob).post(
        "/api/trackers/", {"asin": "B0CREATE01", "target_price": "10.00", "user": 1}, format="json"
    )

    assert response.status_code == 201
    assert Tracker.objects.get(pk=response.json()["id"]).user == bob


def test_an_id_that_is_not_a_number_is_a_404_not_a_500(world, alice):
    client = auth_client(alice)
    for url in ("/api/trackers/abc/", "/api/trackers/1.5/stats/", "/api/notifications/-1/", "/api/scrape-runs/9e99/"):
        assert client.get(url).status_code == 404, url
    assert client.get("/api/trackers/99999999999999999999999/").status_code == 404


def test_the_admin_is_not_open_to_api_tokens(world, alice, charlie):
    """The admin uses sessions: a bearer token, even a staff member's, is not a login there."""
    for user in (None, alice, charlie):
        client = APIClient() if user is None else auth_client(user)
        response = client.get("/admin/tracking/tracker/")
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_a_non_staff_user_cannot_sign_in_to_the_admin(world, alice):
    client = APIClient()
    client.post("/admin/login/", {"username": "alice@example.com", "password": PASSWORD})

    response = client.get("/admin/tracking/tracker/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
