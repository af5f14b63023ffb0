"""The seam between accounts and the email outbox.

Imports flow one way (notifications imports accounts, never the reverse), so accounts does not
send its emails itself: it hands "send this kind of email to this address" to the one sender
registered here, inside the caller's transaction. notifications registers its outbox writer in
``AppConfig.ready``, so a confirmation or password reset email is retried like an alert when
the mail server is down. The email is rendered when it is sent
(:func:`accounts.emails.account_email_render`), so no token is ever stored.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Protocol

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from accounts.models import User


class AccountEmailKind(enum.StrEnum):
    """The emails accounts sends (the outbox stores the value in ``Notification.kind``)."""

    CONFIRM_LOGIN = "confirm_login"
    CONFIRM_NOTIFICATION = "confirm_notification"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a kind of email, not a secret


class AccountEmailSender(Protocol):
    def __call__(self, *, user: User, kind: AccountEmailKind, to_email: str) -> object: ...


_sender: AccountEmailSender | None = None


def register_account_email_sender(sender: AccountEmailSender) -> None:
    """Make ``sender`` the one that queues account emails (the last registration wins)."""
    global _sender
    _sender = sender


def account_email_sender() -> AccountEmailSender:
    """The registered sender; refuses loudly rather than drop an email silently."""
    if _sender is None:
        raise ImproperlyConfigured("No account email sender is registered: is 'notifications' in INSTALLED_APPS?")
    return _sender


# --- Marketplaces ----------------------------------------------------------------------------
# A user's default marketplace is a store code, and the list of marketplaces belongs to scraping,
# which accounts must not import. tracking (which imports both) registers it at start-up.

_store_codes: Callable[[], Collection[str]] | None = None


def register_store_codes(codes: Callable[[], Collection[str]]) -> None:
    """Make ``codes()`` the source of valid store codes for a profile's ``default_store``."""
    global _store_codes
    _store_codes = codes


def store_codes() -> Collection[str]:
    """The store codes a profile's ``default_store`` may name; refuses loudly if none registered."""
    if _store_codes is None:
        raise ImproperlyConfigured("No store codes are registered: is 'tracking' in INSTALLED_APPS?")
    return _store_codes()
