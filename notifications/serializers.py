"""Notification JSON. Prices are decimal strings, as everywhere in the API."""

from __future__ import annotations

from rest_framework import serializers

from notifications.models import Notification


class NotificationSerializer(serializers.ModelSerializer):
    asin = serializers.CharField(source="product.asin", read_only=True)
    title = serializers.CharField(source="product.title", read_only=True)

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
