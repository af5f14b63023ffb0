"""django-q2's own tools, as the README documents them: ``manage.py qinfo`` and ``qmonitor``.

Both need the optional ``blessed`` package; without it they printed "Blessed is not installed"
and exited 0, so a health script calling ``qinfo`` could not tell. They run here as the operator
runs them, in subprocesses on the test database (and its broker and cache); ``qmonitor`` is
interactive, so it gets a pseudo-terminal, must draw its screen and must quit on ``q``.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from tests.cluster import ROOT, cluster_env

pytestmark = pytest.mark.django_db(transaction=True)

BLESSED_MISSING = "Blessed is not installed"
# Generous: a subprocess imports Django and the project on a shared, busy machine.
START_TIMEOUT = 90


def test_qinfo_prints_the_cluster_summary():
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "qinfo"],
        cwd=ROOT,
        env=cluster_env(),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert BLESSED_MISSING not in result.stdout
    for label in ("Clusters", "Workers", "Queued", "Successes", "Failures", "Schedules"):
        assert label in result.stdout


def read_until(fd: int, marker: bytes, *, timeout: float) -> bytes:
    """Everything the terminal shows until ``marker`` appears (or the process ends or time runs out)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side closed (the process exited)
            break
        if not chunk:
            break
        seen += chunk
    return seen


def test_qmonitor_draws_its_screen_in_a_terminal_and_quits_on_q():
    controller, terminal = pty.openpty()
    # A real terminal's size: blessed lays the columns out by width.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "qmonitor"],
        cwd=ROOT,
        env=cluster_env(TERM="xterm-256color"),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    try:
        screen = read_until(controller, b"Press q to quit", timeout=START_TIMEOUT)
        assert BLESSED_MISSING.encode() not in screen
        assert b"Press q to quit" in screen, screen[-2000:]
        assert b"Host" in screen and b"State" in screen

        os.write(controller, b"q")
        read_until(controller, b"\0never", timeout=5)  # drain, so the process never blocks writing

        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)
