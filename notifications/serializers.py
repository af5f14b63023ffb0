"""Notification JSON. Prices are decimal strings, as everywhere in the API."""

from __future__ import annotations

from rest_framework import serializers

from notifications.models import Notification


class NotificationSerializer(serializers.ModelSerializer):
    asin = serializers.CharField(source="product.asin", read_only=True)
    title = serializers.CharField(source="product.title", read_only=True)
    # Null only on account-email rows, which this API does not list: alerts always have both.
    price = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)
    target_price = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)
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
            "target_price",
            "currency",
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
