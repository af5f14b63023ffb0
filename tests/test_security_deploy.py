"""Deployment security: no secrets in the repository, separate JWT key, security headers, check --deploy.

tests/test_settings.py runs ``check --deploy`` with a plain production environment; here the
same check runs behind a TLS-terminating proxy, and must complain when a protection is
switched off. Settings that are read at import (DEBUG, the security middleware's) are tested
in a subprocess with a production environment.
"""

from __future__ import annotations

import ast
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

ROOT = Path(__file__).resolve().parent.parent
THIS_FILE = Path(__file__).relative_to(ROOT).as_posix()

# --- no secrets in the repository ------------------------------------------------------------

# Anywhere, tests included: things that are never a placeholder. (Split so this file does not
# match itself.)
UNMISTAKABLE = {
    "private key block": re.compile("-----BEGIN [A-Z ]*" + "PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(r"(?i)aws_?secret_?access_?key\s*[:=]\s*[\"']?[A-Za-z0-9/+]{40}"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "Stripe live key": re.compile(r"\b[sr]k_live_[0-9A-Za-z]{16,}"),
}
# Outside tests/: a literal assigned to a name ending in SECRET, PASSWORD, TOKEN or *_KEY.
# Messages (with spaces), templates ({...}) and empty strings are not secrets.
ASSIGNMENT = re.compile(
    r"""(?ix) \b [\w]*? (secret|password|passwd|token|api_?key|access_?key|private_?key|signing_?key|secret_?key) \b
        ["']? \s* [:=] \s* [bru]? ["'] (?P<value> [^"'\s{}%]{8,} ) ["']"""
)
# Outside tests/: credentials in a URL, unless they are the documentation's placeholders.
URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://(?P<user>[^/@\s:\"'`]+):(?P<password>[^/@\s\"'`]+)@")
PLACEHOLDER_PASSWORDS = {"pass", "password", "PASSWORD", "secret", "..."}
# The tiny allow-list: (path, what) pairs reviewed by a person, with the reason.
ALLOWED = {
    # A fixed key for benchmark processes that never serve anything.
    ("bench/common.py", "BENCH_SECRET_KEY"),
}
SKIPPED_SUFFIXES = {".lock", ".png", ".jpg", ".gif", ".ico", ".woff", ".woff2", ".gz", ".zip", ".sqlite3"}


def repository_files() -> list[Path]:
    """Tracked files plus new files not ignored by .gitignore (what the next commit would hold)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [ROOT / name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def findings(path: Path, text: str) -> list[str]:
    relative = path.relative_to(ROOT).as_posix()
    in_tests = relative.startswith("tests/")
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{relative}:{number}"
        found += [f"{where}: {name}" for name, pattern in UNMISTAKABLE.items() if pattern.search(line)]
        if in_tests:
            continue
        for match in ASSIGNMENT.finditer(line):
            if not any(allowed_path == relative and name in line for allowed_path, name in ALLOWED):
                found.append(f"{where}: a {match.group(1)} literal ({match.group('value')[:4]}...)")
        for match in URL_CREDENTIALS.finditer(line):
            if match.group("password") not in PLACEHOLDER_PASSWORDS:
                found.append(f"{where}: credentials in a URL")
    return found


def test_no_secret_is_committed_to_the_repository():
    problems = []
    files = repository_files()
    assert len(files) > 50, "git ls-files found (almost) nothing: is this a git checkout?"
    for path in files:
        relative = path.relative_to(ROOT).as_posix()
        if relative == THIS_FILE or path.suffix in SKIPPED_SUFFIXES or path.stat().st_size > 5_000_000:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        problems += findings(path, text)

    assert problems == []


@pytest.mark.parametrize(
    ("line", "caught"),
    [
        ('SECRET_KEY = "django-insecure-abc123def456"', True),
        ('    "PASSWORD": "hunter2hunter2",', True),
        ("EMAIL_URL = 'smtp://mailer:Sup3rS3cret@mail.example.net:587'", True),
        ("key = '-----BEGIN RSA " + "PRIVATE KEY-----'", True),
        ("aws = 'AKIA" + "ABCDEFGHIJKLMNOP'", True),
        ('WRONG_OLD_PASSWORD = "Your old password was entered incorrectly."', False),
        ('SECRET_KEY = env_str("SECRET_KEY")', False),
        ("`postgres://user:pass@host:5432/db` switches to PostgreSQL", False),
        ('"TOKEN_REFRESH_SERIALIZER": "accounts.serializers.AtomicTokenRefreshSerializer",', False),
    ],
)
def test_the_secret_scanner_catches_secrets_and_spares_messages(tmp_path, line, caught):
    path = ROOT / "pricetracker" / "example_settings.py"  # outside tests/: every rule applies

    assert bool(findings(path, line)) is caught


def _literal_assignments(tree: ast.AST) -> list[str]:
    """Names (and dict keys) that look like secrets and are given a string literal."""
    secretish = re.compile(r"(?i)(secret|password|token|signing_key|_key$)")
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            literal = isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            bad += [t.id for t in node.targets if literal and isinstance(t, ast.Name) and secretish.search(t.id)]
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and isinstance(key.value, str)
                    and secretish.search(key.value)
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                    and value.value
                    and "." not in value.value  # dotted paths of classes are not secrets
                ):
                    bad.append(key.value)
    return bad


def test_settings_take_every_secret_from_the_environment():
    tree = ast.parse((ROOT / "pricetracker" / "settings.py").read_text())

    assert _literal_assignments(tree) == []


def test_the_development_secret_file_is_never_committed():
    result = subprocess.run(
        ["git", "check-ignore", "--quiet", "var/dev-secret-key"], cwd=ROOT, capture_output=True, check=False
    )
    assert result.returncode == 0, "var/ must be in .gitignore: it holds the development SECRET_KEY"


# --- the JWT signing key ---------------------------------------------------------------------


def test_the_jwt_signing_key_is_not_the_secret_key():
    key = django_settings.SIMPLE_JWT["SIGNING_KEY"]

    assert key != django_settings.SECRET_KEY
    assert django_settings.SECRET_KEY not in key
    assert len(key.encode()) >= 32


# --- production settings, in a subprocess -------------------------------------------------------

PROBE = """
import json, os
import django
django.setup()
from django.conf import settings
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
client = Client()
out = {"signing_key_is_secret_key": settings.SIMPLE_JWT["SIGNING_KEY"] == settings.SECRET_KEY,
       "signing_key": settings.SIMPLE_JWT["SIGNING_KEY"], "debug": settings.DEBUG}
for name, kwargs in {"https": {"secure": True}, "http": {"secure": False}}.items():
    for path in ("/api/auth/me/", "/api/schema/", "/api/no-such-thing/"):
        response = client.get(path, headers={"host": "api.example.com"}, **kwargs)
        out[f"{name} {path}"] = {"status": response.status_code, "headers": dict(response.headers),
                                 "body": response.content[:2000].decode(errors="replace")}
print(json.dumps(out))
"""


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL", "EMAIL_URL"}}
    base.pop("JWT_SIGNING_KEY", None)
    return {
        **base,
        "DJANGO_SETTINGS_MODULE": "pricetracker.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "api.example.com",
        "DATA_DIR": str(tmp_path),
        **extra,
    }


def run_probe(env: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def production(tmp_path_factory) -> dict:
    return run_probe(production_env(tmp_path_factory.mktemp("prod")))


def test_production_responses_carry_the_security_headers(production):
    for path in ("/api/auth/me/", "/api/schema/", "/api/no-such-thing/"):
        headers = production[f"https {path}"]["headers"]
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["X-Frame-Options"] == "DENY", path
        assert headers["Referrer-Policy"] == "same-origin", path
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin", path
        hsts = headers["Strict-Transport-Security"]
        assert "max-age=31536000" in hsts and "includeSubDomains" in hsts, path


def test_production_redirects_plain_http_to_https_and_sends_hsts_only_over_https(production):
    plain = production["http /api/auth/me/"]

    assert plain["status"] == 301
    assert plain["headers"]["Location"] == "https://api.example.com/api/auth/me/"
    assert "Strict-Transport-Security" not in plain["headers"]


def test_production_errors_are_json_without_debug_pages(production):
    assert production["debug"] is False
    missing = production["https /api/no-such-thing/"]
    assert missing["status"] == 404
    assert missing["headers"]["Content-Type"] == "application/json"
    assert "Traceback" not in missing["body"] and "DEBUG" not in missing["body"]
    assert production["https /api/auth/me/"]["status"] == 401


def test_the_production_jwt_key_is_not_the_secret_key(production):
    assert production["signing_key_is_secret_key"] is False


def test_the_jwt_key_follows_the_secret_key_unless_jwt_signing_key_is_given(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from pricetracker import settings as module

    monkeypatch.delenv("JWT_SIGNING_KEY", raising=False)
    monkeypatch.setattr(module, "SECRET_KEY", "a" * 64)
    first = module._jwt_signing_key()
    monkeypatch.setattr(module, "SECRET_KEY", "b" * 64)
    second = module._jwt_signing_key()
    chosen = secrets.token_urlsafe(48)
    monkeypatch.setenv("JWT_SIGNING_KEY", chosen)
    explicit = module._jwt_signing_key()
    monkeypatch.setenv("JWT_SIGNING_KEY", "too-short")

    assert first != second and "a" * 64 not in first
    assert explicit == chosen
    with pytest.raises(ImproperlyConfigured, match="at least 32 bytes"):
        module._jwt_signing_key()


def run_check_deploy(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_behind_a_tls_terminating_proxy(tmp_path):
    result = run_check_deploy(tmp_path, TRUST_X_FORWARDED_PROTO="1", NUM_PROXIES="1", CACHE_URL="locmemcache://")

    assert result.returncode == 0, result.stderr


def test_check_deploy_complains_when_a_protection_is_switched_off(tmp_path):
    result = run_check_deploy(tmp_path, SECURE_HSTS_SECONDS="0", SESSION_COOKIE_SECURE="0")

    assert result.returncode != 0
    assert "security.W004" in result.stderr  # no HSTS
    assert "SESSION_COOKIE_SECURE" in result.stderr
