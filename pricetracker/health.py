"""``GET /api/health/``: is this installation able to do its job?

No authentication (load balancers and uptime checks call it), so it never includes secrets,
hostnames, DSNs or error texts that could contain them: a failing check says ``"ok": false``
and the details go to the server log.

The response shape is stable::

    {"status": "ok" | "degraded" | "unhealthy", "checks": {name: {"ok": bool, ...}}}

Checks (each cheap: primary-key lookups or range scans on an index; scrape runs are only read
inside a 24-hour ``created_at`` window):

``database``          a ``SELECT 1``.
``queue``             tasks waiting in the django-q2 broker (ORM or Redis).
``cluster``           live django-q2 clusters and their workers (heartbeats in the shared cache),
                      and, as a fallback signal, when the dispatcher task last finished.
``overdue_products``  products due for more than ``OVERDUE_AFTER`` with an enabled tracker, no
                      live claim and their store enabled: the workers are not keeping up.
``stores``            per store: breaker state, last successful scrape, runs and block rate
                      over the last hour and day, overdue products.
``outbox``            alert emails due for sending (PENDING/FAILED past their next attempt).

**Status rules.** ``unhealthy`` (HTTP 503) when the database or the broker fails, or when the
cluster is *required* and has shown no sign of life (no heartbeat, no finished dispatcher run)
for ``HEALTH_CLUSTER_MAX_SILENCE_MINUTES`` (default 5). The cluster is required when
``HEALTH_REQUIRE_CLUSTER`` is on, which is its default whenever ``DEBUG`` is off; a laptop running
only the web server then sees ``degraded``, not a failure. ``degraded`` (HTTP 200) when any other
check is not ok: cluster missing but not required, overdue products, a store's breaker not
closed, alert emails stuck for more than ``OUTBOX_STALE_AFTER``. Otherwise ``ok``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications.models import Notification, NotificationStatus
from scraping.models import Store
from tracking.models import Product, RunStatus, ScrapeRun, TrackingConfig

logger = logging.getLogger(__name__)

# A product due for longer than this (with an enabled tracker and no claim) is overdue: the
# dispatcher runs every minute, so ten minutes means it or the workers are not keeping up.
OVERDUE_AFTER = timedelta(minutes=10)
# An alert due for longer than this has been missed by the outbox sweep (it runs every minute).
OUTBOX_STALE_AFTER = timedelta(minutes=10)
# The django-q2 schedule whose last task tells when a worker last finished the dispatcher.
DISPATCH_SCHEDULE = "tracking.dispatch"
# Checks whose failure makes the installation unhealthy (503) whatever the configuration.
CRITICAL_CHECKS = frozenset({"database", "queue"})


# --- Figures shared with pricetracker.metrics ------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """What the heartbeats in the shared cache and the dispatcher's last task say."""

    clusters: int
    workers: int
    newest_heartbeat: datetime | None
    last_dispatch: datetime | None


def cluster_status() -> ClusterStatus:
    """Live clusters (django-q2 ``Stat``) and when the dispatcher task last finished.

    A cluster saves its ``Stat`` to the cache every guard cycle with a 3-second expiry, so only
    live clusters are listed; that needs a cache shared by all processes (the DB cache by
    default, FINDINGS.md). The dispatcher's last task (its ``Schedule.task`` id, a primary-key
    lookup in django-q2's task table) is the fallback: some worker ran it that recently.
    """
    from django_q.models import Schedule, Task
    from django_q.status import Stat

    stats = Stat.get_all()
    heartbeats = [stat.timestamp for stat in stats if getattr(stat, "timestamp", None)]
    last_dispatch = None
    task_id = Schedule.objects.filter(name=DISPATCH_SCHEDULE).values_list("task", flat=True).first()
    if task_id:
        last_dispatch = Task.objects.filter(pk=task_id).values_list("stopped", flat=True).first()
    return ClusterStatus(
        clusters=len(stats),
        workers=sum(len(stat.workers or []) for stat in stats),
        newest_heartbeat=max(heartbeats, default=None),
        last_dispatch=last_dispatch,
    )


def queue_depth() -> int:
    """Tasks waiting in the broker (not yet taken by a cluster); ORM and Redis brokers alike."""
    from django_q.brokers import get_broker

    return int(get_broker().queue_size())


@dataclass
class StoreRuns:
    """Finished scrape runs of one store in a window, by status and by failure kind."""

    by_status: dict[str, int] = field(default_factory=dict)
    failures_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return sum(self.by_status.values())

    @property
    def blocked(self) -> int:
        return self.by_status.get(RunStatus.BLOCKED, 0)

    @property
    def block_rate(self) -> float | None:
        """BLOCKED / finished runs; None when nothing finished (no rate to speak of)."""
        return self.blocked / self.finished if self.finished else None


def store_runs(*, now: datetime) -> dict[int, dict[str, StoreRuns]]:
    """``{store_id: {"1h": StoreRuns, "24h": StoreRuns}}`` from one query over the last 24 hours.

    Windowed by ``created_at`` (index ``scrape_runs_created_idx``): never a full scan of the
    ever-growing run table. The hour is a conditional count inside the same query.
    """
    hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(hours=24)
    rows = (
        ScrapeRun.objects.filter(created_at__gte=day_ago)
        .exclude(status=RunStatus.RUNNING)
        .values("product__store_id", "status", "error_kind")
        .annotate(day=Count("pk"), hour=Count("pk", filter=Q(created_at__gte=hour_ago)))
        .order_by()
    )
    result: dict[int, dict[str, StoreRuns]] = {}
    for row in rows:
        windows = result.setdefault(row["product__store_id"], {"1h": StoreRuns(), "24h": StoreRuns()})
        for window, count in (("1h", row["hour"]), ("24h", row["day"])):
            if not count:
                continue
            runs = windows[window]
            runs.by_status[row["status"]] = runs.by_status.get(row["status"], 0) + count
            if row["status"] != RunStatus.SUCCESS:
                kind = row["error_kind"] or "unknown"
                runs.failures_by_kind[kind] = runs.failures_by_kind.get(kind, 0) + count
    return result


def overdue_products(*, now: datetime) -> dict[int, int]:
    """``{store_id: count}`` of products overdue by more than ``OVERDUE_AFTER``.

    Overdue: due (``next_scrape_at``, index ``products_due_idx``) before ``now - OVERDUE_AFTER``,
    no live claim, at least one enabled tracker. Disabled stores are left out: pausing a store
    is deliberate, not a fault. Products in failure backoff are not due, so not counted.
    """
    enabled_tracker = TrackingConfig.objects.filter(product=OuterRef("pk"), enabled=True)
    rows = (
        Product.objects.filter(next_scrape_at__lt=now - OVERDUE_AFTER, store__enabled=True)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .filter(Exists(enabled_tracker))
        .values("store_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {row["store_id"]: row["n"] for row in rows}


def last_success(*, store_id: int) -> datetime | None:
    """When the store's newest successful run finished (index ``scrape_runs_status_idx``)."""
    return (
        ScrapeRun.objects.filter(status=RunStatus.SUCCESS, product__store_id=store_id)
        .order_by("-created_at")
        .values_list("finished_at", flat=True)
        .first()
    )


def outbox_backlog(*, now: datetime) -> dict[str, object]:
    """Alert emails due for sending and how long the oldest has waited (index ``notifications_due_idx``)."""
    due = Notification.objects.filter(
        status__in=[NotificationStatus.PENDING, NotificationStatus.FAILED], next_attempt_at__lte=now
    )
    oldest = due.order_by("next_attempt_at").values_list("next_attempt_at", flat=True).first()
    return {
        "due": due.count(),
        "oldest_due_age_seconds": _age(oldest, now),
        "held": Notification.objects.filter(status=NotificationStatus.HELD).count(),
        "failed_permanently": Notification.objects.filter(
            status=NotificationStatus.FAILED, next_attempt_at__isnull=True
        ).count(),
    }


# --- Checks ---------------------------------------------------------------------------------


def _age(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else round(max(0.0, (now - moment).total_seconds()), 1)


def _round(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 4)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def check_database() -> dict[str, object]:
    """Run a trivial query on the default database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "vendor": connection.vendor}


def check_queue(now: datetime) -> dict[str, object]:
    """The broker answers; how many tasks wait for a worker."""
    return {"ok": True, "depth": queue_depth()}


def check_cluster(now: datetime) -> dict[str, object]:
    """Some cluster is alive: a heartbeat now, or a dispatcher run within the allowed silence."""
    status = cluster_status()
    silence = timedelta(minutes=settings.HEALTH_CLUSTER_MAX_SILENCE_MINUTES)
    alive = status.clusters > 0 or (status.last_dispatch is not None and now - status.last_dispatch <= silence)
    return {
        "ok": alive,
        "required": settings.HEALTH_REQUIRE_CLUSTER,
        "clusters": status.clusters,
        "workers": status.workers,
        "heartbeat_age_seconds": _age(status.newest_heartbeat, now),
        "last_dispatch_at": _iso(status.last_dispatch),
        "last_dispatch_age_seconds": _age(status.last_dispatch, now),
        "max_silence_seconds": int(silence.total_seconds()),
    }


def check_overdue(now: datetime) -> dict[str, object]:
    """No product waits much longer than its schedule says."""
    count = sum(overdue_products(now=now).values())
    return {"ok": count == 0, "count": count, "older_than_minutes": int(OVERDUE_AFTER.total_seconds() // 60)}


def check_stores(now: datetime) -> dict[str, object]:
    """Per store: breaker, last success, runs and block rates, overdue products."""
    runs = store_runs(now=now)
    overdue = overdue_products(now=now)
    stores: dict[str, object] = {}
    ok = True
    for store in Store.objects.order_by("code"):
        windows = runs.get(store.pk, {"1h": StoreRuns(), "24h": StoreRuns()})
        if store.enabled and store.breaker_state != Store.BreakerState.CLOSED:
            ok = False
        stores[store.code] = {
            "enabled": store.enabled,
            "breaker": {
                "state": store.breaker_state,
                "opened_at": _iso(store.breaker_opened_at),
                "reason": store.breaker_reason,
            },
            "last_success_at": _iso(last_success(store_id=store.pk)),
            "overdue_products": overdue.get(store.pk, 0),
            **{
                f"runs_{window}": {
                    "finished": windows[window].finished,
                    "blocked": windows[window].blocked,
                    "block_rate": _round(windows[window].block_rate),
                }
                for window in ("1h", "24h")
            },
        }
    return {"ok": ok, "stores": stores}


def check_outbox(now: datetime) -> dict[str, object]:
    """Alert emails are not stuck: none due for longer than ``OUTBOX_STALE_AFTER``."""
    backlog = outbox_backlog(now=now)
    oldest = backlog["oldest_due_age_seconds"]
    stuck = oldest is not None and oldest > OUTBOX_STALE_AFTER.total_seconds()  # type: ignore[operator]
    return {"ok": not stuck, **backlog}


CHECKS: dict[str, Callable[[datetime], dict[str, object]]] = {
    "queue": check_queue,
    "cluster": check_cluster,
    "overdue_products": check_overdue,
    "stores": check_stores,
    "outbox": check_outbox,
}


def health_report(*, now: datetime | None = None) -> dict[str, object]:
    """Run every check and decide the overall status (see the module docstring for the rules)."""
    now = now or timezone.now()
    checks: dict[str, dict[str, object]] = {}
    try:
        checks["database"] = check_database()
    except Exception:
        logger.exception("health: database check failed")
        checks["database"] = {"ok": False, "vendor": connection.vendor}
    for name, check in CHECKS.items():
        if not checks["database"]["ok"]:
            # Everything else reads the database; one failure logged is enough.
            checks[name] = {"ok": False, "skipped": "database unavailable"}
            continue
        try:
            checks[name] = check(now)
        except Exception:
            # The error text may name a host or a DSN (Redis, cache): it goes to the log only.
            logger.exception("health: %s check failed", name)
            checks[name] = {"ok": False, "error": "check failed; see the server log"}
    critical = set(CRITICAL_CHECKS)
    if settings.HEALTH_REQUIRE_CLUSTER:
        critical.add("cluster")
    failing = {name for name, check in checks.items() if not check["ok"]}
    status = "unhealthy" if failing & critical else "degraded" if failing else "ok"
    return {"status": status, "checks": checks}


class HealthView(APIView):
    """Report the installation's health: 200 when ok or degraded, 503 when unhealthy."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["health"],
        summary="Health of the installation",
        description=(
            "No authentication. `status` is `ok`, `degraded` (HTTP 200: something needs a look, e.g. overdue "
            "products, an open circuit breaker, stuck alert emails, no cluster where none is required) or "
            "`unhealthy` (HTTP 503: database or task broker failing, or no django-q2 cluster heartbeat while "
            "`HEALTH_REQUIRE_CLUSTER` is on). `checks` has one entry per check, each with `ok`."
        ),
        responses={
            200: inline_serializer("Health", {"status": serializers.CharField(), "checks": serializers.DictField()}),
            503: inline_serializer("Unhealthy", {"status": serializers.CharField(), "checks": serializers.DictField()}),
        },
    )
    def get(self, request: Request) -> Response:
        report = health_report()
        response = Response(report, status=503 if report["status"] == "unhealthy" else 200)
        # Probes must see the current state, never a cached page.
        response["Cache-Control"] = "no-store"
        return response
