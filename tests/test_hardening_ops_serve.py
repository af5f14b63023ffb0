"""``manage.py serve``: a taken port fails first and clearly; email links follow its address.

The children (gunicorn, qcluster) are replaced by fakes that record how they were started: what
matters here is what ``serve`` checks and hands them, not the servers themselves
(``tests/test_demo.py`` runs the real thing).
"""

from __future__ import annotations

import io
import signal
import socket
from collections.abc import Iterator
from contextlib import closing

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from pricetracker.management.commands import serve


@pytest.fixture(autouse=True)
def _signals_restored() -> Iterator[None]:
    """serve installs SIGINT/SIGTERM handlers; the test process gets its own back."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.fixture
def prepared(monkeypatch) -> list[str]:
    """Database preparation recorded instead of run (migrate, cache table, schedules)."""
    calls: list[str] = []
    monkeypatch.setattr(serve.Command, "_prepare_database", lambda self: calls.append("prepare"))
    return calls


class FakeChild:
    """A child process that has already exited with code 0."""

    def __init__(self, command: list[str], *, env: dict[str, str], **kwargs: object) -> None:
        self.command = command
        self.env = env
        self.returncode = 0

    def poll(self) -> int:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        return self.returncode


@pytest.fixture
def children(monkeypatch) -> list[FakeChild]:
    started: list[FakeChild] = []

    def popen(command: list[str], *, env: dict[str, str], **kwargs: object) -> FakeChild:
        child = FakeChild(command, env=env, **kwargs)
        started.append(child)
        return child

    monkeypatch.setattr(serve.subprocess, "Popen", popen)
    return started


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_serve(*args: str) -> tuple[str, str | None]:
    """stdout of ``serve`` and the message of the CommandError it ended with, if any."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("serve", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), None


def test_a_taken_port_fails_before_anything_runs_or_prints_and_suggests_another(prepared, children):
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        output, error = run_serve("--port", str(port), "--no-cluster")

    assert error is not None and f"Port {port}" in error and "--port" in error
    assert "API:" not in output and "is running" not in output
    assert prepared == [] and children == []


def test_serve_points_email_links_at_its_own_address_in_every_child(monkeypatch, prepared, children):
    monkeypatch.delenv("SITE_URL", raising=False)
    port = free_port()

    output, _ = run_serve("--port", str(port))

    assert [child.env["SITE_URL"] for child in children] == [f"http://127.0.0.1:{port}"] * 2
    assert f"Email links: http://127.0.0.1:{port}" in output


def test_a_configured_site_url_is_kept(monkeypatch, prepared, children):
    monkeypatch.setenv("SITE_URL", "https://tracker.example.com")

    run_serve("--port", str(free_port()))

    assert [child.env["SITE_URL"] for child in children] == ["https://tracker.example.com"] * 2


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:18101"),
        ("0.0.0.0", "http://127.0.0.1:18101"),  # noqa: S104 - a wildcard address, not bound here
        ("::1", "http://[::1]:18101"),
        ("tracker.local", "http://tracker.local:18101"),
    ],
)
def test_the_base_url_is_one_a_browser_can_open(host, expected):
    assert serve.base_url(host, 18101) == expected
