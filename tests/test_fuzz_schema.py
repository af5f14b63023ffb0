"""Schema fuzzing: every operation in /api/schema/, called in-process, answers as documented.

Schemathesis loads the schema from the WSGI app (no network, no server) and, per operation,
sends the schema's examples, boundary cases and up to ``MAX_EXAMPLES`` generated requests,
valid and invalid, signed in as Alice. Checks: no 5xx; the status code, content type and body
are the documented ones; a request the schema calls invalid is refused with a 4xx. Runs are
derandomised, so CI sees the same requests every time.

Alice and Bob each track a product with history, scrape runs and an alert. Path ids are
steered onto Alice's and Bob's rows for some examples, so detail endpoints answer 200 as well
as 404, and every response is checked for Bob's data.

Nothing reaches the network: the amazon.com provider is the scripted one (``provider``), the
fetch base URL points at a closed loopback port in case anything bypasses it, scrape tasks are
only enqueued on commit (never, inside the test transaction) and email goes to Django's locmem
outbox. No endpoint sleeps, so none is excluded.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from rest_framework.throttling import ScopedRateThrottle
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.test_security_authz import World, build_world

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
# The token is ours (below): generated Authorization headers would only test "no token", which
# tests/test_security_authz.py does for every endpoint.
schema.config.generation.update(with_security_parameters=False)


@pytest.fixture
def wsgi_requests(db):
    """Keep the test transaction's connection open across requests, as Django's test client does."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(alice, bob, store, provider, clear_cache, settings, monkeypatch) -> World:
    settings.AMAZON_BASE_URL = "http://127.0.0.1:9"  # the discard port: nothing listens there
    # Throttles would answer 429 to most examples of the auth endpoints; they have their own tests
    # (tests/test_security_tokens.py). DRF copies the rates into the class at import.
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", defaultdict(lambda: "100000/min"))
    return build_world(alice=alice, bob=bob, store=store)


def steer_path_id(case, world: World) -> str | None:
    """Point a generated integer id at Alice's row (1 in 3) or Bob's (1 in 3); return whose."""
    identifier = case.path_parameters.get("id")
    if not isinstance(identifier, int) or isinstance(identifier, bool):
        return None
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH):
        return None
    resource = case.path.split("/")[2]  # /api/<resource>/{id}/...
    owner = {0: "alice", 1: "bob"}.get(identifier % 3)
    if owner is None or resource not in world.ids["alice"]:
        return None
    case.path_parameters["id"] = world.ids[owner][resource]
    return owner


def only_an_empty_query_value_is_invalid(case) -> bool:
    """``?status=`` means "no filter" (django-filter's convention), not an invalid request."""
    if case.meta is None:
        return False
    negative = {location for location in ParameterLocation if case.meta.is_negative_at(location)}
    return negative == {ParameterLocation.QUERY} and "" in (case.query or {}).values()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, wsgi_requests, world, alice):
    owner = steer_path_id(case, world)
    response = case.call(headers={"Authorization": f"Bearer {RefreshToken.for_user(alice).access_token}"})

    checks = CHECKS
    if only_an_empty_query_value_is_invalid(case):
        checks = [check for check in CHECKS if check is not negative_data_rejection]
    case.validate_response(response, checks=checks)

    assert not world.leaks_bob(response.content), f"{case.method} {case.formatted_path} showed Bob's data"
    if owner == "bob":
        assert response.status_code in (400, 404), "Bob's rows are not found for Alice"
