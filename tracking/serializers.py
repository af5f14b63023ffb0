"""Request validation and response shapes for the tracking API. No business logic here."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scraping.inputs import canonical_url
from tracking.models import PricePoint, Product, ScrapeRun, Tracker

MAX_PRICE = Decimal("9999999999.99")
MAX_INTERVAL_MINUTES = 60 * 24 * 30  # a month
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


# Request fields take JSON's own types. DRF would also take 0/1/"yes" for a boolean and "360" or
# 360.0 for an integer, which the schema does not allow and clients should not rely on.


class JSONBooleanField(serializers.BooleanField):
    """``true`` or ``false``, nothing else."""

    def to_internal_value(self, data: object) -> bool:
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)
        raise AssertionError  # unreachable: fail() raises


class JSONIntegerField(serializers.IntegerField):
    """A JSON integer (not a string, a float or a boolean)."""

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "format": "decimal", "pattern": r"^\d{1,10}(?:\.\d{1,2})?$"},
            {"type": "number", "minimum": 0.01, "maximum": 9999999999.99},
        ],
        "description": "A price in the product's currency, as a decimal string (or a JSON number).",
    }
)
class PriceField(serializers.DecimalField):
    """A target price: a decimal string such as ``"19.99"`` (a JSON number is taken too).

    Strings are plain decimals: DRF alone would also take ``" 1e1 "``.
    """

    def __init__(self, *, required: bool | None = None) -> None:
        super().__init__(
            max_digits=12, decimal_places=2, min_value=Decimal("0.01"), max_value=MAX_PRICE, required=required
        )

    def to_internal_value(self, data: object) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, (int, float, str, Decimal)):
            self.fail("invalid")  # a list or an object is not a price either
        if isinstance(data, str) and not _DECIMAL_TEXT.fullmatch(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class ProductSerializer(serializers.ModelSerializer):
    """The shared product as a tracker embeds it: last observation and scheduling state."""

    url = serializers.SerializerMethodField()
    store = serializers.CharField(source="store.code", read_only=True)
    store_breaker_state = serializers.CharField(source="store.breaker_state", read_only=True)

    class Meta:
        model = Product
        fields = [
            "asin",
            "url",
            "store",
            "title",
            "current_price",
            "currency",
            "list_price",
            "availability",
            "last_scraped_at",
            "last_scrape_status",
            "last_error_kind",
            "last_success_at",
            "next_scrape_at",
            "interval_minutes",
            "consecutive_failures",
            "backoff_until",
            "store_breaker_state",
        ]
        read_only_fields = fields

    def get_url(self, product: Product) -> str:
        return canonical_url(product.asin)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(_CENT))


def _when(value: datetime | None) -> str | None:
    # DRF's ISO 8601 rendering of an aware UTC datetime.
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


_CENT = Decimal("0.01")


class TrackerSerializer(serializers.ModelSerializer):
    """A tracker with its product embedded.

    ``to_representation`` builds the dict by hand: lists of trackers are the hottest read path and
    DRF's generic field machinery cost about a third of a page's CPU time (4.5 of 11-15 ms,
    BENCHMARKS.md, Load).
    The declared fields still drive the schema, and a test asserts both produce the same JSON.
    """

    product = ProductSerializer(read_only=True)

    def to_representation(self, tracker: Tracker) -> dict[str, object]:
        product = tracker.product
        store = product.store
        return {
            "id": tracker.pk,
            "product": {
                "asin": product.asin,
                "url": canonical_url(product.asin),
                "store": store.code,
                "title": product.title,
                "current_price": _money(product.current_price),
                "currency": product.currency,
                "list_price": _money(product.list_price),
                "availability": product.availability,
                "last_scraped_at": _when(product.last_scraped_at),
                "last_scrape_status": product.last_scrape_status,
                "last_error_kind": product.last_error_kind,
                "last_success_at": _when(product.last_success_at),
                "next_scrape_at": _when(product.next_scrape_at),
                "interval_minutes": product.interval_minutes,
                "consecutive_failures": product.consecutive_failures,
                "backoff_until": _when(product.backoff_until),
                "store_breaker_state": store.breaker_state,
            },
            "target_price": _money(tracker.target_price),
            "interval_minutes": tracker.interval_minutes,
            "enabled": tracker.enabled,
            "armed": tracker.armed,
            "last_alert_at": _when(tracker.last_alert_at),
            "created_at": _when(tracker.created_at),
            "updated_at": _when(tracker.updated_at),
        }

    def generic_representation(self, tracker: Tracker) -> dict[str, object]:
        """DRF's own rendering of the declared fields (the reference the fast path must match)."""
        return super().to_representation(tracker)

    class Meta:
        model = Tracker
        fields = [
            "id",
            "product",
            "target_price",
            "interval_minutes",
            "enabled",
            "armed",
            "last_alert_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class TrackerCreateSerializer(serializers.Serializer):
    """``{url or asin, target_price, interval_minutes?, enabled?}``."""

    url = serializers.CharField(required=False, allow_blank=False, max_length=2048, trim_whitespace=True)
    asin = serializers.CharField(required=False, allow_blank=False, max_length=64, trim_whitespace=True)
    target_price = PriceField()
    interval_minutes = JSONIntegerField(required=False, min_value=1, max_value=MAX_INTERVAL_MINUTES)
    enabled = JSONBooleanField(required=False, default=True)

    def validate(self, attrs: dict) -> dict:
        if bool(attrs.get("url")) == bool(attrs.get("asin")):
            raise serializers.ValidationError({"url": ["Give either a product URL (url) or an ASIN (asin), not both."]})
        attrs["reference"] = attrs.pop("url", None) or attrs.pop("asin")
        return attrs


class TrackerUpdateSerializer(serializers.Serializer):
    """``PATCH``: any of target_price, interval_minutes, enabled."""

    target_price = PriceField(required=False)
    interval_minutes = JSONIntegerField(required=False, min_value=1, max_value=MAX_INTERVAL_MINUTES)
    enabled = JSONBooleanField(required=False)

    def validate(self, attrs: dict) -> dict:
        unknown = set(self.initial_data) - set(self.fields) if isinstance(self.initial_data, dict) else set()
        if unknown:
            raise serializers.ValidationError({key: ["This field cannot be changed."] for key in sorted(unknown)})
        return attrs


class PricePointSerializer(serializers.ModelSerializer):
    class Meta:
        model = PricePoint
        fields = ["observed_at", "price", "currency", "list_price", "availability", "run"]
        read_only_fields = fields


class StatsSerializer(serializers.Serializer):
    """Statistics over a window (``from``/``to``); all-time low is over the whole history."""

    min = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    max = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    avg = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    count = serializers.IntegerField()
    current = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    current_at = serializers.DateTimeField(allow_null=True)
    all_time_low = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    all_time_low_at = serializers.DateTimeField(allow_null=True)
    currency = serializers.CharField(allow_null=True)
    # ``from`` is a keyword: declared in get_fields() below.
    to = serializers.DateTimeField(allow_null=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = serializers.DateTimeField(allow_null=True)
        return fields


class ScrapeRunSerializer(serializers.ModelSerializer):
    asin = serializers.CharField(source="product.asin", read_only=True)
    trigger = serializers.CharField(read_only=True)

    class Meta:
        model = ScrapeRun
        fields = [
            "id",
            "asin",
            "status",
            "error_kind",
            "message",
            "http_status",
            "bytes_received",
            "duration_ms",
            "rule",
            "trigger",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class ScrapeQueuedSerializer(serializers.Serializer):
    status = serializers.CharField()
    message = serializers.CharField()
