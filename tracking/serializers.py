"""Request validation and response shapes for the tracking API. No business logic here."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from scraping.inputs import canonical_url
from tracking.models import PricePoint, Product, ScrapeRun, TrackingConfig

MAX_PRICE = Decimal("9999999999.99")
MAX_INTERVAL_MINUTES = 60 * 24 * 30  # a month


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


class TrackerSerializer(serializers.ModelSerializer):
    """A tracker with its product embedded."""

    product = ProductSerializer(read_only=True)

    class Meta:
        model = TrackingConfig
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
    target_price = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=Decimal("0.01"), max_value=MAX_PRICE
    )
    interval_minutes = serializers.IntegerField(required=False, min_value=1, max_value=MAX_INTERVAL_MINUTES)
    enabled = serializers.BooleanField(required=False, default=True)

    def validate(self, attrs: dict) -> dict:
        if bool(attrs.get("url")) == bool(attrs.get("asin")):
            raise serializers.ValidationError({"url": ["Give either a product URL (url) or an ASIN (asin), not both."]})
        attrs["reference"] = attrs.pop("url", None) or attrs.pop("asin")
        return attrs


class TrackerUpdateSerializer(serializers.Serializer):
    """``PATCH``: any of target_price, interval_minutes, enabled."""

    target_price = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=Decimal("0.01"), max_value=MAX_PRICE, required=False
    )
    interval_minutes = serializers.IntegerField(required=False, min_value=1, max_value=MAX_INTERVAL_MINUTES)
    enabled = serializers.BooleanField(required=False)

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
    # ``from`` is a keyword: declared in __init__ below.
    to = serializers.DateTimeField(allow_null=True)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["from"] = serializers.DateTimeField(allow_null=True)


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
