"""``manage.py serve``: the whole app in one command (web server + a django-q2 cluster).

For a laptop or a single small host. Production runs the same two processes under a process
manager instead: ``gunicorn pricetracker.wsgi`` and one or more ``manage.py qcluster``.

``serve --demo`` runs an offline demo against a fake amazon.com, in a database of its own
(see :mod:`pricetracker.demo`). With ``PROMETHEUS_MULTIPROC_DIR`` set, the directory is created
and emptied before the web workers start, so ``/metrics`` adds up every worker's request
latency (see :mod:`pricetracker.metrics`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from fakestore.markets import MARKETS
from pricetracker import demo
from pricetracker.env import env_str

# How long each child gets to stop on SIGTERM before it is killed.
STOP_GRACE_SECONDS = 20
# gunicorn's access log without query strings (%(U)s, not %(r)s): links such as email
# confirmations carry one-time tokens there, and logs must never hold secrets.
ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'


class Command(BaseCommand):
    help = (
        "Migrate, register schedules, then run the web server (gunicorn) and a qcluster together. "
        "Ctrl-C stops both. For production, run gunicorn and `manage.py qcluster` separately. "
        "--demo: an offline demo with a fake amazon.com and its own database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8000, help="Port to bind (default 8000).")
        parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (default 2).")
        parser.add_argument("--no-cluster", action="store_true", help="Run only the web server.")
        parser.add_argument(
            "--demo",
            action="store_true",
            help="Offline demo: a fake amazon.com, demo trackers whose prices cross their targets, alert "
            "emails on this console. Uses $DATA_DIR/demo.sqlite3 (reset on each start), never your data.",
        )

    def handle(self, *args: object, **options: object) -> None:
        host = str(options["host"])
        port = int(str(options["port"]))
        # Before anything is migrated, reset or printed: a taken port used to show the banner and
        # its URLs (of whatever else listens there) and only then fail in gunicorn.
        check_port_free(host, port)
        base = base_url(host, port)
        if options["demo"] and os.environ.get(demo.DEMO_FLAG) != "1":
            self._exec_demo(site_url=base)  # does not return
        env = dict(os.environ)
        # Links in emails (sent by the cluster, and by the web workers on registration) point at
        # this server unless SITE_URL says otherwise: with --port 18101 they pointed at port 8000.
        if env_str("SITE_URL") is None:
            env["SITE_URL"] = base
        cluster = not options["no_cluster"]
        fake_store = None
        try:
            if options["demo"]:
                # Settings now point at the demo database (demo_environ); refuse anything else.
                if Path(str(settings.DATABASES["default"]["NAME"])) != demo.demo_database(settings.DATA_DIR):
                    raise CommandError("The demo must run on its own database; start it with `serve --demo`.")
                fake_store = demo.start_fake_store()
                env["AMAZON_BASE_URL"] = fake_store.base_url
                # Every marketplace on the same fake store, told apart by a path prefix.
                env["STORE_BASE_URLS"] = ",".join(f"{code}={fake_store.market_url(code)}" for code in MARKETS)
            self._prepare_database()
            logins = demo.seed() if options["demo"] else None
            self._prepare_metrics_dir()
            web_workers = int(str(options["web_workers"]))
            self._run(env, host=host, port=port, web_workers=web_workers, cluster=cluster, logins=logins)
        finally:
            if fake_store is not None:
                fake_store.stop()

    def _exec_demo(self, *, site_url: str) -> None:
        """Replace this process by ``serve --demo`` running on the demo database (same pid)."""
        database = demo.demo_database(settings.DATA_DIR)
        demo.reset_demo_database(database)
        self.stdout.write(f"Starting the offline demo on its own database, {database} (reset on each start)...")
        sys.stdout.flush()
        sys.stderr.flush()
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        env = demo.demo_environ(os.environ, database=database, site_url=site_url)
        os.execve(sys.executable, [sys.executable, manage, *sys.argv[1:]], env)  # noqa: S606

    def _prepare_database(self) -> None:
        self.stdout.write("Preparing the database (migrate, cache table, schedules)...")
        call_command("migrate", interactive=False, verbosity=0)  # also creates the cache table (apps.py)
        call_command("setup_schedules", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, verbosity=0)

    def _prepare_metrics_dir(self) -> None:
        # Files left by a previous run's workers would be added to this run's figures.
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
            for stale in Path(directory).glob("*.db"):
                stale.unlink(missing_ok=True)

    def _start_children(
        self,
        children: list[tuple[str, subprocess.Popen[bytes]]],
        env: dict[str, str],
        *,
        host: str,
        port: int,
        web_workers: int,
        cluster: bool,
    ) -> None:
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        web_cmd = [
            sys.executable, "-m", "gunicorn", "pricetracker.wsgi:application",
            "--bind", f"{host}:{port}",
            "--workers", str(web_workers),
            "--access-logfile", "-",
            "--access-logformat", ACCESS_LOG_FORMAT,
            "--graceful-timeout", "10",
            "--no-control-socket",  # several instances (tests, demo) on one host must not share it
        ]  # fmt: skip
        # Each child gets its own session: Ctrl-C in the terminal reaches only this process, which
        # then signals each child's main process. A SIGTERM to the whole process group can hang
        # qcluster (django-q2 issue 346; docs/decisions.md, "django-q2: SIGTERM to the process
        # group can hang qcluster").
        children.append(("web", subprocess.Popen(web_cmd, env=env, start_new_session=True)))  # noqa: S603
        if cluster:
            cluster_cmd = [sys.executable, manage, "qcluster"]
            children.append(("cluster", subprocess.Popen(cluster_cmd, env=env, start_new_session=True)))  # noqa: S603

    def _run(
        self,
        env: dict[str, str],
        *,
        host: str,
        port: int,
        web_workers: int,
        cluster: bool,
        logins: demo.DemoLogins | None,
    ) -> None:
        """Start the children, then wait for Ctrl-C / SIGTERM or a child's exit; stop them all."""
        stopping = False

        def request_stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        # Installed before the children start, so a Ctrl-C at any moment from here stops them.
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        children: list[tuple[str, subprocess.Popen[bytes]]] = []
        exit_code = 0
        try:
            self._start_children(children, env, host=host, port=port, web_workers=web_workers, cluster=cluster)
            self._banner(
                base_url(host, port),
                cluster=cluster,
                logins=logins,
                fake_store_url=env.get("AMAZON_BASE_URL"),
                site_url=env.get("SITE_URL"),
            )
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

    def _banner(
        self,
        base: str,
        *,
        cluster: bool,
        logins: demo.DemoLogins | None,
        fake_store_url: str | None,
        site_url: str | None,
    ) -> None:
        title = "pricetracker demo" if logins else "pricetracker"
        self.stdout.write(
            self.style.SUCCESS(f"\n{title} is running (database: {settings.DATABASES['default']['ENGINE']}).")
        )
        self.stdout.write(f"  API:        {base}/api/")
        self.stdout.write(f"  API docs:   {base}/api/docs/")
        self.stdout.write(f"  Admin:      {base}/admin/")
        self.stdout.write(f"  Health:     {base}/api/health/")
        self.stdout.write(f"  Metrics:    {base}/metrics")
        if site_url:
            self.stdout.write(f"  Email links: {site_url} (SITE_URL)")
        if cluster:
            self.stdout.write(f"  Workers:    {settings.Q_WORKERS} (Q_WORKERS)")
        if logins is None:
            self.stdout.write("  Create an admin user with: uv run python manage.py createsuperuser")
        else:
            self.stdout.write(f"  Demo user:  {logins.user_email} / {logins.user_password}  (API login)")
            self.stdout.write(f"  Admin user: {logins.admin_email} / {logins.admin_password}  (admin login)")
            self.stdout.write(f"  Fake store: {fake_store_url}/dp/<ASIN>")
            self.stdout.write(
                f"  Get a token: curl -s -X POST {base}/api/auth/token/ -H 'Content-Type: application/json' "
                f'-d \'{{"email": "{logins.user_email}", "password": "{logins.user_password}"}}\''
            )
            self.stdout.write(
                f"  {len(demo.DEMO_PRODUCTS)} trackers; prices change every {demo.STEP_SECONDS} s and cross their "
                "targets within a few minutes. Alert emails are printed here."
            )
        self.stdout.write("Press Ctrl-C to stop.\n")


def base_url(host: str, port: int) -> str:
    """``http://host:port`` of the server; a wildcard address becomes loopback (a link to
    0.0.0.0 opens nothing), an IPv6 address gets its brackets."""
    if host in {"0.0.0.0", "", "::"}:  # noqa: S104 - compared, not bound
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`CommandError` naming ``--port`` if ``host:port`` cannot be bound.

    Binds as gunicorn does (SO_REUSEADDR, so a port in TIME_WAIT after a restart is free) and
    releases it at once; a server grabbing the port in between still makes gunicorn fail loudly.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise CommandError(f"Cannot bind to {host!r}: {exc}. Give another address with --host.") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"Port {port} on {host} is already in use (another serve, or another server). "
                    f"Stop it, or choose a free port with --port, e.g. --port {port + 1}."
                ) from None
            raise CommandError(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}. Choose another --host or --port."
            ) from None


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
