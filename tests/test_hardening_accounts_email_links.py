"""Issue 11, item 10: links and tokens in emails survive copy and paste.

Python's email package sends a text part with a line over 78 characters as quoted-printable:
the confirmation link came out as ``?token=3Dlogin.MQ.cw9k2a-1234567=`` + a line break, so a
link copied from the raw message (or from a client showing it) did not work. Each email is
checked here as it arrives at a real SMTP server: in the raw bytes and in the decoded body.
"""

from __future__ import annotations

import email
import email.policy
import re
from urllib.parse import unquote

import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from pricetracker.env import mailer_from_url
from tests.conftest import auth_client
from tests.tracking_factories import make_product, make_tracker, record, success

LONG_SITE = "https://prices.tracker-for-the-whole-family.example.com"
PASSWORD = "correct-horse-battery-9"


@pytest.fixture
def smtp(settings):
    """The loopback SMTP server, also keeping each message's bytes as they came over the wire."""
    # Imported here: other modules load tests.smtp_server as a pytest plugin, which must come first.
    from tests.smtp_server import SMTPServer

    class RawSMTPServer(SMTPServer):
        def __init__(self) -> None:
            super().__init__()
            self.raw: list[bytes] = []

        async def handle_DATA(self, server, session, envelope) -> str:
            self.raw.append(envelope.content)
            return await super().handle_DATA(server, session, envelope)

    server = RawSMTPServer()
    server.start()
    settings.MAILERS = {"default": mailer_from_url(server.url)}
    settings.SITE_URL = LONG_SITE
    try:
        yield server
    finally:
        server.stop()


def text_parts(raw: bytes) -> list[email.message.EmailMessage]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    return [part for part in message.walk() if part.get_content_maintype() == "text"]


def assert_copyable(raw: bytes, *needles: str) -> None:
    """Every needle is in each text/plain part both raw and decoded; no part is quoted-printable."""
    for part in text_parts(raw):
        assert part["Content-Transfer-Encoding"] in ("7bit", "8bit"), part["Content-Transfer-Encoding"]
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        assert max(len(line) for line in payload.splitlines()) <= 998
    plain = [part for part in text_parts(raw) if part.get_content_subtype() == "plain"]
    assert plain
    for part in plain:
        decoded = part.get_content()
        for needle in needles:
            assert needle in decoded
            assert needle.encode() in raw


def test_the_confirmation_link_arrives_whole_and_confirms(api_client, smtp, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            "/api/auth/register/", {"email": "alice@example.com", "password": PASSWORD}, format="json"
        )
    assert response.status_code == 201
    (raw,) = smtp.raw

    link = re.search(rb"(https://\S+/api/auth/email/confirm/\?token=\S+)", raw).group(1).decode()
    assert len(link) > 78  # the case that used to be wrapped
    assert_copyable(raw, link)
    token = unquote(link.partition("token=")[2])

    assert api_client.get("/api/auth/email/confirm/", {"token": token}).status_code == 200
    assert User.objects.get().email_confirmed


def test_the_notification_address_link_arrives_whole(alice, smtp, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        auth_client(alice).patch(
            "/api/auth/me/", {"notification_email": "a.very.long.alerts.address@example.com"}, format="json"
        )
    (raw,) = smtp.raw

    link = re.search(rb"(https://\S+/api/auth/email/confirm/\?token=\S+)", raw).group(1).decode()
    assert_copyable(raw, link)


def test_the_password_reset_uid_token_and_endpoint_arrive_whole(
    api_client, alice, smtp, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post("/api/auth/password/reset/", {"email": "alice@example.com"}, format="json")
    (raw,) = smtp.raw

    uid = re.search(rb"uid: (\S+)", raw).group(1).decode()
    token = re.search(rb"token: (\S+)", raw).group(1).decode()
    assert_copyable(raw, f"{LONG_SITE}/api/auth/password/reset/confirm/", f"uid: {uid}", f"token: {token}")

    response = api_client.post(
        "/api/auth/password/reset/confirm/",
        {"uid": uid, "token": token, "new_password": "tiger-lily-on-the-moon-42"},
        format="json",
    )
    assert response.status_code == 204


def test_an_alert_with_a_long_foreign_title_keeps_its_links_whole(
    alice, store, smtp, django_capture_on_commit_callbacks
):
    title = "Café Crème Kaffeemaschine, Édition Spéciale, Edelstahl, 1,8 Liter, mit Milchaufschäumer " * 2
    product = make_product(store, asin="B0LINKS001", title=title.strip())
    tracker = make_tracker(alice, product, target="50.00")

    with django_capture_on_commit_callbacks(execute=True):
        record(product, success("40.00", title=title.strip()))

    (raw,) = smtp.raw
    assert_copyable(raw, "https://www.amazon.com/dp/B0LINKS001", f"{LONG_SITE}/api/trackers/{tracker.pk}/", "Crème")
    # The HTML part too: its link attribute is not turned into href=3D"...".
    assert b'<a href="https://www.amazon.com/dp/B0LINKS001">' in raw


def test_a_line_over_smtps_limit_still_travels_safely(smtp):
    """Over SMTP's 998-character line limit a part falls back to a wrapping encoding."""
    from notifications.emails import CopySafeEmail

    line = "x" * 1200
    CopySafeEmail(
        "Long", f"{line}\n\n  https://www.amazon.com/dp/B0LINKS002\n", "a@example.com", ["b@example.com"]
    ).send()

    (raw,) = smtp.raw
    assert max(len(raw_line) for raw_line in raw.splitlines()) <= 998
    (plain,) = text_parts(raw)
    assert line in plain.get_content()
    assert "https://www.amazon.com/dp/B0LINKS002" in plain.get_content()


# --- confirming an address without email (operators, local installs) -------------------------


def test_an_operator_confirms_a_login_address_from_the_command_line(make_user, capsys):
    alice = make_user("alice@example.com", email_verified_at=None)

    call_command("confirm_email", "Alice@Example.com")

    alice.refresh_from_db()
    assert alice.email_confirmed
    assert alice.alert_address() == "alice@example.com"
    assert "alice@example.com" in capsys.readouterr().out


def test_the_command_can_confirm_the_notification_address_too(make_user):
    alice = make_user("alice@example.com", email_verified_at=None, notification_email="alerts@example.com")

    call_command("confirm_email", "alice@example.com", "--notification")

    alice.refresh_from_db()
    assert alice.email_confirmed and alice.notification_email_confirmed
    assert alice.alert_address() == "alerts@example.com"


def test_the_command_refuses_an_unknown_account(db):
    with pytest.raises(CommandError, match="No account signs in"):
        call_command("confirm_email", "nobody@example.com")
