"""Issue 11, item 5: account emails must not become a way to mail strangers.

``PATCH /api/auth/me/`` used to send a confirmation link for every change of the notification
address: 30 requests alternating between a stranger's address and another sent the stranger 15
emails in under a second. Address changes are now limited per account, and confirmation emails
per target address whoever asks (and password reset emails per address, silently).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from accounts.models import User
from tests.conftest import auth_client

ME = "/api/auth/me/"
STRANGER = "stranger@example.org"


@pytest.fixture
def limits(settings):
    """Small, known limits: changes per account, confirmations and resets per address."""
    settings.ACCOUNTS_EMAIL_CHANGE_LIMITS = [(5, 3600), (20, 86400)]
    settings.ACCOUNTS_CONFIRMATION_EMAIL_LIMITS = [(3, 3600), (5, 86400)]
    settings.ACCOUNTS_PASSWORD_RESET_EMAIL_LIMITS = [(3, 3600), (6, 86400)]


def mails_to(address: str) -> int:
    return sum(message.to == [address] for message in mail.outbox)


def patch_notification_email(client, address: str):
    return client.patch(ME, {"notification_email": address}, format="json")


def assert_a_clear_429(response, code: str) -> None:
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == code
    assert "Try again in" in body["message"]
    assert 0 < body["retry_after_seconds"] <= 86400
    assert int(response.headers["Retry-After"]) == body["retry_after_seconds"]
    assert "Traceback" not in response.content.decode()


def test_alternating_the_notification_address_no_longer_mails_a_stranger_again_and_again(
    alice, limits, django_capture_on_commit_callbacks
):
    client = auth_client(alice)
    statuses = []
    for attempt in range(30):
        address = STRANGER if attempt % 2 == 0 else "other@example.org"
        with django_capture_on_commit_callbacks(execute=True):  # each email goes out at once
            statuses.append(patch_notification_email(client, address).status_code)

    assert mails_to(STRANGER) == 3
    assert len(mail.outbox) == 5  # the account's change limit
    assert 429 in statuses


def test_an_account_over_its_change_limit_gets_a_clear_429_and_keeps_its_address(alice, limits):
    client = auth_client(alice)
    for number in range(5):
        assert patch_notification_email(client, f"alerts{number}@example.com").status_code == 200

    response = patch_notification_email(client, "alerts-new@example.com")

    assert_a_clear_429(response, "email_change_limit")
    alice.refresh_from_db()
    assert alice.notification_email == "alerts4@example.com"


def test_many_accounts_aiming_at_one_address_send_it_only_a_few_confirmations(
    make_user, limits, django_capture_on_commit_callbacks
):
    responses = []
    with django_capture_on_commit_callbacks(execute=True):
        for number in range(8):
            user = make_user(f"mallory{number}@example.com")
            responses.append(patch_notification_email(auth_client(user), STRANGER))

    assert mails_to(STRANGER) == 3
    assert [response.status_code for response in responses] == [200] * 3 + [429] * 5
    assert_a_clear_429(responses[-1], "email_limit")
    assert STRANGER in responses[-1].json()["message"]
    # A refused change is not made: the address was not taken on by the refused accounts.
    assert User.objects.filter(notification_email=STRANGER).count() == 3


def test_the_address_limit_counts_per_hour_and_per_day(make_user, limits, django_capture_on_commit_callbacks):
    def aim(number: int) -> int:
        user = make_user(f"mallory{number}@example.com")
        with django_capture_on_commit_callbacks(execute=True):
            return patch_notification_email(auth_client(user), STRANGER).status_code

    start = timezone.now().replace(hour=1, minute=0, second=0, microsecond=0) + timedelta(days=1)
    with time_machine.travel(start, tick=False):
        assert [aim(n) for n in range(4)] == [200, 200, 200, 429]
    with time_machine.travel(start + timedelta(hours=1), tick=False):
        assert [aim(n) for n in range(4, 7)] == [200, 200, 429]  # 5 a day
    with time_machine.travel(start + timedelta(hours=5), tick=False):
        user = make_user("late@example.com")
        response = patch_notification_email(auth_client(user), STRANGER)
        assert_a_clear_429(response, "email_limit")
        # The wait runs to the end of the day's window, not just the hour.
        assert response.json()["retry_after_seconds"] > 3600
    with time_machine.travel(start + timedelta(days=1), tick=False):
        assert aim(7) == 200

    assert mails_to(STRANGER) == 6


def test_resending_to_an_address_over_its_limit_is_a_429_and_sends_nothing(
    make_user, limits, django_capture_on_commit_callbacks
):
    pending = make_user("pending@example.com", notification_email=STRANGER)
    for number in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            patch_notification_email(auth_client(make_user(f"mallory{number}@example.com")), STRANGER)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client(pending).post("/api/auth/email/resend/")

    assert_a_clear_429(response, "email_limit")
    assert mail.outbox == []


def test_resend_counts_against_the_address_limit(make_user, limits, django_capture_on_commit_callbacks):
    user = make_user("alice@example.com", email_verified_at=None)
    client = auth_client(user)
    statuses = []
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(6):
            statuses.append(client.post("/api/auth/email/resend/").status_code)

    assert statuses == [200, 200, 200, 429, 429, 429]
    assert mails_to("alice@example.com") == 3


def test_registration_still_creates_the_account_when_its_address_had_its_share(
    api_client, make_user, limits, django_capture_on_commit_callbacks
):
    for number in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            patch_notification_email(auth_client(make_user(f"mallory{number}@example.com")), STRANGER)

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            "/api/auth/register/", {"email": STRANGER, "password": "correct-horse-battery-9"}, format="json"
        )

    assert response.status_code == 201
    assert User.objects.filter(email=STRANGER).exists()
    assert mails_to(STRANGER) == 3  # the new owner asks for a link later (resend)


def test_password_reset_emails_to_one_address_are_capped_without_saying_so(
    api_client, alice, limits, django_capture_on_commit_callbacks
):
    responses = []
    with django_capture_on_commit_callbacks(execute=True):
        for number in range(10):
            # Each from another address, so the per-client throttle never answers.
            responses.append(
                api_client.post(
                    "/api/auth/password/reset/",
                    {"email": "alice@example.com"},
                    format="json",
                    REMOTE_ADDR=f"198.51.100.{number + 1}",
                )
            )

    assert {response.status_code for response in responses} == {202}
    assert len({response.content for response in responses}) == 1
    assert mails_to("alice@example.com") == 3


def test_the_limits_are_on_by_default(settings):
    assert settings.ACCOUNTS_CONFIRMATION_EMAIL_LIMITS
    assert all(count <= 5 for count, _ in settings.ACCOUNTS_CONFIRMATION_EMAIL_LIMITS)
    assert settings.ACCOUNTS_EMAIL_CHANGE_LIMITS
    assert settings.ACCOUNTS_PASSWORD_RESET_EMAIL_LIMITS


def test_the_profile_patch_documents_its_429(db):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)

    assert "429" in schema["paths"]["/api/auth/me/"]["patch"]["responses"]


@pytest.mark.django_db(transaction=True)
def test_eight_requests_at_once_for_one_address_get_exactly_its_share():
    from django.db import transaction

    from accounts.models import MailQuota
    from tests.concurrency import run_concurrently

    def request() -> int | None:
        with transaction.atomic():
            return MailQuota.objects.consume(
                scope="confirm-to", subject=STRANGER, limits=[(3, 3600), (5, 86400)], now=timezone.now()
            )

    waits = run_concurrently([request] * 8)

    assert len(waits) == 8
    assert waits.count(None) == 3
    assert all(wait > 0 for wait in waits if wait is not None)
    assert sorted(MailQuota.objects.values_list("count", flat=True)) == [3, 3]
