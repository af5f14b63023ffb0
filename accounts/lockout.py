"""How django-axes identifies a sign-in attempt (settings ``AXES_USERNAME_CALLABLE`` and
``AXES_CLIENT_IP_CALLABLE``): the admin login is locked per username + client address.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle

from accounts.models import normalize_email


def login_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str | None:
    """The address an attempt was for, normalised like logins, so ``Root@X`` and ``root@x`` count
    as one account.

    The admin form authenticates with ``username``, the API's token endpoint with ``email``.
    axes' default reads one configured key only, so the two disagreed: failures were recorded
    without a username and the account was never locked.
    """
    source = credentials if credentials else getattr(request, "POST", {})
    value = source.get("username") or source.get("email")
    return normalize_email(value) if isinstance(value, str) and value.strip() else None


def client_ip(request: HttpRequest) -> str:
    """The client address by the rule of the API's throttles (``REST_FRAMEWORK["NUM_PROXIES"]``).

    0 proxies (the default): the socket address; a client's own ``X-Forwarded-For`` is ignored,
    so forging it neither escapes a lock nor locks out someone else.
    """
    # djangorestframework-stubs type get_ident's argument as a DRF Request; it reads request.META
    # only, which a Django HttpRequest has.
    return BaseThrottle().get_ident(request)  # type: ignore[arg-type]
