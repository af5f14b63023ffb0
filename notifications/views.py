"""Notifications API: the user's own alerts (read-only) and a test email.

Every queryset is scoped to ``request.user``: another user's notification is a 404, never a 403.
Account emails share the outbox table but are not alerts, so they are not listed here.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from notifications import services
from notifications.models import Notification, NotificationKind, NotificationStatus
from notifications.serializers import NotificationSerializer, TestEmailSentSerializer
from pricetracker.api import request_user


class NotificationFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=NotificationStatus.choices)

    class Meta:
        model = Notification
        fields = ["status"]


class NotificationViewSet(viewsets.ReadOnlyModelViewSet):
    """The user's price alerts, newest first, with their delivery status; filter by ``status``."""

    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter
    # For the schema generator only (it has no user); requests always go through get_queryset().
    queryset = Notification.objects.none()

    def get_queryset(self) -> QuerySet[Notification]:
        return (
            Notification.objects.filter(user=request_user(self.request), kind=NotificationKind.ALERT)
            .select_related("product")
            .order_by("-created_at", "-pk")
        )


class TestEmailView(APIView):
    """Send a test email to your alert address now, to check that alerts can reach you."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "test_email"

    @extend_schema(
        request=None,
        responses={
            200: TestEmailSentSerializer,
            400: OpenApiResponse(description="You have no confirmed email address for alerts."),
            429: OpenApiResponse(description="Too many test emails; try again later."),
            502: OpenApiResponse(description="The mail server refused or could not be reached; the error is given."),
        },
    )
    def post(self, request: Request) -> Response:
        address = services.notification_send_test(user=request_user(request))
        return Response({"status": "sent", "to_email": address, "message": f"A test email was sent to {address}."})
