"""Every contact with simplejwt's token classes and its blacklist tables (the JWT token store).

Services call these functions and never import simplejwt themselves; a refused refresh token is
:class:`RefreshRefused`, a domain error (the API maps it to 401 ``token_not_valid``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db import IntegrityError, transaction
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.models import User
from pricetracker.errors import DomainError


class RefreshRefused(DomainError):
    """A refresh token that is invalid, expired, revoked, already used or of an inactive user."""

    code = "token_not_valid"


def issue_pair(*, user: User) -> dict[str, str]:
    """A new ``{access, refresh}`` pair; the refresh token is recorded as outstanding."""
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def _decode(raw_refresh: str) -> RefreshToken:
    """Check signature, expiry, type and (fast path) the blacklist; RefreshRefused otherwise."""
    try:
        # The ignore: simplejwt annotates Token(token) as a Token, yet it takes the encoded string.
        return RefreshToken(raw_refresh)  # type: ignore[arg-type]
    except TokenError as exc:
        raise RefreshRefused(str(exc)) from None


def refresh_user_id(raw_refresh: str) -> str | None:
    """The user id a valid refresh token names (RefreshRefused when it is not valid)."""
    value = _decode(raw_refresh).get(jwt_settings.USER_ID_CLAIM)
    return None if value is None else str(value)


def claim_and_reissue(
    *, raw_refresh: str, active_user: Callable[[object], User | None], no_account: str, used: str
) -> dict[str, str]:
    """Exchange a refresh token for a new pair, exactly once (see services.refresh_token_rotate).

    The old token is claimed by inserting its ``BlacklistedToken`` row (one-to-one with the
    outstanding token): the database lets exactly one insert win. New tokens are issued in the
    same transaction as the claim.
    """
    old = _decode(raw_refresh)
    user = active_user(old.get(jwt_settings.USER_ID_CLAIM))
    if user is None:
        raise RefreshRefused(no_account)
    try:
        with transaction.atomic():
            # Tokens minted elsewhere (or before the blacklist app) may have no outstanding row.
            outstanding, _ = OutstandingToken.objects.get_or_create(
                jti=old[jwt_settings.JTI_CLAIM],
                defaults={
                    "user": user,
                    "token": raw_refresh,
                    "created_at": datetime_from_epoch(old["iat"]) if "iat" in old else None,
                    "expires_at": datetime_from_epoch(old["exp"]),
                },
            )
            BlacklistedToken.objects.create(token=outstanding)
            return issue_pair(user=user)
    except IntegrityError:
        # Another request claimed this token first (or it was revoked meanwhile).
        raise RefreshRefused(used) from None


def revoke(raw_refresh: str) -> None:
    """Blacklist one refresh token (already checked by the caller)."""
    _decode(raw_refresh).blacklist()


def revoke_all(*, user: User, now: datetime) -> int:
    """Revoke every unexpired refresh token of ``user``; return how many were revoked now."""
    pending = OutstandingToken.objects.filter(user=user, expires_at__gt=now, blacklistedtoken__isnull=True).only("pk")
    # ignore_conflicts: a token revoked concurrently (logout, rotation) is simply already done.
    created = BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in pending], ignore_conflicts=True
    )
    return len(created)
