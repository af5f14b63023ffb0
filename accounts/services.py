"""Account workflows: registration, email confirmation, passwords, refresh-token rotation.

Views and serializers validate the shape of a request, call one function here and format the
result. Every function is keyword-only and typed. Business-rule refusals raise
:class:`pricetracker.api.ApplicationError`; a refusal about one input field carries
``{"errors": {field: [...]}}`` so clients see the same shape as a serializer validation error.

Emails are plain text, sent with :func:`django.core.mail.send_mail` (the configured default
mailer) from ``transaction.on_commit(..., robust=True)``: never for a transaction that rolled
back, and a mail server failure is logged instead of failing a request whose data is saved.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.models import User, normalize_email
from accounts.tokens import (
    EmailKind,
    check_email_confirmation_token,
    make_email_confirmation_token,
    parse_email_confirmation_token,
)
from pricetracker.api import ApplicationError

logger = logging.getLogger(__name__)

EMAIL_TAKEN = "A user with this email address already exists."
CONFIRMATION_LINK_INVALID = "This confirmation link is invalid, expired or already used. Ask for a new one."
RESET_LINK_INVALID = "This password reset link is invalid, expired or already used. Ask for a new one."
WRONG_OLD_PASSWORD = "Your old password was entered incorrectly."  # noqa: S105 - a message, not a secret
REFRESH_TOKEN_INVALID = "Invalid, expired or already revoked refresh token."  # noqa: S105 - a message, not a secret
REFRESH_TOKEN_USED = "Token has already been used."  # noqa: S105 - a message, not a secret
NO_ACTIVE_ACCOUNT = "No active account found for the given token."


def _field_error(field: str, messages: list[str], *, code: str = "invalid") -> ApplicationError:
    """An error rendered like a serializer validation error on ``field``."""
    return ApplicationError(f"{field}: {messages[0]}", code=code, extra={"errors": {field: messages}})


def _validate_password(password: str, *, user: User, field: str) -> None:
    """Run ``AUTH_PASSWORD_VALIDATORS``; their messages are reported under ``field``."""
    try:
        password_validation.validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise _field_error(field, list(exc.messages)) from None


def _active_user(user_id: object) -> User | None:
    """The active user with this primary key; None for a missing, inactive or malformed id."""
    try:
        pk = int(str(user_id))
    except ValueError:
        return None
    if not 0 < pk < 2**63:  # beyond a BIGINT the database driver would raise, not miss
        return None
    return User.objects.filter(pk=pk, is_active=True).first()


def _site_link(url_name: str, **query: str) -> str:
    return f"{settings.SITE_URL}{reverse(url_name)}?{urlencode(query)}"


def _send_on_commit(*, subject: str, body: str, to: str) -> None:
    # robust=True: the data is committed; a failing mail server must not turn that into a 500.
    # The user can ask again (resend / reset), and the failure is logged by Django.
    transaction.on_commit(
        partial(send_mail, subject, body, settings.DEFAULT_FROM_EMAIL, [to]),
        robust=True,
    )


# --- Tokens ---------------------------------------------------------------------------------


def user_issue_tokens(*, user: User) -> dict[str, str]:
    """A new ``{access, refresh}`` pair; the refresh token is recorded as outstanding."""
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def refresh_token_rotate(*, raw_refresh: str) -> dict[str, str]:
    """Exchange a refresh token for a new pair, exactly once.

    simplejwt's own rotation checks the blacklist and blacklists afterwards, so N concurrent
    requests with one token can all pass the check (FINDINGS.md: up to 8 of 8). Here the old
    token is *claimed* by inserting its ``BlacklistedToken`` row, which is one-to-one with the
    outstanding token: the database lets exactly one insert win; the others get an
    IntegrityError and are refused. New tokens are issued in the same transaction as the claim.

    Raises :class:`TokenError` (invalid, expired, blacklisted, already used, inactive user).
    """
    old = RefreshToken(raw_refresh)  # signature, expiry, token type; fast-path blacklist check
    user = _active_user(old.get(jwt_settings.USER_ID_CLAIM))
    if user is None:
        raise TokenError(NO_ACTIVE_ACCOUNT)
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
            return user_issue_tokens(user=user)
    except IntegrityError:
        # Another request claimed this token first (or it was revoked meanwhile).
        raise TokenError(REFRESH_TOKEN_USED) from None


def user_logout(*, user: User, raw_refresh: str) -> None:
    """Blacklist ``user``'s refresh token so it can no longer be exchanged.

    Access tokens already issued stay valid until they expire (they are short-lived).
    """
    try:
        token = RefreshToken(raw_refresh)
    except TokenError:
        raise _field_error("refresh", [REFRESH_TOKEN_INVALID], code="invalid_token") from None
    if str(token.get(jwt_settings.USER_ID_CLAIM)) != str(user.pk):
        raise _field_error("refresh", [REFRESH_TOKEN_INVALID], code="invalid_token")
    token.blacklist()


def user_blacklist_refresh_tokens(*, user: User) -> int:
    """Revoke every unexpired refresh token of ``user`` (log out all sessions); return the count."""
    pending = OutstandingToken.objects.filter(
        user=user, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
    ).only("pk")
    # ignore_conflicts: a token revoked concurrently (logout, rotation) is simply already done.
    created = BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in pending], ignore_conflicts=True
    )
    return len(created)


# --- Registration and email confirmation ----------------------------------------------------


def user_register(*, email: str, password: str) -> User:
    """Create an account and email a confirmation link to its login address.

    Logging in does not need a confirmed address; sending alerts does
    (see :meth:`accounts.models.User.alert_address`).
    """
    email = normalize_email(email)
    if User.objects.filter(email__iexact=email).exists():
        raise _field_error("email", [EMAIL_TAKEN], code="email_taken")
    _validate_password(password, user=User(email=email), field="password")
    try:
        with transaction.atomic():
            user = User.objects.create_user(email, password)
            user_send_email_confirmation(user=user, kind=EmailKind.LOGIN)
    except IntegrityError:
        # Two registrations of one address at once: the case-insensitive constraint decides.
        raise _field_error("email", [EMAIL_TAKEN], code="email_taken") from None
    return user


def user_send_email_confirmation(*, user: User, kind: EmailKind) -> str:
    """Email a confirmation link for ``user``'s ``kind`` address (after commit); return the address."""
    address = getattr(user, kind.address_field)
    token = make_email_confirmation_token(user, kind)
    link = _site_link("accounts:email-confirm", token=token)
    purpose = "sign in to" if kind is EmailKind.LOGIN else "receive price alerts from"
    hours = settings.EMAIL_CONFIRMATION_TIMEOUT // 3600
    body = (
        f"Someone (hopefully you) asked to use {address} to {purpose} pricetracker.\n\n"
        f"To confirm this address, open this link:\n\n{link}\n\n"
        f"The link works once and expires in {hours} hours. "
        f"If this was not you, ignore this email: nothing will be sent to this address.\n"
    )
    _send_on_commit(subject="Confirm your email address for pricetracker", body=body, to=address)
    return address


def user_resend_email_confirmations(*, user: User) -> list[str]:
    """Send new links for each of ``user``'s addresses still awaiting confirmation; return them."""
    pending = []
    if not user.email_confirmed:
        pending.append(EmailKind.LOGIN)
    if user.notification_email and not user.notification_email_confirmed:
        pending.append(EmailKind.NOTIFICATION)
    return [user_send_email_confirmation(user=user, kind=kind) for kind in pending]


@dataclass(frozen=True)
class EmailConfirmation:
    user: User
    kind: EmailKind
    address: str


def user_confirm_email(*, token: str) -> EmailConfirmation:
    """Mark the address a confirmation token was issued for as confirmed.

    Refuses (400) a malformed, tampered, expired or used token, and one whose address has been
    replaced since it was sent.
    """
    parsed = parse_email_confirmation_token(token)
    user = _active_user(parsed.user_id) if parsed else None
    if parsed is None or user is None or not check_email_confirmation_token(user, parsed):
        raise ApplicationError(CONFIRMATION_LINK_INVALID, code="invalid_token")
    kind = parsed.kind
    address = getattr(user, kind.address_field)
    # Conditional UPDATE: if the address changed or was confirmed since we read the row, nothing
    # is confirmed (two clicks at once confirm once, and never the wrong address).
    updated = User.objects.filter(
        pk=user.pk, **{kind.address_field: address, f"{kind.verified_field}__isnull": True}
    ).update(**{kind.verified_field: timezone.now()})
    if not address or updated != 1:
        raise ApplicationError(CONFIRMATION_LINK_INVALID, code="invalid_token")
    user.refresh_from_db()
    return EmailConfirmation(user=user, kind=kind, address=address)


def user_update_notification_email(*, user: User, notification_email: str) -> User:
    """Set where alerts go; a new address must be confirmed before alerts are sent there.

    Blank, or the login address itself, resets to "alerts go to the login email" (whose own
    confirmation then applies). Re-entering the current address changes nothing.
    """
    address = normalize_email(notification_email)
    if address == user.email:
        address = ""
    if address == user.notification_email:
        return user
    user.notification_email = address
    user.notification_email_verified_at = None
    with transaction.atomic():
        user.save(update_fields=["notification_email", "notification_email_verified_at"])
        if address:
            user_send_email_confirmation(user=user, kind=EmailKind.NOTIFICATION)
    return user


# --- Passwords ------------------------------------------------------------------------------


def user_change_password(*, user: User, old_password: str, new_password: str) -> None:
    """Change the password of a signed-in user and log out all their sessions.

    Every outstanding refresh token is revoked: someone changing a password because it leaked
    expects other devices to be signed out. The caller issues the current client a new pair.
    """
    if not user.check_password(old_password):
        raise _field_error("old_password", [WRONG_OLD_PASSWORD])
    _validate_password(new_password, user=user, field="new_password")
    user.set_password(new_password)
    with transaction.atomic():
        user.save(update_fields=["password"])
        user_blacklist_refresh_tokens(user=user)


def user_request_password_reset(*, email: str) -> None:
    """Email a password reset token if an active account with a password uses ``email``.

    The caller answers the same whatever happens here, so the response never reveals whether an
    address has an account. (The only difference is the work of handing one email to the mail
    backend; with a local MTA or a queueing backend that is small.)
    """
    user = User.objects.filter(email__iexact=normalize_email(email), is_active=True).first()
    if user is None or not user.has_usable_password():
        return
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    hours = settings.PASSWORD_RESET_TIMEOUT // 3600
    endpoint = f"{settings.SITE_URL}{reverse('accounts:password-reset-confirm')}"
    body = (
        f"Someone (hopefully you) asked to reset the password of the pricetracker account {user.email}.\n\n"
        f"To choose a new password, send uid, token and new_password to {endpoint}\n\n"
        f"uid: {uid}\ntoken: {token}\n\n"
        f"The token works once and expires in {max(hours, 1)} hour(s). "
        f"If this was not you, ignore this email: your password stays as it is.\n"
    )
    _send_on_commit(subject="Reset your pricetracker password", body=body, to=user.email)


def user_reset_password(*, uid: str, token: str, new_password: str) -> User:
    """Set a new password with a reset token; revoke all refresh tokens of the account.

    Following the link proves the user receives mail at the login address, so an unconfirmed
    login address becomes confirmed.
    """
    try:
        user_id = force_str(urlsafe_base64_decode(uid))
    except (ValueError, TypeError):
        user_id = None
    user = _active_user(user_id)
    if user is None or not default_token_generator.check_token(user, token):
        raise ApplicationError(RESET_LINK_INVALID, code="invalid_token")
    _validate_password(new_password, user=user, field="new_password")
    old_hash = user.password
    user.set_password(new_password)
    with transaction.atomic():
        # Claim the token with a conditional UPDATE on the old hash: of two concurrent uses of
        # one token, only one sets a password.
        updated = User.objects.filter(pk=user.pk, password=old_hash).update(
            password=user.password,
            email_verified_at=Coalesce("email_verified_at", Value(timezone.now())),
        )
        if updated != 1:
            raise ApplicationError(RESET_LINK_INVALID, code="invalid_token")
        user_blacklist_refresh_tokens(user=user)
    user.refresh_from_db()
    return user
