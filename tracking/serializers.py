"""Request validation and response shapes for the tracking API. No business logic here."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scraping.inputs import canonical_url
from tracking.errors import InvalidRule
from tracking.models import (
    MAX_COOLDOWN_MINUTES,
    NEW_LOW_MAX_DAYS,
    RULE_PARAMETERS,
    AlertRule,
    Direction,
    PricePoint,
    Product,
    Repeat,
    RuleKind,
    ScrapeRun,
    Tracker,
)
from tracking.services.rules import PARAMETERS, RuleSpec, rule_check

MAX_PRICE = Decimal("9999999999.99")
MAX_INTERVAL_MINUTES = 60 * 24 * 30  # a month
MAX_RULES_IN_REQUEST = 100
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
        return canonical_url(product.asin, product.store.code)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(_CENT))


def _when(value: datetime | None) -> str | None:
    # DRF's ISO 8601 rendering of an aware UTC datetime.
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


_CENT = Decimal("0.01")


def rule_representation(rule: AlertRule) -> dict[str, object]:
    """A rule as the API shows it: id, kind, the parameters of its kind, cooldown and state."""
    data: dict[str, object] = {"id": rule.pk, "kind": rule.kind}
    for name in RULE_PARAMETERS[rule.kind]:
        value = getattr(rule, name)
        data[name] = _money(value) if isinstance(value, Decimal) else value
    data.update(
        cooldown_minutes=rule.cooldown_minutes,
        armed=rule.armed,
        last_fired_at=_when(rule.last_fired_at),
    )
    return data


class AlertRuleSerializer(serializers.Serializer):
    """An alert rule. Only the parameters of its ``kind`` are present (declared here, so they are
    optional in the schema):

    - ``below_target``: ``price``, ``repeat`` (``once`` or ``each_lower``);
    - ``drop_percent``: ``percent``;
    - ``new_low``: ``days`` (null: all time);
    - ``back_in_stock``: none;
    - ``any_change``: ``direction`` (``both``, ``down`` or ``up``).
    """

    id = serializers.IntegerField(read_only=True)
    kind = serializers.ChoiceField(choices=RuleKind.choices, read_only=True)
    price = serializers.DecimalField(max_digits=12, decimal_places=2, required=False)
    repeat = serializers.ChoiceField(choices=Repeat.choices, required=False)
    percent = serializers.DecimalField(max_digits=5, decimal_places=2, required=False)
    days = serializers.IntegerField(required=False, allow_null=True)
    direction = serializers.ChoiceField(choices=Direction.choices, required=False)
    cooldown_minutes = serializers.IntegerField(read_only=True)
    armed = serializers.BooleanField(
        read_only=True, help_text="below_target: true until it fires; re-armed by a price above its price."
    )
    last_fired_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="When this rule last took part in an alert you were sent."
    )

    def to_representation(self, rule: AlertRule) -> dict[str, object]:
        return rule_representation(rule)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "format": "decimal", "pattern": r"^\d{1,2}(?:\.\d{1,2})?$"},
            # OpenAPI 3.0: exclusive bounds are flags on minimum and maximum.
            {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 100, "exclusiveMaximum": True},
        ],
        "description": 'A percentage above 0 and below 100, at most two decimals ("12.5").',
    }
)
class PercentField(serializers.DecimalField):
    """A percentage, 0 < p < 100, as a decimal string or a JSON number."""

    def __init__(self, *, required: bool | None = None) -> None:
        super().__init__(max_digits=4, decimal_places=2, required=required)

    def to_internal_value(self, data: object) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, (int, float, str, Decimal)):
            self.fail("invalid")
        if isinstance(data, str) and not _DECIMAL_TEXT.fullmatch(data):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not Decimal("0") < value < Decimal("100"):
            raise serializers.ValidationError("A percentage above 0 and below 100.")
        return value


def _refuse_unknown(serializer: serializers.Serializer, data: object, message: str) -> None:
    """A field the serializer does not declare is an error, not silently dropped (a typo such as
    ``"percentage"`` would otherwise create a rule without it)."""
    unknown = set(data) - set(serializer.fields) if isinstance(data, dict) else set()
    if unknown:
        raise serializers.ValidationError({str(key): [message] for key in sorted(unknown, key=str)})


class RuleCreateSerializer(serializers.Serializer):
    """``{kind, <its parameters>, cooldown_minutes?}``; parameters of other kinds are refused."""

    kind = serializers.ChoiceField(choices=RuleKind.choices)
    price = PriceField(required=False)
    repeat = serializers.ChoiceField(choices=Repeat.choices, required=False)
    percent = PercentField(required=False)
    days = JSONIntegerField(required=False, allow_null=True, min_value=1, max_value=NEW_LOW_MAX_DAYS)
    direction = serializers.ChoiceField(choices=Direction.choices, required=False)
    cooldown_minutes = JSONIntegerField(
        required=False,
        min_value=0,
        max_value=MAX_COOLDOWN_MINUTES,
        help_text="No alert from this rule within this many minutes of its last one (0: none).",
    )

    def to_internal_value(self, data: object) -> dict:
        # Here rather than in validate(): as an item of a tracker's "rules" there is no initial_data.
        _refuse_unknown(self, data, "Not a parameter of any rule.")
        return super().to_internal_value(data)

    def validate(self, attrs: dict) -> dict:
        given = frozenset(name for name in attrs if name in PARAMETERS)
        try:
            spec = rule_check(RuleSpec(**attrs), given=given)
        except InvalidRule as refused:
            raise serializers.ValidationError({refused.field or "kind": [refused.message]}) from None
        return {"spec": spec}


class RuleUpdateSerializer(serializers.Serializer):
    """``PATCH``: the parameters of the rule's kind and ``cooldown_minutes`` (the kind is fixed)."""

    price = PriceField(required=False)
    repeat = serializers.ChoiceField(choices=Repeat.choices, required=False)
    percent = PercentField(required=False)
    days = JSONIntegerField(required=False, allow_null=True, min_value=1, max_value=NEW_LOW_MAX_DAYS)
    direction = serializers.ChoiceField(choices=Direction.choices, required=False)
    cooldown_minutes = JSONIntegerField(required=False, min_value=0, max_value=MAX_COOLDOWN_MINUTES)

    def to_internal_value(self, data: object) -> dict:
        _refuse_unknown(self, data, "This field cannot be changed.")
        return super().to_internal_value(data)


class TrackerSerializer(serializers.ModelSerializer):
    """A tracker with its product embedded.

    ``to_representation`` builds the dict by hand: lists of trackers are the hottest read path and
    DRF's generic field machinery cost about a third of a page's CPU time (4.5 of 11-15 ms,
    BENCHMARKS.md, Load).
    The declared fields still drive the schema, and a test asserts both produce the same JSON.
    """

    product = ProductSerializer(read_only=True)
    target_price = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        read_only=True,
        allow_null=True,
        help_text="The price of the first below_target rule (null: none).",
    )
    armed = serializers.BooleanField(
        read_only=True, allow_null=True, help_text="Whether that rule is armed (null without a target)."
    )
    rules = AlertRuleSerializer(many=True, read_only=True)

    def to_representation(self, tracker: Tracker) -> dict[str, object]:
        product = tracker.product
        store = product.store
        return {
            "id": tracker.pk,
            "product": {
                "asin": product.asin,
                "url": canonical_url(product.asin, store.code),
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
            "rules": [rule_representation(rule) for rule in sorted(tracker.rules.all(), key=lambda rule: rule.pk)],
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
            "rules",
            "last_alert_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class TrackerCreateSerializer(serializers.Serializer):
    """``{url or asin, store?, target_price?, rules?, interval_minutes?, enabled?}``.

    ``target_price`` is the shorthand for a below_target rule with ``repeat: once``; without it
    and without ``rules`` the tracker only records the price history.
    """

    url = serializers.CharField(required=False, allow_blank=False, max_length=2048, trim_whitespace=True)
    asin = serializers.CharField(required=False, allow_blank=False, max_length=64, trim_whitespace=True)
    store = serializers.CharField(
        required=False,
        allow_blank=False,
        max_length=50,
        trim_whitespace=True,
        help_text="The marketplace of a bare ASIN (e.g. amazon.de); default: your profile's default_store. "
        "A URL names its own marketplace (store, if given, must agree).",
    )
    target_price = PriceField(required=False)
    # The per-account limit (USER_MAX_RULES_PER_TRACKER) is the service's; this only bounds the body.
    rules = serializers.ListField(child=RuleCreateSerializer(), required=False, max_length=MAX_RULES_IN_REQUEST)
    interval_minutes = JSONIntegerField(required=False, min_value=1, max_value=MAX_INTERVAL_MINUTES)
    enabled = JSONBooleanField(required=False, default=True)

    def validate(self, attrs: dict) -> dict:
        if bool(attrs.get("url")) == bool(attrs.get("asin")):
            raise serializers.ValidationError({"url": ["Give either a product URL (url) or an ASIN (asin), not both."]})
        attrs["reference"] = attrs.pop("url", None) or attrs.pop("asin")
        attrs["rules"] = [rule["spec"] for rule in attrs.get("rules", [])]
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
