"""Admin for products, trackers (with their alert rules), scrape runs and the price history.

Runs and price points are audit records: read-only here. Product scheduling state belongs to the
workers, so a product is read-only too and changes only through its actions ("Scrape now",
"Reset backoff"), which call the same services the dispatcher and the API use. The two big
tables (``scrape_runs``, ``price_history``, millions of rows) are listed without a full COUNT,
sorted and filtered only on indexed columns, and never with facet counts.

A run's page tells the story of one check, so an admin can explain a failure without a shell:
what was fetched (the URL, rebuilt by the store's provider), when and by which worker, what came
back (status, bytes, outcome, the parsing rule or why none matched, the message) and what it
changed (the price point and the alerts it caused, linked). Times are to the second with their
zone throughout the admin (``pricetracker/formats``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from pricetracker.errors import DomainError, Unavailable
from scraping.inputs import canonical_url
from scraping.models import Store
from scraping.money import format_money
from scraping.providers import UnknownProvider, get_provider
from scraping.providers.base import BLOCKED_KINDS
from scraping.results import ErrorKind
from tracking import services
from tracking.charts import TargetLine, price_history_svg
from tracking.errors import IntervalTooShort, InvalidRule, TrackerLimitReached
from tracking.models import (
    INTERNAL_ERROR,
    UNCONFIRMED_PRICE,
    WORKER_LOST,
    AlertRule,
    PricePoint,
    Product,
    RuleKind,
    RunStatus,
    ScrapeRun,
    Tracker,
    to_the_second,
)
from tracking.services.rules import RuleSpec, rule_check

if TYPE_CHECKING:
    from notifications.models import Notification

# Rows a changelist of a big table counts at most. Counting 10,000 index entries takes
# milliseconds; counting all of a million-row table on every page view does not.
COUNT_CAP = 10_000
RECENT_RUNS_ON_PRODUCT = 20
# The chart reads at most this many of a product's latest observations (then downsamples them):
# a year of checks every 30 minutes, without loading an unbounded history into memory.
CHART_MAX_OBSERVATIONS = 20_000

ERROR_KIND_CHOICES = [
    *((kind.value, kind.value.replace("_", " ")) for kind in ErrorKind if kind.value),
    (UNCONFIRMED_PRICE, "unconfirmed price"),
    (WORKER_LOST, "worker lost"),
    (INTERNAL_ERROR, "internal error"),
]


class CappedCountPaginator(Paginator):
    """A paginator whose count stops at :data:`COUNT_CAP`.

    ``count`` is ``SELECT COUNT(*) FROM (SELECT ... LIMIT cap + 1)``: cheap on any table size,
    exact below the cap. Above it, ``capped`` is true, the list pages through the first
    ``cap`` rows (newest first) and the pagination line says "more than" (template
    ``admin/tracking/pagination.html``); filters, search and dates narrow it down.
    """

    cap = COUNT_CAP
    # The admin's change list always pages a queryset, which the count below relies on.
    object_list: QuerySet

    @cached_property
    def _counted(self) -> int:
        # order_by(): sorting rows only to count them is wasted work.
        return self.object_list.order_by()[: self.cap + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self._counted, self.cap)

    @property
    def capped(self) -> bool:
        """True when there are more rows than were counted."""
        return self._counted > self.cap


class ReadOnlyAdminMixin:
    """No add, change or delete in the admin: audit records and worker-owned rows."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class BigTableAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only admin for an append-only table of millions of rows."""

    paginator = CappedCountPaginator
    # The unfiltered total would be a full COUNT on every page view; facets a COUNT per choice.
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER


class ErrorKindFilter(admin.SimpleListFilter):
    """Error kinds from a fixed list: the default filter would run SELECT DISTINCT over every run."""

    title = "error kind"
    parameter_name = "error_kind"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return ERROR_KIND_CHOICES

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(error_kind=self.value())
        return queryset


class LastStatusFilter(admin.SimpleListFilter):
    """A product's last scrape status (a plain text column, so the choices are listed here)."""

    title = "last status"
    parameter_name = "last_scrape_status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(status.value, status.label) for status in RunStatus if status != RunStatus.RUNNING]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(last_scrape_status=self.value())
        return queryset


class StoreFilter(admin.SimpleListFilter):
    """Rows of one store's products.

    A correlated EXISTS, checked row by row while the table is read newest-first from its
    index. A JOIN or an IN list lets SQLite's planner walk the rows product by product and then
    sort them all, which took from half a second to 20 s on a million runs.
    """

    title = "store"
    parameter_name = "store"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(str(pk), code) for pk, code in Store.objects.order_by("code").values_list("pk", "code")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        store_id = self.value()
        if store_id:
            of_store = Product.objects.filter(pk=OuterRef("product_id"), store_id=store_id)
            return queryset.filter(Exists(of_store))
        return queryset


def _product_link(product: Product) -> SafeString:
    url = reverse("admin:tracking_product_change", args=[product.pk])
    return format_html('<a href="{}">{}</a>', url, str(product))


# --- Scrape runs ----------------------------------------------------------------------------------

# Why a finished run names no parsing rule, by error kind: only a product page is parsed, and
# only a parsed page can match a rule. Kinds not listed here fall back to the run's message.
NO_RULE_BECAUSE: dict[str, str] = {
    **dict.fromkeys(
        (kind.value for kind in BLOCKED_KINDS), "the store refused the request; a block page is never parsed"
    ),
    **dict.fromkeys(
        (ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.OVERSIZED, ErrorKind.REDIRECT_REFUSED),
        "no complete page came back to parse",
    ),
    **dict.fromkeys(
        (ErrorKind.HTTP_4XX, ErrorKind.HTTP_5XX, ErrorKind.NOT_FOUND, ErrorKind.NOT_HTML),
        "the response was not a product page, so it was not parsed",
    ),
    ErrorKind.PARSE_ERROR: "the page was parsed, but no price rule and no known no-price state matched "
    "(a layout the parser does not know)",
    WORKER_LOST: "the worker stopped before it recorded an outcome",
    INTERNAL_ERROR: "an error in our own code ended the run (the worker log has the traceback)",
}


@dataclass(frozen=True, slots=True)
class RunEffects:
    """What a run wrote besides itself: its price point and the alerts that point caused."""

    price_point: PricePoint | None
    alerts: list[Notification]  # with their user, tracker and tracker user loaded


def run_effects(run: ScrapeRun) -> RunEffects:
    """The price point and alerts of ``run``: two queries, made once per run object.

    Several fields of the run page need them, and the admin renders each field from the same
    object, so the answer is kept on it.
    """
    cache = vars(run)  # kept in the instance's __dict__, as functools.cached_property does
    effects: RunEffects | None = cache.get("_admin_effects")
    if effects is None:
        point = PricePoint.objects.filter(run=run).first()
        alerts = []
        if point is not None:
            alerts = list(
                point.notifications.select_related("user", "tracker__user")
                .prefetch_related("tracker__rules")
                .order_by("pk")
            )
        effects = cache["_admin_effects"] = RunEffects(price_point=point, alerts=alerts)
    return effects


def requested_url(product: Product) -> str | None:
    """The URL a worker requests for ``product``, built by its store's provider; None if unknown.

    Rebuilt from this server's settings (the provider reads the store's base URL at call time):
    a worker started with another base URL fetched from there instead. User and password, if
    the base URL has any, are left out.
    """
    try:
        url = get_provider(product.store.code).fetch_url(product.asin)
    except (UnknownProvider, ValueError):  # no provider for the store, or an ASIN it refuses
        return None
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        url = urlunsplit(parts._replace(netloc=netloc))
    return url


def _outcome(run: ScrapeRun) -> str:
    kind = run.error_kind.replace("_", " ")
    return f"{run.get_status_display()} ({kind})" if kind else run.get_status_display()


def _alert_item(alert: Notification) -> SafeString:
    url = reverse("admin:notifications_notification_change", args=[alert.pk])
    to = alert.to_email or alert.user.email
    if alert.tracker is None:
        tracker = "a tracker since deleted"
    else:
        tracker_url = reverse("admin:tracking_tracker_change", args=[alert.tracker_id])
        tracker = format_html('<a href="{}">{}</a>', tracker_url, alert.tracker)
    kinds = [str(reason.get("kind")) for reason in alert.reasons or [] if isinstance(reason, dict)]
    why = f"target {alert.target_price}" if alert.target_price is not None else ", ".join(kinds) or "no reason"
    return format_html(
        '<li><a href="{}">Alert #{}</a> to {}: {} ({}), {}; for {}</li>',
        url,
        alert.pk,
        to,
        format_money(alert.price, alert.currency),
        why,
        alert.get_status_display().lower(),
        tracker,
    )


def alerts_list(effects: RunEffects) -> str:
    """The alerts a price point caused, each linked with its tracker, or why there were none."""
    if effects.price_point is None:
        return "None: no price point, so no tracker was checked."
    if not effects.alerts:
        return "None: no alert rule of an enabled tracker fired on this price."
    return format_html("<ul>{}</ul>", format_html_join("", "{}", ((_alert_item(a),) for a in effects.alerts)))


@admin.register(ScrapeRun)
class ScrapeRunAdmin(BigTableAdmin):
    """Every scrape attempt, newest first: why did this product fail, is the store blocking us?

    The list fits a 1400 px screen beside the admin's sidebars: the message column takes the
    width left over and cuts its text short (the whole message is its tooltip and on the run's
    page; ``admin/tracking/scraperun/change_list.html``). The run's page tells its story: what
    was fetched, when and by which worker, what came back and what it changed.
    """

    list_display = (
        "started",
        "product_label",
        "outcome",
        "http",
        "duration",
        "trigger",
        "message_excerpt",
    )
    list_display_links = ("started",)
    list_filter = ("status", ErrorKindFilter, StoreFilter, "created_at")
    # Products come in one extra query for the page (prefetch), not as a JOIN: with the join,
    # SQLite's planner walks every run of every product and sorts them all (0.5-1.5 s on a
    # million runs); alone, scrape_runs is read newest-first straight from its index.
    list_select_related = False
    # Exact ASIN (what an admin pastes); titles by substring.
    search_fields = ("=product__asin", "product__title")
    search_help_text = "Exact ASIN, or part of the product title."
    date_hierarchy = "created_at"
    # Served by the (status, -created_at) and (-created_at) indexes; "-pk" breaks ties.
    ordering = ("-created_at", "-pk")
    # Sorting a million rows on an unindexed column would be a full sort per page view.
    sortable_by = ("started",)
    fieldsets = (
        (None, {"fields": ("summary",)}),
        (
            "What was fetched",
            {
                "description": "The URL is rebuilt the way the worker builds it: the store's provider, the ASIN "
                "and this server's base URL setting. Redirects the store answered with were followed "
                "(to the same site only) but are not recorded.",
                "fields": ("product_link", "url", "trigger", "requested_by"),
            },
        ),
        (
            "When, and by which worker",
            {
                "description": "Picked up: a worker took the task and recorded the run. Request started: the "
                "store's rate limiter let the request go. Finished: the outcome was recorded.",
                "fields": ("picked_up", "request_started", "finished", "duration", "worker"),
            },
        ),
        (
            "What came back",
            {"fields": ("outcome", "http_answer", "size", "rule_or_why_none", "message", "availability")},
        ),
        ("What it changed", {"fields": ("price_point_link", "alerts")}),
        (
            "Internals",
            {
                "classes": ("collapse",),
                "description": "The dispatch claim this run executed and the lease after which a "
                "RUNNING run is presumed lost and closed as worker_lost.",
                "fields": ("claim_token", "lease_until"),
            },
        ),
    )
    readonly_fields = (
        "summary",
        "product_link",
        "url",
        "picked_up",
        "request_started",
        "finished",
        "duration",
        "outcome",
        "http_answer",
        "size",
        "rule_or_why_none",
        "price_point_link",
        "alerts",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ScrapeRun]:
        return super().get_queryset(request).prefetch_related("product")

    # The list.

    @admin.display(description="started", ordering="created_at")
    def started(self, run: ScrapeRun) -> datetime:
        return run.created_at

    @admin.display(description="product")
    def product_label(self, run: ScrapeRun) -> SafeString:
        # The ASIN alone keeps the column narrow; the title is the link's tooltip.
        url = reverse("admin:tracking_product_change", args=[run.product_id])
        return format_html('<a href="{}" title="{}">{}</a>', url, str(run.product), run.product.asin)

    @admin.display(description="outcome")
    def outcome(self, run: ScrapeRun) -> str:
        return _outcome(run)

    @admin.display(description="message")
    def message_excerpt(self, run: ScrapeRun) -> str:
        if not run.message:
            return "-"
        return format_html('<span class="run-message" title="{}">{}</span>', run.message, run.message)

    @admin.display(description="HTTP")
    def http(self, run: ScrapeRun) -> int | None:
        return run.http_status

    @admin.display(description="took", ordering="duration_ms")
    def duration(self, run: ScrapeRun) -> str:
        return f"{run.duration_ms:,} ms"

    # The run's page.

    @admin.display(description="summary")
    def summary(self, run: ScrapeRun) -> str:
        """One line from request to effect, e.g. to paste into an issue."""
        url = requested_url(run.product) or run.product.asin
        worker = run.worker or "an unrecorded worker"
        if run.status == RunStatus.RUNNING:
            return (
                f"{url} picked up by {worker} at {to_the_second(run.created_at)}: still running "
                f"(lease until {to_the_second(run.lease_until)})."
            )
        answer = f"HTTP {run.http_status}" if run.http_status else "no HTTP response"
        received = f"{filesizeformat(run.bytes_received)}" if run.bytes_received else "no bytes"
        effects = run_effects(run)
        point = effects.price_point
        wrote = f"price point {format_money(point.price, point.currency)}" if point else "no price point"
        alerts = f"{len(effects.alerts)} alert(s)" if effects.alerts else "no alert"
        return (
            f"{url} fetched by {worker} at {to_the_second(run.started_at or run.created_at)}: {answer}, "
            f"{received} in {run.duration_ms:,} ms; {run.status}"
            f"{f' ({run.error_kind})' if run.error_kind else ''}; wrote {wrote}, {alerts}."
        )

    @admin.display(description="product")
    def product_link(self, run: ScrapeRun) -> SafeString:
        return _product_link(run.product)

    @admin.display(description="URL requested")
    def url(self, run: ScrapeRun) -> str:
        url = requested_url(run.product)
        if url is None:
            return "- (no provider for this store)"
        # Shown, not linked: opening it from an admin's browser would be a request to the store too.
        return url

    # A readonly field shows what a method returns as it is (a list cell would format a datetime).

    @admin.display(description="picked up")
    def picked_up(self, run: ScrapeRun) -> str:
        return to_the_second(run.created_at)

    @admin.display(description="request started")
    def request_started(self, run: ScrapeRun) -> str:
        return to_the_second(run.started_at)

    @admin.display(description="finished")
    def finished(self, run: ScrapeRun) -> str:
        return to_the_second(run.finished_at)

    @admin.display(description="HTTP status")
    def http_answer(self, run: ScrapeRun) -> str:
        return str(run.http_status) if run.http_status else "- (no HTTP response)"

    @admin.display(description="bytes received")
    def size(self, run: ScrapeRun) -> str:
        if not run.bytes_received:
            return "-"
        return f"{filesizeformat(run.bytes_received)} ({run.bytes_received:,} bytes)"

    @admin.display(description="rule")
    def rule_or_why_none(self, run: ScrapeRun) -> str:
        if run.rule:
            return run.rule
        if run.status == RunStatus.RUNNING:
            return "None yet: the run has not finished."
        reason = NO_RULE_BECAUSE.get(run.error_kind) or run.message.rstrip(".") or "no reason was recorded"
        return f"None: {reason}."

    @admin.display(description="price point written")
    def price_point_link(self, run: ScrapeRun) -> str:
        point = run_effects(run).price_point
        if point is None:
            return "None."
        url = reverse("admin:tracking_pricepoint_change", args=[point.pk])
        return format_html(
            '<a href="{}">Price point #{}: {}</a>', url, point.pk, format_money(point.price, point.currency)
        )

    @admin.display(description="alerts caused")
    def alerts(self, run: ScrapeRun) -> str:
        return alerts_list(run_effects(run))


# --- Price history ---------------------------------------------------------------------------------


@admin.register(PricePoint)
class PricePointAdmin(BigTableAdmin):
    """The append-only price history, newest first."""

    list_display = ("observed_at", "product_label", "shown_price", "currency", "availability")
    list_display_links = ("observed_at",)
    list_filter = (StoreFilter,)
    list_select_related = False  # products are prefetched, as for scrape runs
    search_fields = ("=product__asin", "product__title")
    search_help_text = "Exact ASIN, or part of the product title."
    # Rows are appended in time order, so the primary key orders them like observed_at does,
    # without an index of its own (price_history is indexed by product, then time).
    ordering = ("-pk",)
    sortable_by = ()
    fields = ("product_link", "price", "currency", "list_price", "availability", "observed_at", "run_link", "alerts")
    readonly_fields = ("product_link", "run_link", "alerts")

    def get_queryset(self, request: HttpRequest) -> QuerySet[PricePoint]:
        return super().get_queryset(request).prefetch_related("product")

    @admin.display(description="product")
    def product_label(self, point: PricePoint) -> SafeString:
        return _product_link(point.product)

    @admin.display(description="price")
    def shown_price(self, point: PricePoint) -> str:
        return format_money(point.price, point.currency)

    @admin.display(description="product")
    def product_link(self, point: PricePoint) -> SafeString:
        return _product_link(point.product)

    @admin.display(description="scrape run")
    def run_link(self, point: PricePoint) -> SafeString:
        url = reverse("admin:tracking_scraperun_change", args=[point.run_id])
        return format_html('<a href="{}">Run #{}</a>', url, point.run_id)

    @admin.display(description="alerts caused")
    def alerts(self, point: PricePoint) -> str:
        alerts = list(
            point.notifications.select_related("user", "tracker__user")
            .prefetch_related("tracker__rules")
            .order_by("pk")
        )
        return alerts_list(RunEffects(price_point=point, alerts=alerts))


# --- Products ---------------------------------------------------------------------------------------


class RecentRunsFormSet(BaseInlineFormSet):
    """Only a product's latest runs: an hourly product gathers thousands a year."""

    def get_queryset(self) -> QuerySet:
        # Cached: the formset asks for its queryset several times, and a sliced queryset would
        # otherwise run again each time. With the product (a join on its key): each row's title
        # names it, and would otherwise read it once per row.
        if not hasattr(self, "_recent_runs"):
            self._recent_runs = super().get_queryset().select_related("product")[:RECENT_RUNS_ON_PRODUCT]
        return self._recent_runs


class RecentRunInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ScrapeRun
    formset = RecentRunsFormSet
    verbose_name_plural = f"Latest {RECENT_RUNS_ON_PRODUCT} scrape runs"
    fields = ("created_at", "status", "error_kind", "http_status", "duration_ms", "trigger", "rule", "message")
    readonly_fields = fields
    ordering = ("-created_at", "-pk")
    show_change_link = True
    extra = 0


class TrackerInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The product's trackers; each links to its own page, where it can be changed."""

    model = Tracker
    verbose_name_plural = "Trackers"
    fields = ("user", "target_price", "rules_summary", "interval_minutes", "enabled", "last_alert_at")
    readonly_fields = fields
    ordering = ("pk",)
    show_change_link = True
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tracker]:
        return super().get_queryset(request).select_related("user").prefetch_related("rules")

    @admin.display(description="alert rules")
    def rules_summary(self, tracker: Tracker) -> str:
        return rules_summary(tracker)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    """Products with their last observation, schedule and failure state; the price chart."""

    list_display = (
        "asin",
        "title",
        "price",
        "availability",
        "last_scrape_status",
        "last_scraped_at",
        "next_scrape_at",
        "consecutive_failures",
        "backoff_until",
    )
    list_filter = ("store", LastStatusFilter, "availability")
    search_fields = ("=asin", "title")
    search_help_text = "Exact ASIN, or part of the title."
    ordering = ("asin", "pk")
    actions = ("scrape_now", "reset_backoff")
    inlines = (TrackerInline, RecentRunInline)
    fieldsets = (
        (None, {"fields": ("store", "asin", "amazon_link", "title", "created_at")}),
        ("Price history", {"fields": ("price_history",)}),
        (
            "Last observation",
            {"fields": ("current_price", "currency", "list_price", "availability", "last_success_at")},
        ),
        (
            "Last attempt",
            {"fields": ("last_scraped_at", "last_scrape_status", "last_error_kind", "last_rule")},
        ),
        (
            "Schedule (kept by the workers)",
            {
                "description": "The interval is the smallest among the enabled trackers, never below the "
                "store minimum. After failures the next check waits until the backoff ends; "
                "“Reset backoff” on the product list makes it due now.",
                "fields": (
                    "interval_minutes",
                    "next_scrape_at",
                    "consecutive_failures",
                    "backoff_until",
                    "claimed_until",
                    "claim_token",
                ),
            },
        ),
    )
    readonly_fields = ("amazon_link", "price_history")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Products come from trackers (the API validates the ASIN or URL).
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Runs and price history point at the product and are kept for good.
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Permission on the list (obj None) lets the actions run; a product's own page is
        # view-only because the workers own its scheduling state.
        return obj is None and super().has_change_permission(request)

    @admin.display(description="price", ordering="current_price")
    def price(self, product: Product) -> str:
        if product.current_price is None:
            return "-"
        return format_money(product.current_price, product.currency)

    @admin.display(description="on Amazon")
    def amazon_link(self, product: Product) -> str:
        try:
            url = canonical_url(product.asin, product.store.code)
        except ValueError:  # not a normalised ASIN: nothing safe to link to
            return "-"
        return format_html('<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>', url, url)

    @admin.display(description="price chart")
    def price_history(self, product: Product) -> SafeString:
        latest = list(
            PricePoint.objects.filter(product=product)
            .order_by("-observed_at")
            .values_list("observed_at", "price", "currency")[:CHART_MAX_OBSERVATIONS]
        )
        latest.reverse()
        targets = (
            AlertRule.objects.filter(tracker__product=product, tracker__enabled=True, kind=RuleKind.BELOW_TARGET)
            .values("price")
            .annotate(trackers=Count("tracker", distinct=True))
            .order_by("price")
        )
        currency = latest[-1][2] if latest else product.currency
        lines = [_target_line(row["price"], row["trackers"], currency) for row in targets if row["price"] is not None]
        svg = price_history_svg(
            [(observed_at, price) for observed_at, price, _ in latest],
            targets=lines,
            currency=currency,
            title=product.title or product.asin,
        )
        if len(latest) == CHART_MAX_OBSERVATIONS:
            caption = f"The latest {len(latest):,} observations."
        else:
            caption = f"{len(latest):,} observation(s)."
        caption += " Dashed lines: below_target prices of enabled trackers."
        # The SVG escapes every text it contains (tracking.charts); the caption is escaped here.
        return format_html('<div class="price-chart">{}</div><p class="help">{}</p>', mark_safe(svg), caption)

    @admin.action(description="Scrape now (queue a check of the selected products)", permissions=["change"])
    def scrape_now(self, request: HttpRequest, queryset: QuerySet[Product]) -> None:
        """Claim and enqueue each selected product, like the dispatcher does, as a manual run.

        The task still waits for the store's rate limiter. A product already claimed (queued or
        running) is left alone; a store that is disabled or whose breaker is not closed is
        skipped, as it is for users' manual scrapes.
        """
        queued = in_flight = 0
        paused: dict[str, int] = {}
        for product in queryset.select_related("store").only("pk", "store"):
            try:
                if not services.product_request_scrape(product=product, requested_by_id=request.user.pk):
                    in_flight += 1
                    continue
            except Unavailable:
                paused[product.store.code] = paused.get(product.store.code, 0) + 1
                continue
            queued += 1
        self.message_user(request, f"{queued} product(s) queued for scraping.", messages.SUCCESS)
        if in_flight:
            self.message_user(request, f"{in_flight} already queued or running, left alone.", messages.WARNING)
        for code, skipped in paused.items():
            self.message_user(
                request,
                f"{skipped} skipped: scraping {code} is paused (store disabled or circuit breaker not closed).",
                messages.WARNING,
            )

    @admin.action(description="Reset backoff (forget failures, check again now)", permissions=["change"])
    def reset_backoff(self, request: HttpRequest, queryset: QuerySet[Product]) -> None:
        """Clear the failure streak and backoff; products someone tracks become due now."""
        now = timezone.now()
        reset = queryset.update(consecutive_failures=0, backoff_until=None)
        # A product nobody tracks keeps next_scrape_at null (never due), as the services keep it.
        queryset.filter(next_scrape_at__isnull=False).update(next_scrape_at=now)
        self.message_user(request, f"Backoff reset for {reset} product(s).", messages.SUCCESS)


def _target_line(target: Decimal, trackers: int, currency: str) -> TargetLine:
    label = f"target {target} {currency}".strip()
    if trackers > 1:
        label += f" ({trackers} trackers)"
    return TargetLine(price=target, label=label)


# --- Trackers -----------------------------------------------------------------------------------------


def rules_summary(tracker: Tracker) -> str:
    """The tracker's rules in words (``at or below 90.00; drop of 10% or more``), or a dash."""
    rules = sorted(tracker.rules.all(), key=lambda rule: rule.pk)
    return "; ".join(rule.describe() for rule in rules) or "- (watch only)"


class TrackerChangeForm(forms.ModelForm):
    """Interval and enabled, checked like the API checks them (tracking.services)."""

    class Meta:
        model = Tracker
        fields = ("interval_minutes", "enabled")

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        # self.instance still holds the stored values here (the form updates it after clean()).
        tracker = self.instance
        interval = cleaned.get("interval_minutes")
        if interval is not None:
            try:
                services.interval_check(store=tracker.product.store, interval_minutes=interval)
            except IntervalTooShort as refused:
                self.add_error("interval_minutes", refused.message)
        if cleaned.get("enabled") and not tracker.enabled:
            try:
                services.tracker_limit_check(user=tracker.user, exclude_tracker_id=tracker.pk)
            except TrackerLimitReached as refused:
                self.add_error(
                    "enabled",
                    f"{tracker.user.email} already has {refused.active} active trackers, their limit. "
                    "Raise the limit on the user first.",
                )
        return cleaned


class AlertRuleForm(forms.ModelForm):
    """One rule, checked by the same function as the API's (:func:`tracking.services.rules.rule_check`)."""

    class Meta:
        model = AlertRule
        fields = ("kind", "price", "repeat", "percent", "days", "direction", "cooldown_minutes")

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        kind = cleaned.get("kind")
        if kind is None or self.errors:
            return cleaned
        if self.instance.pk is not None and kind != self.instance.kind:
            self.add_error("kind", "A rule's kind cannot be changed: delete it and add another.")
            return cleaned
        spec = RuleSpec(
            kind=kind,
            price=cleaned.get("price"),
            repeat=cleaned.get("repeat") or "",
            percent=cleaned.get("percent"),
            days=cleaned.get("days"),
            direction=cleaned.get("direction") or "",
            cooldown_minutes=cleaned.get("cooldown_minutes") or 0,
        )
        try:
            spec = rule_check(spec)
        except InvalidRule as refused:
            self.add_error(refused.field if refused.field in self.fields else None, refused.message)
            return cleaned
        cleaned.update(spec.values())  # the kind's defaults (repeat once, direction both)
        return cleaned


class AlertRuleFormSet(BaseInlineFormSet):
    """The tracker's rules: at most the user's ``max_rules_per_tracker``."""

    def clean(self) -> None:
        super().clean()
        kept = sum(
            1 for form in self.forms if getattr(form, "cleaned_data", None) and not form.cleaned_data.get("DELETE")
        )
        tracker = self.instance
        limit = tracker.user.max_rules_per_tracker
        if kept > limit:
            raise forms.ValidationError(
                f"{tracker.user.email} may have at most {limit} alert rules per tracker. Raise the limit on the "
                "user first."
            )


class AlertRuleInline(admin.TabularInline):
    """A tracker's alert rules, changed through the rule services (checked, limited, evaluated)."""

    model = AlertRule
    form = AlertRuleForm
    formset = AlertRuleFormSet
    verbose_name_plural = (
        "Alert rules (below_target: price, repeat; drop_percent: percent; new_low: days, empty for all time; "
        "back_in_stock; any_change: direction)"
    )
    fields = (
        "kind",
        "price",
        "repeat",
        "percent",
        "days",
        "direction",
        "cooldown_minutes",
        "armed",
        "lowest_alerted",
        "last_fired_at",
    )
    readonly_fields = ("armed", "lowest_alerted", "last_fired_at")
    ordering = ("pk",)
    extra = 0


class RuleKindFilter(admin.SimpleListFilter):
    """Trackers with at least one rule of a kind (or none at all: watch only)."""

    title = "alert rule kind"
    parameter_name = "rule_kind"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [*RuleKind.choices, ("none", "No rules (watch only)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "none":
            return queryset.exclude(Exists(AlertRule.objects.filter(tracker=OuterRef("pk"))))
        if value in RuleKind.values:
            return queryset.filter(Exists(AlertRule.objects.filter(tracker=OuterRef("pk"), kind=value)))
        return queryset


class TargetArmedFilter(admin.SimpleListFilter):
    """Trackers whose below_target rule is armed or disarmed. The parameter keeps the name of the
    former tracker column, so bookmarked admin lists still work."""

    title = "target armed"
    parameter_name = "armed__exact"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("1", "Armed"), ("0", "Disarmed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() not in ("0", "1"):
            return queryset
        targets = AlertRule.objects.filter(
            tracker=OuterRef("pk"), kind=RuleKind.BELOW_TARGET, armed=self.value() == "1"
        )
        return queryset.filter(Exists(targets))


@admin.register(Tracker)
class TrackerAdmin(admin.ModelAdmin):
    """Users' trackers and their alert rules. Changes go through the tracker and rule services, so
    the product's schedule follows and a changed target is evaluated against the current price.

    Trackers are created through the API (which validates the product and the user's limits),
    so there is no add form; user and product never change, so they are read-only.
    """

    form = TrackerChangeForm
    inlines = (AlertRuleInline,)
    list_display = (
        "id",
        "user",
        "product_label",
        "target",
        "target_armed",
        "rules_list",
        "interval_minutes",
        "enabled",
        "last_alert_at",
    )
    list_filter = ("enabled", RuleKindFilter, TargetArmedFilter, "product__store")
    list_select_related = ("user", "product")
    search_fields = ("user__email", "=product__asin")
    search_help_text = "User email (or part of it), or exact ASIN."
    ordering = ("-created_at", "-pk")
    fieldsets = (
        (None, {"fields": ("user", "product_link", "interval_minutes", "enabled")}),
        (
            "Alert state",
            {
                "description": "One email per check at most, listing every rule that fired. A below_target rule "
                "is armed until it fires and re-armed by a price above its price; the other kinds compare each "
                "price with the history. The rules are below.",
                "fields": ("last_alert_at",),
            },
        ),
        ("Dates", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = ("user", "product_link", "last_alert_at", "created_at", "updated_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tracker]:
        return super().get_queryset(request).select_related("user", "product__store").prefetch_related("rules")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="product", ordering="product__asin")
    def product_label(self, tracker: Tracker) -> SafeString:
        return _product_link(tracker.product)

    @admin.display(description="product")
    def product_link(self, tracker: Tracker) -> SafeString:
        return _product_link(tracker.product)

    @admin.display(description="target")
    def target(self, tracker: Tracker) -> Decimal | None:
        return tracker.target_price

    @admin.display(description="armed", boolean=True)
    def target_armed(self, tracker: Tracker) -> bool | None:
        return tracker.armed

    @admin.display(description="alert rules")
    def rules_list(self, tracker: Tracker) -> str:
        return rules_summary(tracker)

    def save_model(self, request: HttpRequest, obj: Tracker, form: forms.ModelForm, change: bool) -> None:
        # The service compares against the stored row, so give it a fresh one rather than the
        # instance the form has already changed.
        stored = Tracker.objects.select_related("user", "product__store").get(pk=obj.pk)
        try:
            services.tracker_update(
                tracker=stored,
                interval_minutes=form.cleaned_data["interval_minutes"],
                enabled=form.cleaned_data["enabled"],
            )
        except DomainError as refused:
            # The form checked the same rules; this is a race with another change (two admins,
            # or the user's own API call enabling a tracker meanwhile). Nothing was saved.
            self.message_user(request, f"Not saved: {refused.message}", messages.ERROR)

    def save_formset(
        self, request: HttpRequest, form: forms.ModelForm, formset: forms.BaseModelFormSet, change: bool
    ) -> None:
        if formset.model is not AlertRule:
            super().save_formset(request, form, formset, change)
            return
        tracker = Tracker.objects.select_related("user", "product").get(pk=form.instance.pk)
        formset.save(commit=False)  # sorts the forms into new, changed and deleted; writes nothing
        try:
            for rule in formset.deleted_objects:
                services.rule_delete(rule=rule)
            for rule, changed in formset.changed_objects:
                stored = AlertRule.objects.select_related("tracker").get(pk=rule.pk)
                services.rule_update(rule=stored, changes={name: getattr(rule, name) for name in changed})
            for rule in formset.new_objects:
                services.rule_create(tracker=tracker, spec=RuleSpec.of(rule))
        except DomainError as refused:
            # Checked by the forms already: a race with the user's own changes through the API.
            self.message_user(request, f"Rules not all saved: {refused.message}", messages.ERROR)

    def delete_model(self, request: HttpRequest, obj: Tracker) -> None:
        services.tracker_delete(tracker=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Tracker]) -> None:
        for tracker in queryset:
            services.tracker_delete(tracker=tracker)
