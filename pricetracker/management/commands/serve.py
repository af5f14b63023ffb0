"""``manage.py serve``: the whole app in one command (web server + a django-q2 cluster).

For a laptop or a single small host. Production runs the same two processes under a process
manager instead: ``gunicorn pricetracker.wsgi`` and one or more ``manage.py qcluster``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

# How long each child gets to stop on SIGTERM before it is killed.
STOP_GRACE_SECONDS = 20


class Command(BaseCommand):
    help = (
        "Migrate, register schedules, then run the web server (gunicorn) and a qcluster together. "
        "Ctrl-C stops both. For production, run gunicorn and `manage.py qcluster` separately."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8000, help="Port to bind (default 8000).")
        parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (default 2).")
        parser.add_argument("--no-cluster", action="store_true", help="Run only the web server.")

    def handle(self, *args: object, **options: object) -> None:
        host = str(options["host"])
        port = int(options["port"])  # type: ignore[arg-type]
        env = dict(os.environ)

        self.stdout.write("Preparing the database (migrate, cache table, schedules)...")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("createcachetable", verbosity=0)
        call_command("setup_schedules", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, verbosity=0)

        manage = str(Path(settings.BASE_DIR) / "manage.py")
        children: list[tuple[str, subprocess.Popen[bytes]]] = []
        web_cmd = [
            sys.executable, "-m", "gunicorn", "pricetracker.wsgi:application",
            "--bind", f"{host}:{port}",
            "--workers", str(options["web_workers"]),
            "--access-logfile", "-",
            "--graceful-timeout", "10",
            "--no-control-socket",  # several instances (tests, demo) on one host must not share it
        ]  # fmt: skip
        # Each child gets its own session: Ctrl-C in the terminal reaches only this process, which
        # then signals each child's main process. A SIGTERM to the whole process group can hang
        # qcluster (django-q2 issue 346, FINDINGS.md).
        children.append(("web", subprocess.Popen(web_cmd, env=env, start_new_session=True)))  # noqa: S603
        if not options["no_cluster"]:
            cluster_cmd = [sys.executable, manage, "qcluster"]
            children.append(("cluster", subprocess.Popen(cluster_cmd, env=env, start_new_session=True)))  # noqa: S603

        base = f"http://{host}:{port}"
        self.stdout.write(
            self.style.SUCCESS(f"\npricetracker is running (database: {settings.DATABASES['default']['ENGINE']}).")
        )
        self.stdout.write(f"  API:        {base}/api/")
        self.stdout.write(f"  API docs:   {base}/api/docs/")
        self.stdout.write(f"  Admin:      {base}/admin/")
        self.stdout.write(f"  Health:     {base}/api/health/")
        self.stdout.write(f"  Workers:    {settings.Q_WORKERS} (Q_WORKERS)" if not options["no_cluster"] else "")
        self.stdout.write("  Create an admin user with: uv run python manage.py createsuperuser")
        self.stdout.write("Press Ctrl-C to stop.\n")

        stopping = False

        def request_stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

        exit_code = 0
        try:
            while not stopping:
                for name, proc in children:
                    if proc.poll() is not None:
                        self.stderr.write(f"The {name} process exited with code {proc.returncode}; stopping.")
                        exit_code = proc.returncode or 1
                        stopping = True
                        break
                time.sleep(0.5)
        finally:
            self.stdout.write("\nStopping...")
            _stop_all(children)
            self.stdout.write("Stopped.")
        if exit_code:
            raise CommandError(f"A child process failed (exit code {exit_code}).")


def _stop_all(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    """SIGTERM each child's main process, wait, then SIGKILL its whole group as a last resort."""
    for _, proc in children:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for _, proc in children:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
