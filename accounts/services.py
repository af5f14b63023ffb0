"""Account workflows: registration, email confirmation, passwords, refresh-token rotation.

Views and serializers validate the shape of a request, call one function here and format the
result. Every function is keyword-only and typed. Business-rule refusals raise
:class:`pricetracker.errors.DomainError`; a refusal about one input field carries
``{"errors": {field: [...]}}`` so clients see the same shape as a serializer validation error.

Emails (confirmation links, password reset tokens) are handed to the registered account email
sender (:mod:`accounts.hooks`: the notifications outbox) inside the request's transaction: never
sent for a transaction that rolled back, retried when the mail server is down, rendered with a
fresh token only when sent (:mod:`accounts.emails`). Anyone can type a stranger's address, so
every such email is counted per target address (and address changes per account) in
:class:`accounts.models.MailQuota`; beyond the limits the request gets a 429 with the wait.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode

from accounts import jwt
from accounts.emails import CONFIRMATION_KINDS
from accounts.hooks import AccountEmailKind, account_email_sender
from accounts.models import MailQuota, User, normalize_email
from accounts.tokens import EmailKind, check_email_confirmation_token, parse_email_confirmation_token
from pricetracker.errors import InvalidInput, RateLimited

logger = logging.getLogger(__name__)

EMAIL_TAKEN = "A user with this email address already exists."
CONFIRMATION_LINK_INVALID = "This confirmation link is invalid, expired or already used. Ask for a new one."
RESET_LINK_INVALID = "This password reset link is invalid, expired or already used. Ask for a new one."
WRONG_OLD_PASSWORD = "Your old password was entered incorrectly."  # noqa: S105 - a message, not a secret
REFRESH_TOKEN_INVALID = "Invalid, expired or already revoked refresh token."  # noqa: S105 - a message, not a secret
REFRESH_TOKEN_USED = "Token has already been used."  # noqa: S105 - a message, not a secret
NO_ACTIVE_ACCOUNT = "No active account found for the given token."
TOO_MANY_CHANGES = "You have changed your notification email too often."


def _field_error(field: str, messages: list[str], *, code: str = "invalid") -> InvalidInput:
    """A refusal about one input field (rendered by the API like a serializer validation error)."""
    return InvalidInput(messages[0], code=code, field=field, messages=messages)


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


class EmailLimitReached(RateLimited):
    """Too many emails to one address, or address changes by one account, for now.

    ``retry_after_seconds`` (the API's ``Retry-After``) says when one more is allowed.
    """

    def __init__(self, message: str, *, code: str, wait: int) -> None:
        super().__init__(f"{message} Try again in {_wait_text(wait)}.", code=code, extra={"retry_after_seconds": wait})
        self.wait = wait


def _wait_text(seconds: int) -> str:
    minutes = -(-seconds // 60)
    if minutes <= 90:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = -(-minutes // 60)
    return f"{hours} hours"


def _count_email(*, scope: str, subject: str, limits: Sequence[tuple[int, int]]) -> int | None:
    """Count one email (or change) against ``limits``; None if allowed, else the seconds to wait."""
    return MailQuota.objects.consume(scope=scope, subject=subject, limits=limits, now=timezone.now())


def _queue_email(*, user: User, kind: AccountEmailKind, to_email: str) -> None:
    account_email_sender()(user=user, kind=kind, to_email=to_email)


# --- Tokens ---------------------------------------------------------------------------------


def user_issue_tokens(*, user: User) -> dict[str, str]:
    """A new ``{access, refresh}`` pair; the refresh token is recorded as outstanding."""
    return jwt.issue_pair(user=user)


def refresh_token_rotate(*, raw_refresh: str) -> dict[str, str]:
    """Exchange a refresh token for a new pair, exactly once.

    simplejwt's own rotation checks the blacklist and blacklists afterwards, so N concurrent
    requests with one token can all pass the check (docs/decisions.md, "simplejwt: refresh
    rotation is not atomic": up to 8 of 8). Here the old token is *claimed* by inserting its
    blacklist row, which the database lets exactly one request do (:func:`accounts.jwt.claim_and_reissue`).

    Raises :class:`accounts.jwt.RefreshRefused` (invalid, expired, blacklisted, already used,
    inactive user).
    """
    return jwt.claim_and_reissue(
        raw_refresh=raw_refresh, active_user=_active_user, no_account=NO_ACTIVE_ACCOUNT, used=REFRESH_TOKEN_USED
    )


def user_logout(*, user: User, raw_refresh: str) -> None:
    """Blacklist ``user``'s refresh token so it can no longer be exchanged.

    Access tokens already issued stay valid until they expire (they are short-lived).
    """
    try:
        owner = jwt.refresh_user_id(raw_refresh)
    except jwt.RefreshRefused:
        raise _field_error("refresh", [REFRESH_TOKEN_INVALID], code="invalid_token") from None
    if owner != str(user.pk):
        raise _field_error("refresh", [REFRESH_TOKEN_INVALID], code="invalid_token")
    jwt.revoke(raw_refresh)


def user_blacklist_refresh_tokens(*, user: User) -> int:
    """Revoke every unexpired refresh token of ``user`` (log out all sessions); return the count."""
    return jwt.revoke_all(user=user, now=timezone.now())


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
            try:
                user_send_email_confirmation(user=user, kind=EmailKind.LOGIN)
            except EmailLimitReached:
                # Others have had this address sent links lately; the account is still created
                # and its owner asks for a link later (resend answers with the wait).
                logger.info("user %s registered; confirmation not sent: the address reached its limit", user.pk)
    except IntegrityError:
        # Two registrations of one address at once: the case-insensitive constraint decides.
        raise _field_error("email", [EMAIL_TAKEN], code="email_taken") from None
    return user


def _count_confirmation(address: str) -> None:
    """Count a confirmation email to ``address`` whoever asks; 429 beyond the address's limits."""
    wait = _count_email(scope="confirm-to", subject=address, limits=settings.ACCOUNTS_CONFIRMATION_EMAIL_LIMITS)
    if wait is not None:
        message = f"Too many confirmation emails have been sent to {address} recently."
        raise EmailLimitReached(message, code="email_limit", wait=wait)


def user_send_email_confirmation(*, user: User, kind: EmailKind) -> str:
    """Queue a confirmation link for ``user``'s ``kind`` address; return the address.

    Raises :class:`EmailLimitReached` (429) when that address has had its share of confirmation
    emails; call it inside the transaction whose rollback should undo the count.
    """
    address = getattr(user, kind.address_field)
    with transaction.atomic():
        _count_confirmation(address)
        _queue_email(user=user, kind=CONFIRMATION_KINDS[kind], to_email=address)
    return address


def user_resend_email_confirmations(*, user: User) -> list[str]:
    """Queue new links for each of ``user``'s addresses still awaiting confirmation; return them.

    All or nothing: if one address is over its limit, nothing is sent and the 429 says so.
    """
    pending = []
    if not user.email_confirmed:
        pending.append(EmailKind.LOGIN)
    if user.notification_email and not user.notification_email_confirmed:
        pending.append(EmailKind.NOTIFICATION)
    with transaction.atomic():
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
        raise InvalidInput(CONFIRMATION_LINK_INVALID, code="invalid_token")
    kind = parsed.kind
    address = getattr(user, kind.address_field)
    # Conditional UPDATE: if the address changed or was confirmed since we read the row, nothing
    # is confirmed (two clicks at once confirm once, and never the wrong address).
    updated = User.objects.filter(
        pk=user.pk, **{kind.address_field: address, f"{kind.verified_field}__isnull": True}
    ).update(**{kind.verified_field: timezone.now()})
    if not address or updated != 1:
        raise InvalidInput(CONFIRMATION_LINK_INVALID, code="invalid_token")
    user.refresh_from_db()
    return EmailConfirmation(user=user, kind=kind, address=address)


def user_confirm_addresses_by_operator(*, email: str, notification: bool = False) -> list[str]:
    """Mark an account's login address (and, if asked, its notification address) as confirmed.

    For operators (``manage.py confirm_email``): a local install without a mail server, or a
    user whose mail never arrives. Returns the addresses newly confirmed; raises LookupError
    when no account signs in with ``email``.
    """
    user = User.objects.filter(email__iexact=normalize_email(email)).first()
    if user is None:
        raise LookupError(email)
    now = timezone.now()
    confirmed = []
    kinds = [EmailKind.LOGIN, EmailKind.NOTIFICATION] if notification else [EmailKind.LOGIN]
    for kind in kinds:
        address = getattr(user, kind.address_field)
        # The same conditional UPDATE as a clicked link: confirms this address only, once.
        if address and User.objects.filter(
            pk=user.pk, **{kind.address_field: address, f"{kind.verified_field}__isnull": True}
        ).update(**{kind.verified_field: now}):
            confirmed.append(address)
    return confirmed


def user_update_locale(*, user: User, default_store: str | None = None, language: str | None = None) -> User:
    """Set the user's default marketplace (for bare ASINs) and language (for amounts in emails).

    Both are checked by the caller (the profile serializer: a known store code, a language Babel
    knows); only the given fields are written.
    """
    changes = {
        name: value
        for name, value in (("default_store", default_store), ("language", language))
        if value is not None and getattr(user, name) != value
    }
    for name, value in changes.items():
        setattr(user, name, value)
    if changes:
        user.save(update_fields=list(changes))
    return user


def user_update_alert_preferences(*, user: User, changes: dict[str, object]) -> User:
    """Set the user's time zone, quiet hours (``quiet_hours_start``/``_end``, both or neither) and
    daily alert limit (``max_alerts_per_day``, None: no limit); only the given fields are written.

    Checked by the caller (the profile serializer: a known IANA zone, two different clock times,
    a limit of at least 1); the database checks the quiet hours and the limit again. Alerts
    already waiting for quiet hours to end keep their time.
    """
    allowed = {"timezone", "quiet_hours_start", "quiet_hours_end", "max_alerts_per_day"}
    updates = {name: value for name, value in changes.items() if name in allowed and getattr(user, name) != value}
    for name, value in updates.items():
        setattr(user, name, value)
    if updates:
        user.save(update_fields=list(updates))
    return user


def user_update_notification_email(*, user: User, notification_email: str) -> User:
    """Set where alerts go; a new address must be confirmed before alerts are sent there.

    Blank, or the login address itself, resets to "alerts go to the login email" (whose own
    confirmation then applies). Re-entering the current address changes nothing.

    Raises :class:`EmailLimitReached` (429, nothing changed) when the account has changed its
    address too often (``ACCOUNTS_EMAIL_CHANGE_LIMITS``) or the new address has had its share of
    confirmation emails (``ACCOUNTS_CONFIRMATION_EMAIL_LIMITS``).
    """
    address = normalize_email(notification_email)
    if address == user.email:
        address = ""
    if address == user.notification_email:
        return user
    with transaction.atomic():
        wait = _count_email(scope="email-change", subject=str(user.pk), limits=settings.ACCOUNTS_EMAIL_CHANGE_LIMITS)
        if wait is not None:
            raise EmailLimitReached(TOO_MANY_CHANGES, code="email_change_limit", wait=wait)
        if address:
            _count_confirmation(address)
        user.notification_email = address
        user.notification_email_verified_at = None
        user.save(update_fields=["notification_email", "notification_email_verified_at"])
        if address:
            _queue_email(user=user, kind=AccountEmailKind.CONFIRM_NOTIFICATION, to_email=address)
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
    """Queue a password reset email if an active account with a password uses ``email``.

    The caller answers the same whatever happens here, so the response never reveals whether an
    address has an account. (The only difference is writing one outbox row.) For the same
    reason an address over ``ACCOUNTS_PASSWORD_RESET_EMAIL_LIMITS`` is not told: the email is
    simply not queued, so resets cannot flood a mailbox from many client addresses.
    """
    user = User.objects.filter(email__iexact=normalize_email(email), is_active=True).first()
    if user is None or not user.has_usable_password():
        return
    with transaction.atomic():
        limits = settings.ACCOUNTS_PASSWORD_RESET_EMAIL_LIMITS
        if _count_email(scope="reset-to", subject=user.email, limits=limits) is not None:
            logger.info("password reset for user %s not sent: the address reached its limit", user.pk)
            return
        _queue_email(user=user, kind=AccountEmailKind.PASSWORD_RESET, to_email=user.email)


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
        raise InvalidInput(RESET_LINK_INVALID, code="invalid_token")
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
            raise InvalidInput(RESET_LINK_INVALID, code="invalid_token")
        user_blacklist_refresh_tokens(user=user)
    user.refresh_from_db()
    return user
