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
``stores``            per store: breaker state, last successful scrape and the failed attempts
                      since, runs, block and failure rates over the last hour and day, overdue
                      products, and whether (and why, in plain words) the store is degraded.
``outbox``            alert emails due for sending (PENDING/FAILED past their next attempt).

**Status rules.** ``unhealthy`` (HTTP 503) when the database or the broker fails, or when the
cluster is *required* and has shown no sign of life (no heartbeat, no finished dispatcher run)
for ``HEALTH_CLUSTER_MAX_SILENCE_MINUTES`` (default 5). The cluster is required when
``HEALTH_REQUIRE_CLUSTER`` is on, which is its default whenever ``DEBUG`` is off; a laptop running
only the web server then sees ``degraded``, not a failure. ``degraded`` (HTTP 200) when any other
check is not ok: cluster missing but not required, overdue products, a store degraded (below),
alert emails stuck for more than ``OUTBOX_STALE_AFTER``. Otherwise ``ok``.

**A store is degraded** (enabled stores only: pausing one is deliberate) when

- ``breaker``: its circuit breaker is not closed;
- ``failure_rate``: at least ``HEALTH_STORE_MIN_RUNS`` (10) scrapes finished in the last hour and
  ``HEALTH_STORE_MAX_FAILURE_PERCENT`` (50) or more of them failed. FAILED and BLOCKED both count:
  either way no price was recorded, and blocks below the breaker's threshold still matter;
- ``failing``: every attempt has failed for ``HEALTH_STORE_MAX_FAILING_MINUTES`` (60), at least
  ``FAILING_MIN_ATTEMPTS`` of them, with no success in between. Measured from the first failure
  after the last success, not from the last success itself: a store whose products are checked
  every six hours is quiet, not failing, and products never scraped have had no chance to fail.
  This catches small stores whose failures back off to too few runs for a rate.

The two scraping rules apply only while the store has a product with an enabled tracker (old
failures of products nobody tracks are history). Neither is a 503: the API still serves, and a
load balancer must not take web nodes out of rotation because a store is failing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications import selectors as outbox
from scraping.models import Store
from tracking import selectors
from tracking.policy import DISPATCH_SCHEDULE
from tracking.selectors import StoreRuns, SuccessGap

logger = logging.getLogger(__name__)

# A product due for longer than this (with an enabled tracker and no claim) is overdue: the
# dispatcher runs every minute, so ten minutes means it or the workers are not keeping up.
OVERDUE_AFTER = timedelta(minutes=10)
# An alert due for longer than this has been missed by the outbox sweep (it runs every minute).
OUTBOX_STALE_AFTER = timedelta(minutes=10)
# Checks whose failure makes the installation unhealthy (503) whatever the configuration.
CRITICAL_CHECKS = frozenset({"database", "queue"})
# A store is "failing" only after this many failed attempts in a row: one flaky product of a
# small store, retried a few minutes later, must not flip the status.
FAILING_MIN_ATTEMPTS = 3
# How far back the failures after a store's last success are read: the run counts' window, so a
# store failing for longer is reported as failing "over the last 24 h", never a full-table read.
FAILURE_LOOKBACK = timedelta(hours=24)
# The rules that can degrade a store, as named in /metrics (pricetracker_store_degraded).
STORE_RULES = ("breaker", "failure_rate", "failing")


# --- Figures shared with pricetracker.metrics ------------------------------------------------
# The queries are the apps' selectors (tracking.selectors, notifications.selectors); this module
# reads the broker and the cluster heartbeats, applies the status rules and formats.


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
    default; docs/decisions.md, "django-q2: cluster monitoring needs a shared cache"). The
    dispatcher's last task (its ``Schedule.task`` id, a primary-key lookup in django-q2's task
    table) is the fallback: some worker ran it that recently.
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


def overdue_products(*, now: datetime) -> dict[int, int]:
    """``{store_id: count}`` of products overdue by ``OVERDUE_AFTER`` or more (enabled stores)."""
    return selectors.overdue_products(now=now, late_by=OVERDUE_AFTER)


@dataclass(frozen=True, slots=True)
class StoreLimits:
    """When a store counts as degraded (settings ``HEALTH_STORE_*``, see the module docstring)."""

    min_runs: int
    max_failure_percent: int
    max_failing: timedelta

    @classmethod
    def from_settings(cls) -> StoreLimits:
        return cls(
            min_runs=settings.HEALTH_STORE_MIN_RUNS,
            max_failure_percent=settings.HEALTH_STORE_MAX_FAILURE_PERCENT,
            max_failing=timedelta(minutes=settings.HEALTH_STORE_MAX_FAILING_MINUTES),
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "min_runs": self.min_runs,
            "max_failure_rate": self.max_failure_percent / 100,
            "max_failing_seconds": int(self.max_failing.total_seconds()),
            "min_failed_attempts": FAILING_MIN_ATTEMPTS,
        }


@dataclass
class StoreHealth:
    """One store's scraping figures and the problems found in them (rule -> plain-words reason)."""

    store: Store
    runs: dict[str, StoreRuns]
    gap: SuccessGap
    problems: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def reason(self) -> str | None:
        return "; ".join(self.problems.values()) or None


def store_health(*, now: datetime, limits: StoreLimits | None = None) -> list[StoreHealth]:
    """Every store's health, by code: one query for the runs of all stores; for each store with
    runs in the last day two more (its last success and the failures since), one for all the
    idle stores' last successes, and one more only for a store a rule condemns."""
    limits = limits or StoreLimits.from_settings()
    runs = selectors.store_runs(now=now)
    stores = list(Store.objects.order_by("code"))
    # No run within the lookback: no failure to count, and the last success is the products' cache.
    idle = [store.pk for store in stores if store.pk not in runs]
    idle_last = selectors.last_success_by_store(store_ids=idle) if idle else {}
    result = []
    for store in stores:
        windows = runs.get(store.pk) or {"1h": StoreRuns(), "24h": StoreRuns()}
        if store.pk in runs:
            gap = selectors.success_gap(store_id=store.pk, now=now, lookback=FAILURE_LOOKBACK)
        else:
            gap = SuccessGap(last_success=idle_last.get(store.pk), failures=0, failing_since=None)
        problems = _store_problems(store, windows["1h"], gap, limits, now)
        result.append(StoreHealth(store=store, runs=windows, gap=gap, problems=problems))
    return result


def _store_problems(
    store: Store, hour: StoreRuns, gap: SuccessGap, limits: StoreLimits, now: datetime
) -> dict[str, str]:
    if not store.enabled:
        return {}
    problems: dict[str, str] = {}
    if store.breaker_state != Store.BreakerState.CLOSED:
        since = f" since {_iso(store.breaker_opened_at)}" if store.breaker_opened_at else ""
        why = f": {store.breaker_reason}" if store.breaker_reason else ""
        problems["breaker"] = f"circuit breaker {store.breaker_state.replace('_', '-')}{since}{why}"
    scraping: dict[str, str] = {}
    # Integer comparison: no float rounding at exactly the threshold.
    if hour.finished >= limits.min_runs and hour.failures * 100 >= limits.max_failure_percent * hour.finished:
        kinds = sorted(hour.failures_by_kind.items(), key=lambda item: (-item[1], item[0]))[:3]
        scraping["failure_rate"] = (
            f"{hour.failures} of {hour.finished} scrapes in the last hour failed "
            f"({hour.failures / hour.finished:.0%}, limit {limits.max_failure_percent}%; "
            + ", ".join(f"{kind} {count}" for kind, count in kinds)
            + ")"
        )
    failing_for = now - gap.failing_since if gap.failing_since else None
    if gap.failures >= FAILING_MIN_ATTEMPTS and failing_for is not None and failing_for >= limits.max_failing:
        if gap.last_success is None:
            lead = "no successful scrape yet"
        else:
            lead = f"no successful scrape for {_duration(now - gap.last_success)} (last at {_iso(gap.last_success)})"
        scraping["failing"] = (
            f"{lead}; {gap.failures} failed attempts in a row over the last {_duration(failing_for)} "
            f"(limit {_duration(limits.max_failing)})"
        )
    # Failures of products nobody tracks any more are history, not a fault. Asked only when a
    # rule fires, so a healthy store costs no query here.
    if scraping and selectors.store_has_tracked_products(store_id=store.pk):
        problems.update(scraping)
    return problems


# --- Checks ---------------------------------------------------------------------------------


def _age(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else round(max(0.0, (now - moment).total_seconds()), 1)


def _round(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 4)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _duration(delta: timedelta) -> str:
    """A duration for people: "45 s", "95 min", "5 h 12 min", "2 days 3 h"."""
    seconds = int(max(0.0, delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h"


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
    """Per store: breaker, last success and failures since, run rates, overdue products, and
    whether (and why) it is degraded."""
    limits = StoreLimits.from_settings()
    overdue = overdue_products(now=now)
    everything = store_health(now=now, limits=limits)
    stores: dict[str, object] = {}
    for health in everything:
        store, gap = health.store, health.gap
        stores[store.code] = {
            "enabled": store.enabled,
            "ok": health.ok,
            "reason": health.reason,
            "breaker": {
                "state": store.breaker_state,
                "opened_at": _iso(store.breaker_opened_at),
                "reason": store.breaker_reason,
            },
            "last_success_at": _iso(gap.last_success),
            "last_success_age_seconds": _age(gap.last_success, now),
            "failures_since_last_success": gap.failures,
            "failing_since": _iso(gap.failing_since),
            "overdue_products": overdue.get(store.pk, 0),
            **{
                f"runs_{window}": {
                    "finished": runs.finished,
                    "failed": runs.failed,
                    "blocked": runs.blocked,
                    "block_rate": _round(runs.block_rate),
                    "failure_rate": _round(runs.failure_rate),
                }
                for window, runs in health.runs.items()
            },
        }
    return {"ok": all(health.ok for health in everything), "limits": limits.as_dict(), "stores": stores}


def check_outbox(now: datetime) -> dict[str, object]:
    """Alert emails are not stuck: none due for longer than ``OUTBOX_STALE_AFTER``."""
    backlog = outbox.outbox_backlog(now=now)
    oldest = backlog.oldest_due_at
    stuck = oldest is not None and now - oldest > OUTBOX_STALE_AFTER
    return {
        "ok": not stuck,
        "due": backlog.due,
        "oldest_due_age_seconds": _age(oldest, now),
        "held": backlog.held,
        "failed_permanently": backlog.failed_permanently,
    }


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
            "products, an open circuit breaker, a store whose scrapes mostly fail or have all failed for a "
            "while (`checks.stores.stores.<code>.reason` says which), stuck alert emails, no cluster where "
            "none is required) or "
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
        unhealthy = report["status"] == "unhealthy"
        response = Response(report, status=503 if unhealthy else 200)
        # Probes must see the current state, never a cached page.
        response["Cache-Control"] = "no-store"
        if unhealthy:
            # Every 503 says when to look again (RFC 9110): the next check is worth a minute's wait.
            response["Retry-After"] = "60"
        return response
