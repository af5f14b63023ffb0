"""``GET /metrics``: Prometheus text format, for operators' scrapers only.

Two sources:

- :class:`DatabaseCollector` reads the database at scrape time, so its figures are the same
  whichever process answers (web workers, hosts): scrape runs by store and status and failures
  by kind over the last hour and day, block and failure rates, a scrape duration histogram over
  the last hour (a *gauge* histogram: it describes a window, it does not only grow), queue depth,
  overdue products, breaker state, last success and its age, failed attempts since, whether
  /api/health/ calls the store degraded and by which rule, alert emails by status, live clusters
  and workers.
  Windows instead of all-time totals keep every query on an index. The queries are the apps'
  selectors (``tracking.selectors``, ``notifications.selectors``), the verdicts
  ``pricetracker.health``'s; this module only formats.
- :class:`RequestLatencyMiddleware` observes each request in this process into
  ``pricetracker_http_request_duration_seconds`` (labels: method, Django view name, status).
  Under gunicorn every worker process has its own histogram and a scrape sees only the worker
  that answered, unless Prometheus' multiprocess mode is on: set ``PROMETHEUS_MULTIPROC_DIR`` to
  an empty directory writable by the workers (``manage.py serve`` creates and empties it) and
  this view aggregates every worker's files.

Access (``_allowed``): ``Authorization: Bearer <METRICS_TOKEN>`` when that variable is set
(compared in constant time), or a client address in ``METRICS_ALLOWED_NETWORKS`` (default
loopback only). Behind a reverse proxy every client seems to come from the proxy's address, so
a request carrying ``X-Forwarded-For`` / ``Forwarded`` never passes the network rule: scrape
directly, or use the token. Anything else gets 403.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from functools import cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, Histogram, multiprocess
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from notifications import selectors as outbox
from pricetracker import health
from scraping.models import Store
from tracking import selectors
from tracking.models import RunStatus

logger = logging.getLogger(__name__)

# Upper bounds of the scrape duration histogram, in seconds (fetch timeouts are 10 s + 20 s).
SCRAPE_DURATION_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)
SCRAPE_DURATION_WINDOW = timedelta(hours=1)

# Not registered anywhere at import: each scrape builds its own registry (see build_registry).
REQUEST_LATENCY = Histogram(
    "pricetracker_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, Django view name and status code (this process, "
    "or all gunicorn workers in multiprocess mode).",
    ["method", "view", "status"],
    registry=None,
)


class RequestLatencyMiddleware:
    """Observe every request's duration into :data:`REQUEST_LATENCY`.

    The view label is the URL pattern's name (bounded: one per route), never the raw path, which
    would give one time series per product id or scanner probe.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or "unnamed") if match is not None else "unmatched"
        REQUEST_LATENCY.labels(request.method or "", view, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response


class DatabaseCollector(Collector):
    """Figures read from the database (and the shared cache) when Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("pricetracker_database_up", "1 when the database answered this scrape.")
        try:
            metrics = list(self._collect_all())
        except Exception:
            # The exception text may contain a DSN: log it, export only the fact.
            logger.exception("metrics: reading the database failed")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _collect_all(self) -> Iterator[Metric]:
        now = timezone.now()
        # The same figures and verdicts as /api/health/, read once for both families below.
        store_health = health.store_health(now=now)
        yield from _store_metrics(store_health, now)
        yield from _run_metrics(store_health)
        yield _scrape_duration({entry.store.pk: entry.store for entry in store_health}, now)
        yield _gauge("pricetracker_queue_depth", "Tasks waiting in the django-q2 broker.", health.queue_depth())
        yield from _cluster_metrics()
        yield from _notification_metrics(now)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _store_metrics(store_health: list[health.StoreHealth], now: datetime) -> Iterator[Metric]:
    breaker = GaugeMetricFamily(
        "pricetracker_store_breaker_state",
        "1 for the store's current circuit-breaker state.",
        labels=["store", "state"],
    )
    enabled = GaugeMetricFamily("pricetracker_store_enabled", "1 when scraping the store is enabled.", labels=["store"])
    last_success = GaugeMetricFamily(
        "pricetracker_store_last_success_timestamp_seconds",
        "Unix time the store's newest successful scrape finished (absent: none yet).",
        labels=["store"],
    )
    last_success_age = GaugeMetricFamily(
        "pricetracker_store_last_success_age_seconds",
        "Seconds since the store's newest successful scrape finished (absent: none yet).",
        labels=["store"],
    )
    failures_since = GaugeMetricFamily(
        "pricetracker_store_failures_since_last_success",
        f"FAILED and BLOCKED scrape runs since the store's newest success (read back at most "
        f"{int(health.FAILURE_LOOKBACK.total_seconds() // 3600)} hours).",
        labels=["store"],
    )
    degraded = GaugeMetricFamily(
        "pricetracker_store_degraded",
        "1 when /api/health/ reports the store degraded by this rule: breaker (not closed), failure_rate "
        "(too many of the last hour's scrapes failed), failing (every attempt failed for too long).",
        labels=["store", "rule"],
    )
    overdue = GaugeMetricFamily(
        "pricetracker_overdue_products",
        f"Products due for more than {int(health.OVERDUE_AFTER.total_seconds() // 60)} minutes with an enabled "
        "tracker and no claim (enabled stores).",
        labels=["store"],
    )
    overdue_counts = health.overdue_products(now=now)
    for entry in store_health:
        store, moment = entry.store, entry.gap.last_success
        for state in Store.BreakerState.values:
            breaker.add_metric([store.code, state], 1 if store.breaker_state == state else 0)
        enabled.add_metric([store.code], 1 if store.enabled else 0)
        if moment is not None:
            last_success.add_metric([store.code], moment.timestamp())
            last_success_age.add_metric([store.code], max(0.0, (now - moment).total_seconds()))
        failures_since.add_metric([store.code], entry.gap.failures)
        for rule in health.STORE_RULES:
            degraded.add_metric([store.code, rule], 1 if rule in entry.problems else 0)
        overdue.add_metric([store.code], overdue_counts.get(store.pk, 0))
    yield from (breaker, enabled, last_success, last_success_age, failures_since, degraded, overdue)


def _run_metrics(store_health: list[health.StoreHealth]) -> Iterator[Metric]:
    runs = GaugeMetricFamily(
        "pricetracker_scrape_runs",
        "Finished scrape runs in the trailing window, by store and status.",
        labels=["store", "status", "window"],
    )
    failures = GaugeMetricFamily(
        "pricetracker_scrape_failures",
        "FAILED and BLOCKED scrape runs in the trailing window, by store and error kind.",
        labels=["store", "kind", "window"],
    )
    block_rate = GaugeMetricFamily(
        "pricetracker_scrape_block_rate",
        "BLOCKED / finished scrape runs in the trailing window (absent when none finished).",
        labels=["store", "window"],
    )
    failure_rate = GaugeMetricFamily(
        "pricetracker_scrape_failure_rate",
        "(FAILED + BLOCKED) / finished scrape runs in the trailing window (absent when none finished).",
        labels=["store", "window"],
    )
    for entry in store_health:
        code = entry.store.code
        for window, counts in entry.runs.items():
            for status in (RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.BLOCKED):
                runs.add_metric([code, status, window], counts.by_status.get(status, 0))
            for kind, count in sorted(counts.failures_by_kind.items()):
                failures.add_metric([code, kind, window], count)
            if counts.block_rate is not None:
                block_rate.add_metric([code, window], counts.block_rate)
            if counts.failure_rate is not None:
                failure_rate.add_metric([code, window], counts.failure_rate)
    yield from (runs, failures, block_rate, failure_rate)


def _scrape_duration(stores: dict[int, Store], now: datetime) -> Metric:
    """A gauge histogram of the last hour's finished runs, counted in one query per scrape."""
    family = GaugeHistogramMetricFamily(
        "pricetracker_scrape_duration_seconds",
        "Duration of scrape runs finished in the last hour (fetch and parse), by store.",
        labels=["store"],
    )
    for histogram in selectors.scrape_durations(
        since=now - SCRAPE_DURATION_WINDOW, bounds_seconds=SCRAPE_DURATION_BUCKETS
    ):
        store = stores.get(histogram.store_id)
        counts = zip(SCRAPE_DURATION_BUCKETS, histogram.cumulative, strict=True)
        cumulative = [(str(bound), float(count)) for bound, count in counts]
        cumulative.append(("+Inf", float(histogram.total)))
        family.add_metric(
            [store.code if store else str(histogram.store_id)],
            buckets=cumulative,
            gsum_value=histogram.total_seconds,
        )
    return family


def _cluster_metrics() -> Iterator[Metric]:
    status = health.cluster_status()
    yield _gauge("pricetracker_cluster_count", "Live django-q2 clusters (heartbeats in the cache).", status.clusters)
    yield _gauge("pricetracker_cluster_workers", "Worker processes of the live django-q2 clusters.", status.workers)
    if status.last_dispatch is not None:
        yield _gauge(
            "pricetracker_dispatcher_last_run_timestamp_seconds",
            "Unix time the dispatcher task last finished.",
            status.last_dispatch.timestamp(),
        )


def _notification_metrics(now: datetime) -> Iterator[Metric]:
    by_status = GaugeMetricFamily(
        "pricetracker_notifications",
        "Alert emails by outbox status (SENT: delivered; FAILED: retrying or given up).",
        labels=["status"],
    )
    counts = outbox.notifications_by_status()
    for status in sorted(counts):
        by_status.add_metric([status], counts[status])
    yield by_status
    yield _gauge(
        "pricetracker_notifications_due",
        "Alert emails due for sending now (PENDING or FAILED past their next attempt).",
        outbox.outbox_due_count(now=now),
    )


def build_registry() -> CollectorRegistry:
    """A registry for one scrape: the database figures plus request latency (all workers' in
    multiprocess mode, this process's otherwise)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_LATENCY)
    return registry


@cache
def _networks(spec: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(network, strict=False) for network in spec)


def _allowed(request: HttpRequest) -> bool:
    """The token when one is presented (and configured), else the client network (see module doc)."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        token = settings.METRICS_TOKEN
        if not token:
            return False
        # A wrong token is refused even from an allowed network: it is a misconfigured scraper.
        return hmac.compare_digest(header.removeprefix("Bearer ").encode(), token.encode())
    if "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _networks(tuple(settings.METRICS_ALLOWED_NETWORKS)))


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition of :func:`build_registry`; 403 for anyone not allowed."""
    if not _allowed(request):
        return HttpResponse("Forbidden.\n", status=403, content_type="text/plain")
    # OpenMetrics when the scraper asks for it (Prometheus does): only that format has a type for
    # the windowed scrape-duration histogram; the classic text format calls it a histogram.
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = HttpResponse(encoder(build_registry()), content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
