"""Stateless, single-use, expiring tokens that confirm an email address.

Built like Django's password reset tokens: an HMAC over the user's current state, so nothing is
stored. The hashed state is the address being confirmed and its "verified at" timestamp, which
makes a token stop working once it has been used (the timestamp is set) or once the address it
was sent to has been replaced. ``EMAIL_CONFIRMATION_TIMEOUT`` seconds after issue it expires.

The string handed to the user is ``<kind>.<uidb64>.<timestamp>-<hmac>``: the kind says which of
the user's two addresses it confirms, and each kind has its own HMAC salt, so a token for one
address can never confirm the other.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.utils.crypto import constant_time_compare
from django.utils.encoding import force_bytes, force_str
from django.utils.http import base36_to_int, urlsafe_base64_decode, urlsafe_base64_encode

from accounts.models import User


class EmailKind(enum.StrEnum):
    """Which of a user's addresses a confirmation is about."""

    LOGIN = "login"
    NOTIFICATION = "notification"

    @property
    def address_field(self) -> str:
        return "email" if self is EmailKind.LOGIN else "notification_email"

    @property
    def verified_field(self) -> str:
        return "email_verified_at" if self is EmailKind.LOGIN else "notification_email_verified_at"


class EmailConfirmationTokenGenerator(PasswordResetTokenGenerator):
    """HMAC tokens over (user, address, verified-at) for one :class:`EmailKind`."""

    def __init__(self, kind: EmailKind) -> None:
        super().__init__()
        self.kind = kind
        self.key_salt = f"accounts.tokens.EmailConfirmationTokenGenerator.{kind.value}"

    def _make_hash_value(self, user: User, timestamp: int) -> str:
        address = getattr(user, self.kind.address_field) or ""
        verified_at = getattr(user, self.kind.verified_field)
        # Microseconds dropped as Django does, in case a database does not keep them.
        verified = "" if verified_at is None else verified_at.replace(microsecond=0, tzinfo=None)
        return f"{user.pk}|{address}|{verified}|{timestamp}"

    def check_token(self, user: User | None, token: str | None) -> bool:
        """Like Django's, but expiring after ``EMAIL_CONFIRMATION_TIMEOUT`` (the parent hard-codes
        ``PASSWORD_RESET_TIMEOUT``)."""
        if not (user and token):
            return False
        try:
            ts_b36, _ = token.split("-")
            timestamp = base36_to_int(ts_b36)
        except ValueError:
            return False
        if not any(
            constant_time_compare(self._make_token_with_timestamp(user, timestamp, secret), token)
            for secret in [self.secret, *self.secret_fallbacks]
        ):
            return False
        return self._num_seconds(self._now()) - timestamp <= settings.EMAIL_CONFIRMATION_TIMEOUT


GENERATORS = {kind: EmailConfirmationTokenGenerator(kind) for kind in EmailKind}


def make_email_confirmation_token(user: User, kind: EmailKind) -> str:
    """The token to put in the confirmation link sent to ``user``'s ``kind`` address."""
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    return f"{kind.value}.{uidb64}.{GENERATORS[kind].make_token(user)}"


@dataclass(frozen=True)
class ParsedToken:
    kind: EmailKind
    user_id: str
    token: str


def parse_email_confirmation_token(value: str) -> ParsedToken | None:
    """Split a confirmation token into its parts; None when it is not even well-formed."""
    try:
        kind, uidb64, token = value.split(".", 2)
        return ParsedToken(kind=EmailKind(kind), user_id=force_str(urlsafe_base64_decode(uidb64)), token=token)
    except (ValueError, TypeError):
        return None


def check_email_confirmation_token(user: User, parsed: ParsedToken) -> bool:
    """Is the token valid for the user's *current* address and state, and not expired?"""
    return GENERATORS[parsed.kind].check_token(user, parsed.token)
