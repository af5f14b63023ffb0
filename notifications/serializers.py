"""Notification JSON. Prices are decimal strings, as everywhere in the API."""

from __future__ import annotations

from rest_framework import serializers

from notifications.models import Notification


class ReasonSerializer(serializers.Serializer):
    """One rule that fired: ``{"kind": "drop_percent", "rule_id": 7, "detail": "-12.5% from 40.00", ...}``."""

    kind = serializers.CharField(help_text="The rule's kind (below_target, drop_percent, new_low, ...).")
    rule_id = serializers.IntegerField(allow_null=True, help_text="The rule (it may have been deleted since).")
    detail = serializers.CharField(help_text="What happened, in words.")
    observed_price = serializers.CharField(help_text="The price of the observation it fired on.")
    observed_at = serializers.DateTimeField(allow_null=True)
    suppressed = serializers.CharField(
        allow_blank=True,
        help_text='Blank when you were told; "cooldown" or "daily_limit" when the firing was only recorded.',
    )


class NotificationSerializer(serializers.ModelSerializer):
    """One alert: the observation of one tracker's product on which its rules fired, and why."""

    asin = serializers.CharField(source="product.asin", read_only=True)
    title = serializers.CharField(source="product.title", read_only=True)
    # Null only on account-email rows, which this API does not list: alerts always have a price.
    price = serializers.DecimalField(
        max_digits=12, decimal_places=2, read_only=True, help_text="The observed price (same as observed_price)."
    )
    observed_price = serializers.DecimalField(source="price", max_digits=12, decimal_places=2, read_only=True)
    previous_price = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        read_only=True,
        allow_null=True,
        help_text="The previous successful observation's price (null: there was none).",
    )
    target_price = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        read_only=True,
        allow_null=True,
        help_text="The target of the below_target rule that fired (null: none did).",
    )
    reasons = ReasonSerializer(many=True, read_only=True, help_text="Every rule that fired, strongest first.")
    merged_into = serializers.IntegerField(
        source="merged_into_id",
        read_only=True,
        allow_null=True,
        help_text="MERGED alerts: the alert, waiting for your quiet hours to end, whose email lists this one.",
    )
    # Blank until the first send attempt resolves the address, so not an "email" in the schema.
    to_email = serializers.CharField(read_only=True, help_text="Where the alert went; blank before the first attempt.")

    class Meta:
        model = Notification
        fields = [
            "id",
            "tracker",
            "asin",
            "title",
            "price",
            "observed_price",
            "previous_price",
            "target_price",
            "currency",
            "reasons",
            "merged_into",
            "status",
            "attempts",
            "last_error",
            "to_email",
            "created_at",
            "sent_at",
        ]
        read_only_fields = fields


class TestEmailSentSerializer(serializers.Serializer):
    status = serializers.CharField()
    to_email = serializers.EmailField()
    message = serializers.CharField()
