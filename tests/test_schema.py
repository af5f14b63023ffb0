"""OpenAPI: /api/schema/ renders and validates; /api/docs/ works offline (no CDN)."""

from __future__ import annotations

import json
import os
import re

import pytest
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

AUTH_PATHS = {
    "/api/auth/register/": {"post"},
    "/api/auth/token/": {"post"},
    "/api/auth/token/refresh/": {"post"},
    "/api/auth/logout/": {"post"},
    "/api/auth/me/": {"get", "patch"},
    "/api/auth/email/confirm/": {"get", "post"},
    "/api/auth/email/resend/": {"post"},
    "/api/auth/password/change/": {"post"},
    "/api/auth/password/reset/": {"post"},
    "/api/auth/password/reset/confirm/": {"post"},
}


@pytest.fixture
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def test_the_schema_endpoint_serves_openapi_3(api_client, db):
    response = api_client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    document = json.loads(response.content)
    assert document["openapi"].startswith("3.")
    assert set(AUTH_PATHS) <= set(document["paths"])


def test_the_schema_validates(schema):
    validate_schema(schema)


def test_the_auth_endpoints_are_described_without_generator_warnings():
    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        schema = SchemaGenerator().get_schema(request=None, public=True)
    # Other apps' warnings are their tests' business; these are the accounts views' own.
    accounts_dir = f"{os.sep}accounts{os.sep}"
    ours = [msg for msg in [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache] if accounts_dir in msg]

    assert ours == []
    for path, methods in AUTH_PATHS.items():
        assert set(schema["paths"][path]) == methods, path


def test_the_token_endpoints_document_their_bodies(schema):
    def body(path: str, status: str = "200") -> dict:
        ref = schema["paths"][path]["post"]["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        return schema["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]

    assert set(body("/api/auth/token/")) == {"access", "refresh"}
    assert set(body("/api/auth/token/refresh/")) == {"access", "refresh"}
    assert set(body("/api/auth/register/", "201")) == {"id", "email"}


def test_the_docs_render_without_any_cdn(api_client, db):
    response = api_client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html.lower()
    external = re.findall(r"""(?:src|href)\s*=\s*["'](?:https?:)?//[^"']+""", html)
    assert external == []
    for cdn in ("cdn.jsdelivr.net", "unpkg.com", "cdnjs.cloudflare.com"):
        assert cdn not in html
