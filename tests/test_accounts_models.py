"""User model: where alerts may go (``User.alert_address``) and the confirmed flags."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.models import User


def make(**fields) -> User:
    """An unsaved user; alert_address needs no database."""
    fields.setdefault("email", "alice@example.com")
    return User(**fields)


NOW = timezone.now()


def test_alerts_go_to_the_confirmed_login_email():
    assert make(email_verified_at=NOW).alert_address() == "alice@example.com"


def test_alerts_go_nowhere_while_the_login_email_is_unconfirmed():
    assert make(email_verified_at=None).alert_address() is None


def test_alerts_go_to_a_confirmed_notification_email():
    alice = make(email_verified_at=NOW, notification_email="alerts@example.com", notification_email_verified_at=NOW)

    assert alice.alert_address() == "alerts@example.com"


def test_a_confirmed_notification_email_suffices_without_a_confirmed_login_email():
    alice = make(email_verified_at=None, notification_email="alerts@example.com", notification_email_verified_at=NOW)

    assert alice.alert_address() == "alerts@example.com"


def test_an_unconfirmed_notification_email_falls_back_to_the_confirmed_login_email():
    alice = make(email_verified_at=NOW, notification_email="alerts@example.com")

    assert alice.alert_address() == "alice@example.com"


def test_nothing_is_confirmed_means_no_alert_address():
    assert make(notification_email="alerts@example.com").alert_address() is None


def test_an_inactive_user_gets_no_alerts():
    assert make(email_verified_at=NOW, is_active=False).alert_address() is None


@pytest.mark.parametrize(
    ("notification_email", "expected"),
    [("", "alice@example.com"), ("alerts@example.com", "alerts@example.com")],
)
def test_without_required_verification_unconfirmed_addresses_are_used(settings, notification_email, expected):
    settings.ACCOUNTS_REQUIRE_EMAIL_VERIFICATION = False

    assert make(notification_email=notification_email).alert_address() == expected


def test_the_confirmed_flags_follow_the_timestamps():
    alice = make(email_verified_at=NOW, notification_email="", notification_email_verified_at=NOW)

    assert alice.email_confirmed is True
    # A timestamp without an address confirms nothing.
    assert alice.notification_email_confirmed is False
    assert make().email_confirmed is False
