"""The account emails' text: confirmation links and password reset tokens, made when sent.

The outbox (notifications) stores only who gets which kind of email; it calls
:func:`account_email_render` at the moment of sending, so the token is fresh, never stored,
and never sent for an address that has been replaced or confirmed in the meantime.

Bodies are plain text with lines of at most 72 characters except the link and token lines,
which stand alone and unbroken: copied from any mail client (or from the console backend's
output) they work.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.hooks import AccountEmailKind
from accounts.models import User
from accounts.tokens import EmailKind, make_email_confirmation_token

WIDTH = 72

CONFIRMATION_KINDS = {
    EmailKind.LOGIN: AccountEmailKind.CONFIRM_LOGIN,
    EmailKind.NOTIFICATION: AccountEmailKind.CONFIRM_NOTIFICATION,
}


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    body: str


def _body(*blocks: str) -> str:
    """Paragraphs wrapped to WIDTH; a block starting with two spaces (a link, a token) is kept whole."""
    return "\n\n".join(block if block.startswith("  ") else textwrap.fill(block, WIDTH) for block in blocks) + "\n"


def _confirmation(user: User, kind: EmailKind, address: str) -> RenderedEmail:
    token = make_email_confirmation_token(user, kind)
    link = f"{settings.SITE_URL}{reverse('accounts:email-confirm')}?{urlencode({'token': token})}"
    purpose = "sign in to" if kind is EmailKind.LOGIN else "receive price alerts from"
    hours = settings.EMAIL_CONFIRMATION_TIMEOUT // 3600
    return RenderedEmail(
        subject="Confirm your email address for pricetracker",
        body=_body(
            f"Someone (hopefully you) asked to use {address} to {purpose} pricetracker.",
            "To confirm this address, open this link:",
            f"  {link}",
            f"The link works once and expires in {hours} hours. If this was not you, ignore this email: "
            "nothing will be sent to this address.",
        ),
    )


def _password_reset(user: User) -> RenderedEmail:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    hours = max(settings.PASSWORD_RESET_TIMEOUT // 3600, 1)
    endpoint = f"{settings.SITE_URL}{reverse('accounts:password-reset-confirm')}"
    return RenderedEmail(
        subject="Reset your pricetracker password",
        body=_body(
            f"Someone (hopefully you) asked to reset the password of the pricetracker account {user.email}.",
            "To choose a new password, send uid, token and new_password to:",
            f"  {endpoint}",
            f"  uid: {uid}\n  token: {token}",
            f"The token works once and expires in {hours} hour(s). "
            "If this was not you, ignore this email: your password stays as it is.",
        ),
    )


def account_email_render(*, user: User, kind: AccountEmailKind, to_email: str) -> RenderedEmail | None:
    """The email of ``kind`` for ``user`` with a token made now, or None when it no longer applies.

    None when the account is inactive, when ``to_email`` is no longer the address the email is
    about (replaced since it was queued: a token for the new address must never go to the old
    one) or, for a confirmation, when that address has been confirmed meanwhile.
    """
    if not user.is_active:
        return None
    if kind is AccountEmailKind.PASSWORD_RESET:
        if user.email != to_email or not user.has_usable_password():
            return None
        return _password_reset(user)
    email_kind = EmailKind.LOGIN if kind is AccountEmailKind.CONFIRM_LOGIN else EmailKind.NOTIFICATION
    if getattr(user, email_kind.address_field) != to_email or getattr(user, email_kind.verified_field) is not None:
        return None
    return _confirmation(user, email_kind, to_email)
