"""pytest plugin: a real SMTP server on loopback (aiosmtpd) and Django's mailer pointed at it.

Use it from a test module with ``pytest_plugins = ["tests.smtp_server"]``.

How Django's mailer is pointed at it: pytest-django calls Django's ``setup_test_environment``,
which in Django 6.1 replaces every ``MAILERS`` alias with the locmem backend for the whole
session. Django reads ``settings.MAILERS`` afresh each time it builds a connection
(``django.core.mail.handler.MailersHandler``; nothing is cached), so overriding it with
pytest-django's ``settings`` fixture for one test is enough:
``settings.MAILERS = {"default": mailer_from_url("smtp://127.0.0.1:<port>")}``, the same
mapping production uses for ``EMAIL_URL``. ``test_notifications_delivery`` asserts this.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from pricetracker.env import mailer_from_url


@dataclass(frozen=True)
class ReceivedMessage:
    """One message as the SMTP server accepted it."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def body(self, subtype: str) -> str:
        """The ``text/<subtype>`` part (``plain`` or ``html``), decoded."""
        part = self.message.get_body(preferencelist=(subtype,))
        assert part is not None, f"no text/{subtype} part"
        return part.get_content()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SMTPServer:
    """An aiosmtpd server on 127.0.0.1 that keeps what it receives; can be stopped and restarted."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.messages: list[ReceivedMessage] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}?timeout=5"

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's hook name
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(
                ReceivedMessage(mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos), message=parsed)
            )
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller = Controller(self, hostname=self.host, port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp_server(settings) -> Iterator[SMTPServer]:
    """A started loopback SMTP server; Django's default mailer sends to it for this test."""
    server = SMTPServer()
    server.start()
    settings.MAILERS = {"default": mailer_from_url(server.url)}
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_down(settings) -> str:
    """Django's default mailer points at a loopback port where nothing listens."""
    url = f"smtp://127.0.0.1:{free_port()}?timeout=5"
    settings.MAILERS = {"default": mailer_from_url(url)}
    return url
