"""The settings module refuses malformed or unsafe configuration loudly."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from pricetracker.env import env_bool, env_int, mailer_from_url

ROOT = Path(__file__).resolve().parent.parent


def run_check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL", "EMAIL_URL"}}
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_refuses_to_start_without_secret_key_in_production(tmp_path):
    result = run_check({"DEBUG": "0", "ALLOWED_HOSTS": "example.com", "DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


@pytest.mark.parametrize("command", ["check", "migrate", "qcluster"])
@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "0", "ALLOWED_HOSTS": "example.com"}, "SECRET_KEY is not set"),
        ({"DEBUG": "flase"}, "DEBUG='flase' is not a boolean"),
    ],
)
def test_a_configuration_error_prints_its_message_alone_and_fails(tmp_path, command, env, message):
    base = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL", "EMAIL_URL"}}
    result = subprocess.run(
        [sys.executable, "manage.py", command],
        cwd=ROOT,
        env={**base, **env, "DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 78  # EX_CONFIG
    assert result.stderr.startswith(f"Configuration error: {message}")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_check_deploy_is_clean_with_production_env(tmp_path):
    env = {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "example.com",
        "DATA_DIR": str(tmp_path),
    }
    result = run_check(env, "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_malformed_values_name_the_variable():
    with pytest.raises(ImproperlyConfigured, match="DEBUG='flase'"):
        env_bool("DEBUG", True, environ={"DEBUG": "flase"})
    with pytest.raises(ImproperlyConfigured, match="Q_WORKERS='four'"):
        env_int("Q_WORKERS", 4, environ={"Q_WORKERS": "four"})
    with pytest.raises(ImproperlyConfigured, match="below the minimum"):
        env_int("Q_WORKERS", 4, minimum=1, environ={"Q_WORKERS": "0"})


def test_malformed_database_url_stops_the_process(tmp_path):
    result = run_check({"DATABASE_URL": "mysql://nope", "DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


@pytest.mark.parametrize(
    ("url", "backend", "options"),
    [
        ("consolemail://", "django.core.mail.backends.console.EmailBackend", None),
        (
            "smtp://mail.example.com",
            "django.core.mail.backends.smtp.EmailBackend",
            {"host": "mail.example.com", "port": 25, "use_tls": False, "use_ssl": False},
        ),
        (
            "smtp+tls://me%40example.com:p%40ss@mail.example.com:2587",
            "django.core.mail.backends.smtp.EmailBackend",
            {
                "host": "mail.example.com",
                "port": 2587,
                "use_tls": True,
                "username": "me@example.com",
                "password": "p@ss",
            },
        ),
        (
            "smtp+ssl://mail.example.com",
            "django.core.mail.backends.smtp.EmailBackend",
            {"port": 465, "use_ssl": True, "use_tls": False},
        ),
    ],
)
def test_email_url_maps_onto_mailers(url, backend, options):
    mailer = mailer_from_url(url)
    assert mailer["BACKEND"] == backend
    for key, value in (options or {}).items():
        assert mailer["OPTIONS"][key] == value


def test_unknown_email_scheme_is_refused():
    with pytest.raises(ImproperlyConfigured, match="unknown scheme"):
        mailer_from_url("sendgrid://key@host")


@pytest.mark.default_db_only
@pytest.mark.parametrize(
    ("env", "max_age"),
    [
        ({}, 60),
        ({"DB_CONN_MAX_AGE": "0"}, 0),
        ({"DATABASE_URL": "sqlite:////tmp/pt-settings.sqlite3?conn_max_age=5"}, 5),
    ],
)
def test_sqlite_connections_are_reused_with_health_checks(tmp_path, env, max_age):
    """Persistent SQLite connections: a task or pusher poll must not reopen the file (BENCHMARKS.md)."""
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        "d = settings.DATABASES['default']; "
        "print(json.dumps([d['ENGINE'], d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS']]))"
    )
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DB_CONN_MAX_AGE"}}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "pricetracker.settings", "DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f'["django.db.backends.sqlite3", {max_age}, true]'
