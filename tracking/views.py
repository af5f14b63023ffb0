"""Tracking API: trackers, their history and stats, manual scrapes, scrape runs.

Every queryset is scoped to ``request.user``: another user's tracker is a 404, never a 403.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, time

from django import forms
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django_filters import rest_framework as filters
from django_filters.widgets import BooleanWidget
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from pricetracker.api import Pagination, request_user
from scraping.money import format_money
from tracking import selectors, services
from tracking.models import AlertRule, PricePoint, RunStatus, ScrapeRun, Tracker
from tracking.serializers import (
    AlertRuleSerializer,
    PricePointSerializer,
    RuleCreateSerializer,
    RuleUpdateSerializer,
    ScrapeQueuedSerializer,
    ScrapeRunSerializer,
    StatsSerializer,
    TrackerCreateSerializer,
    TrackerSerializer,
    TrackerUpdateSerializer,
)

TRACKER_LIMIT = OpenApiResponse(description="Your active tracker limit is reached (`code`: tracker_limit).")

WINDOW_FORMAT = "Use an ISO 8601 date (2026-01-31) or datetime (2026-01-31T12:00:00Z)."
WINDOW_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATETIME, description="Start of the window (ISO 8601 date or datetime)."),
    OpenApiParameter("to", OpenApiTypes.DATETIME, description="End of the window (ISO 8601 date or datetime)."),
]


class CSVRenderer(BaseRenderer):
    """Declares ``?format=csv`` so DRF's content negotiation accepts it; the view streams the body."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self, data: object, accepted_media_type: str | None = None, renderer_context: Mapping[str, object] | None = None
    ) -> bytes:
        return data if isinstance(data, bytes) else str(data).encode()


def _parse_bound(request: Request, name: str, *, end_of_day: bool = False) -> datetime | None:
    """``?from=`` / ``?to=`` as an aware UTC datetime; anything else is a 400 naming the parameter.

    Django's parsers return None for text that is not ISO-shaped but raise ValueError for ISO-shaped
    text naming an impossible moment (month 13, February 30, hour 25, a +99:00 offset); and a valid
    moment near year 1 or 9999 may have no UTC equivalent (OverflowError once the database adapter
    converts it). Both were unhandled 500s, so the value is converted to UTC here, where they show.
    """
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = parse_datetime(raw)
        if value is None:
            day = parse_date(raw)
            if day is None:
                raise ValidationError({name: [WINDOW_FORMAT]})
            value = datetime.combine(day, time.max if end_of_day else time.min)
        if timezone.is_naive(value):
            value = timezone.make_aware(value, UTC)
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValidationError({name: [f"No such date or time, or out of range. {WINDOW_FORMAT}"]}) from None


def _window(request: Request) -> tuple[datetime | None, datetime | None]:
    since = _parse_bound(request, "from")
    until = _parse_bound(request, "to", end_of_day=True)
    if since and until and since > until:
        raise ValidationError({"from": ["'from' must be before 'to'."]})
    return since, until


class _RawBooleanWidget(BooleanWidget):
    """BooleanWidget that hands an unrecognised value on (it would turn it into "no filter")."""

    def value_from_datadict(self, data: Mapping[str, object], files: Mapping[str, object], name: str) -> object:
        value = super().value_from_datadict(data, files, name)
        raw = data.get(name)
        return raw if value is None and raw else value


class _StrictNullBooleanField(forms.NullBooleanField):
    # django-stubs types NullBooleanField.to_python's `bool | None` as an override of BooleanField's
    # `bool` (the stub ignores it there too), so every subclass inherits the complaint.
    def to_python(self, value: object) -> bool | None:  # type: ignore[override]
        if value is None or isinstance(value, bool):
            return value
        raise forms.ValidationError("Use true or false.", code="invalid")


class StrictBooleanFilter(filters.BooleanFilter):
    """``true``/``false`` (or 1/0); anything else is a 400, where django-filter would silently
    ignore it (``?enabled=flase`` listing every tracker)."""

    field_class = _StrictNullBooleanField

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("widget", _RawBooleanWidget)
        super().__init__(*args, **kwargs)


class TrackerFilter(filters.FilterSet):
    enabled = StrictBooleanFilter()

    class Meta:
        model = Tracker
        fields = ["enabled"]


# Actions whose response is tracker JSON (with its rules); the others only need the row.
RENDERS_TRACKERS = {"list", "retrieve", "create", "partial_update"}


class TrackerViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The user's trackers. Create by URL or ASIN; PATCH target, interval or enabled."""

    serializer_class = TrackerSerializer
    filterset_class = TrackerFilter
    # For schema generation only; every request goes through get_queryset (owner-scoped).
    queryset = Tracker.objects.none()

    def finalize_response(self, request: Request, response: Response, *args: object, **kwargs: object) -> Response:
        # Errors are JSON whatever format was asked for: a failed ``?format=csv`` download would
        # otherwise get the error dict's Python repr labelled text/csv.
        renderer = getattr(request, "accepted_renderer", None)
        if getattr(response, "exception", False) and renderer is not None and not isinstance(renderer, JSONRenderer):
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Tracker]:
        if getattr(self, "swagger_fake_view", False):
            return Tracker.objects.none()
        trackers = (
            Tracker.objects.filter(user=request_user(self.request))
            .select_related("product", "product__store")
            .order_by("-created_at", "-pk")
        )
        if self.action in RENDERS_TRACKERS:
            # The tracker JSON carries its rules: one query for the whole page.
            trackers = trackers.prefetch_related("rules")
        return trackers

    @extend_schema(
        request=TrackerCreateSerializer,
        examples=[
            OpenApiExample(
                "By URL",
                value={"url": "https://www.amazon.com/dp/B07FNW9FGJ", "target_price": "25.00"},
                request_only=True,
            ),
            OpenApiExample(
                "By ASIN on another marketplace (default: your profile's default_store)",
                value={"asin": "B0823MDHDJ", "store": "amazon.de", "target_price": "129.00"},
                request_only=True,
            ),
            OpenApiExample(
                "By a short link from the Amazon app (resolved by the server)",
                value={"url": "https://a.co/d/0AbCdEf", "target_price": "25.00"},
                request_only=True,
            ),
            OpenApiExample(
                "By ASIN, checked every 6 hours",
                value={"asin": "B0823MDHDJ", "target_price": "99.90", "interval_minutes": 360, "enabled": True},
                request_only=True,
            ),
        ],
        responses={
            201: TrackerSerializer,
            403: TRACKER_LIMIT,
            409: OpenApiResponse(description="You already track this product; `tracker_id` names that tracker."),
        },
    )
    def create(self, request: Request) -> Response:
        data = TrackerCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = request_user(request)
        fields = dict(data.validated_data)
        # Resolved before tracker_create's transaction: a short link costs requests to Amazon's
        # shortener, and on SQLite a transaction holds the database's write lock.
        fields["reference"] = services.reference_resolve(
            reference=fields["reference"], store_code=fields.pop("store", None), default_store=user.default_store
        )
        tracker = services.tracker_create(user=user, **fields)
        tracker = self.get_queryset().get(pk=tracker.pk)
        return Response(TrackerSerializer(tracker).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=TrackerUpdateSerializer, responses={200: TrackerSerializer, 403: TRACKER_LIMIT})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        tracker = self.get_object()
        data = TrackerUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.tracker_update(tracker=tracker, **data.validated_data)
        return Response(TrackerSerializer(self.get_queryset().get(pk=tracker.pk)).data)

    def perform_destroy(self, instance: Tracker) -> None:
        services.tracker_delete(tracker=instance)

    @extend_schema(
        request=None,
        responses={
            202: ScrapeQueuedSerializer,
            409: OpenApiResponse(description="A check of this product is already queued or running."),
            429: OpenApiResponse(
                description="Your manual scrape limit, or the store's minimum interval (`retry_after_seconds`)."
            ),
            503: OpenApiResponse(description="Scraping this store is paused (by an admin or its circuit breaker)."),
        },
    )
    @action(detail=True, methods=["post"])
    def scrape(self, request: Request, pk: str | None = None) -> Response:
        """Ask for an immediate check (202). Refused with a reason by limits and store policy."""
        tracker = self.get_object()
        services.tracker_request_scrape(tracker=tracker, user=request_user(request))
        return Response(
            {"status": "queued", "message": "A check of this product was queued."}, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(
        parameters=[
            *WINDOW_PARAMETERS,
            OpenApiParameter("format", str, enum=["json", "csv"], description="csv streams every point."),
        ],
        responses={
            (200, "application/json"): PricePointSerializer(many=True),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="With format=csv: every point."),
        },
    )
    # No filter backends: the tracker list's ``enabled`` filter means nothing here.
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, CSVRenderer], filter_backends=[])
    def history(
        self, request: Request, pk: str | None = None, format: str | None = None
    ) -> Response | StreamingHttpResponse:
        """Price points of the tracked product, oldest first, filtered by ``from``/``to``."""
        tracker = self.get_object()
        since, until = _window(request)
        points = PricePoint.objects.filter(product_id=tracker.product_id).order_by("observed_at", "pk")
        if since:
            points = points.filter(observed_at__gte=since)
        if until:
            points = points.filter(observed_at__lte=until)
        if request.accepted_renderer.format == "csv":
            # The export is the whole window, but a malformed page_size is a 400 in every format.
            if isinstance(self.paginator, Pagination):
                self.paginator.get_page_size(request)
            return _csv_response(
                points, filename=f"{tracker.product.asin}-history.csv", language=request_user(request).language
            )
        page = self.paginate_queryset(points)
        return self.get_paginated_response(PricePointSerializer(page, many=True).data)

    @extend_schema(parameters=WINDOW_PARAMETERS, responses={200: StatsSerializer})
    @action(detail=True, methods=["get"])
    def stats(self, request: Request, pk: str | None = None) -> Response:
        """Min, max, average over the window; current price; all-time low and when."""
        tracker = self.get_object()
        since, until = _window(request)
        stats = selectors.product_stats(product_id=tracker.product_id, since=since, until=until)
        return Response(StatsSerializer(stats).data)


CSV_COLUMNS = (
    "observed_at",
    "price",
    "currency",
    "list_price",
    "availability",
    "price_formatted",
    "list_price_formatted",
)


def _csv_response(points: QuerySet[PricePoint], *, filename: str, language: str = "") -> StreamingHttpResponse:
    """Stream the CSV so a long history never sits in memory.

    ``price`` and ``list_price`` are plain decimals for spreadsheets and scripts; the two
    ``*_formatted`` columns write them as a reader of ``language`` expects (English when blank).
    """

    class Echo:
        def write(self, value: str) -> str:
            return value

    def rows() -> Iterator[str]:
        writer = csv.writer(Echo())
        yield writer.writerow(CSV_COLUMNS)
        for point in points.values_list("observed_at", "price", "currency", "list_price", "availability").iterator(
            chunk_size=2000
        ):
            observed_at, price, currency, list_price, availability = point
            yield writer.writerow(
                [
                    observed_at.isoformat(),
                    price,
                    currency,
                    "" if list_price is None else list_price,
                    availability,
                    format_money(price, currency, language=language),
                    format_money(list_price, currency, language=language),
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class AlertRuleViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The alert rules of one of the user's trackers (another user's tracker is a 404).

    A rule is ``{id, kind, <its parameters>, cooldown_minutes, armed, last_fired_at}``; see
    ``AlertRule`` in the schema for the kinds and their parameters.
    """

    serializer_class = AlertRuleSerializer
    # For schema generation only; every request goes through get_queryset (owner-scoped).
    queryset = AlertRule.objects.none()
    filter_backends: list[type] = []

    def tracker(self) -> Tracker:
        """The tracker in the URL, if it is the user's (else 404)."""
        if not hasattr(self, "_tracker"):
            tracker = (
                Tracker.objects.filter(user=request_user(self.request), pk=self.kwargs["tracker_pk"])
                .select_related("user", "product")
                .first()
            )
            if tracker is None:
                raise NotFound()
            self._tracker = tracker
        return self._tracker

    def get_queryset(self) -> QuerySet[AlertRule]:
        if getattr(self, "swagger_fake_view", False):
            return AlertRule.objects.none()
        return AlertRule.objects.filter(tracker=self.tracker()).order_by("pk")

    @extend_schema(
        request=RuleCreateSerializer,
        examples=[
            OpenApiExample("A 10% drop", value={"kind": "drop_percent", "percent": "10"}, request_only=True),
            OpenApiExample(
                "Below 90.00, then each lower price, at most one alert an hour",
                value={"kind": "below_target", "price": "90.00", "repeat": "each_lower", "cooldown_minutes": 60},
                request_only=True,
            ),
        ],
        responses={
            201: AlertRuleSerializer,
            403: OpenApiResponse(description="The tracker has as many rules as your account allows (`rule_limit`)."),
        },
    )
    def create(self, request: Request, tracker_pk: str | None = None) -> Response:
        data = RuleCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rule = services.rule_create(tracker=self.tracker(), spec=data.validated_data["spec"])
        return Response(AlertRuleSerializer(rule).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RuleUpdateSerializer, responses={200: AlertRuleSerializer})
    def partial_update(self, request: Request, tracker_pk: str | None = None, pk: str | None = None) -> Response:
        rule = self.get_object()
        data = RuleUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rule.tracker = self.tracker()
        rule = services.rule_update(rule=rule, changes=data.validated_data)
        return Response(AlertRuleSerializer(rule).data)

    def perform_destroy(self, instance: AlertRule) -> None:
        services.rule_delete(rule=instance)


class ScrapeRunFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=RunStatus.choices)
    asin = filters.CharFilter(field_name="product__asin", lookup_expr="iexact")

    class Meta:
        model = ScrapeRun
        fields = ["status", "asin"]


class ScrapeRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Scrape runs of the products the user tracks, newest first, filterable by status."""

    serializer_class = ScrapeRunSerializer
    filterset_class = ScrapeRunFilter
    queryset = ScrapeRun.objects.none()

    def get_queryset(self) -> QuerySet[ScrapeRun]:
        if getattr(self, "swagger_fake_view", False):
            return ScrapeRun.objects.none()
        product_ids = Tracker.objects.filter(user=request_user(self.request)).values("product_id")
        return (
            ScrapeRun.objects.filter(product_id__in=product_ids)
            .select_related("product")
            .order_by("-created_at", "-pk")
        )
