"""Strict readers for environment variables.

Every setting that comes from the environment goes through one of these functions, so a typo
such as ``DEBUG=flase`` or ``Q_WORKERS=four`` stops the process with a message naming the
variable, instead of silently falling back to a default (healthchecks.io does the same).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import overload
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (environ if environ is not None else os.environ).get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


# With a string default the result is never None; the overloads let callers rely on that.
@overload
def env_str(name: str, default: str, *, environ: Mapping[str, str] | None = None) -> str: ...
@overload
def env_str(name: str, default: None = None, *, environ: Mapping[str, str] | None = None) -> str | None: ...
def env_str(name: str, default: str | None = None, *, environ: Mapping[str, str] | None = None) -> str | None:
    """Return the variable as a stripped string; empty counts as unset."""
    value = _raw(name, environ)
    return default if value is None else value


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    """Return a boolean; only 1/0, true/false, yes/no, on/off (any case) are accepted."""
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean: use one of 1/0, true/false, yes/no, on/off.")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Return an integer within ``[minimum, maximum]``."""
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum of {minimum}.")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above the maximum of {maximum}.")
    return number


def env_list(name: str, default: list[str], *, environ: Mapping[str, str] | None = None) -> list[str]:
    """Return a comma-separated list with blanks removed."""
    value = _raw(name, environ)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: set[str], *, environ: Mapping[str, str] | None = None) -> str:
    """Return one of ``choices`` (case-insensitive)."""
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of: {', '.join(sorted(choices))}.")
    return lowered


def env_http_url(name: str, default: str, *, environ: Mapping[str, str] | None = None) -> str:
    """Return an http(s) URL without a trailing slash."""
    value = _raw(name, environ) or default
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ImproperlyConfigured(f"{name}={value!r} must be an http:// or https:// URL with a host.")
    return value.rstrip("/")


def env_http_url_map(name: str, *, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return ``key=url,key=url`` as a dict of keys to http(s) URLs without a trailing slash.

    ``STORE_BASE_URLS=amazon.de=http://127.0.0.1:9001/amazon.de,amazon.co.uk=http://...``: a key
    is a lower-case host name; each URL must be http(s) with a host. Empty or unset gives {}.
    """
    value = _raw(name, environ)
    result: dict[str, str] = {}
    for item in (value or "").split(","):
        if not item.strip():
            continue
        key, sep, url = item.partition("=")
        key = key.strip().lower()
        if not sep or not key or any(char not in "abcdefghijklmnopqrstuvwxyz0123456789.-" for char in key):
            raise ImproperlyConfigured(f"{name}: {item.strip()!r} is not host=URL.")
        if key in result:
            raise ImproperlyConfigured(f"{name}: {key} is given twice.")
        result[key] = env_http_url(f"{name}[{key}]", url.strip(), environ={})
    return result


# --- EMAIL_URL -> Django 6.1 MAILERS ---------------------------------------------------------

_CONSOLE = "django.core.mail.backends.console.EmailBackend"
_SMTP = "django.core.mail.backends.smtp.EmailBackend"
_LOCMEM = "django.core.mail.backends.locmem.EmailBackend"
_DUMMY = "django.core.mail.backends.dummy.EmailBackend"


def mailer_from_url(url: str, *, name: str = "EMAIL_URL") -> dict[str, object]:
    """Map an ``EMAIL_URL`` onto one Django 6.1 ``MAILERS`` entry.

    django-environ's ``email_url()`` still emits the deprecated ``EMAIL_*`` keys, and Django 6.1
    refuses to mix those with ``MAILERS`` (docs/decisions.md, "Django 6.1 MAILERS vs EMAIL_URL"), so
    this small mapping replaces it.

    Accepted forms: ``consolemail://``, ``locmem://``, ``dummymail://``,
    ``smtp://[user:password@]host[:port][?timeout=10]`` (plain, port 25),
    ``smtp+tls://`` (STARTTLS, port 587) and ``smtp+ssl://`` (implicit TLS, port 465).
    User name and password are percent-decoded, so ``@`` in a user name is written ``%40``.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in {"consolemail", "console"}:
        return {"BACKEND": _CONSOLE}
    if scheme == "locmem":
        return {"BACKEND": _LOCMEM}
    if scheme in {"dummymail", "dummy"}:
        return {"BACKEND": _DUMMY}
    ports = {"smtp": 25, "smtp+tls": 587, "smtps": 465, "smtp+ssl": 465}
    if scheme not in ports:
        raise ImproperlyConfigured(
            f"{name} has an unknown scheme {parts.scheme!r}: use consolemail://, smtp://, smtp+tls:// or smtp+ssl://."
        )
    if not parts.hostname:
        raise ImproperlyConfigured(f"{name} needs a host, e.g. smtp+tls://user:password@mail.example.com:587")
    try:
        port = parts.port or ports[scheme]
    except ValueError:
        raise ImproperlyConfigured(f"{name} has an invalid port.") from None
    options: dict[str, object] = {
        "host": parts.hostname,
        "port": port,
        "use_tls": scheme == "smtp+tls",
        "use_ssl": scheme in {"smtp+ssl", "smtps"},
        "timeout": 10,
    }
    if parts.username:
        options["username"] = unquote(parts.username)
        options["password"] = unquote(parts.password or "")
    query = parse_qs(parts.query)
    if "timeout" in query:
        try:
            options["timeout"] = float(query["timeout"][0])
        except ValueError:
            raise ImproperlyConfigured(f"{name} has an invalid timeout.") from None
    return {"BACKEND": _SMTP, "OPTIONS": options}
