"""``GET /api/health/``: is this installation able to do its job?

Answers 200 when healthy and 503 otherwise, with one entry per check. Never includes secrets,
hostnames of backing services or error texts that could contain them.
"""

from __future__ import annotations

import logging

from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

logger = logging.getLogger(__name__)


def check_database() -> dict[str, object]:
    """Run a trivial query on the default database."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.exception("health: database check failed")
        return {"ok": False, "vendor": connection.vendor}
    return {"ok": True, "vendor": connection.vendor}


class HealthView(APIView):
    """Report database status (later: cluster heartbeat, queue depth, scrape figures)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            200: inline_serializer("Health", {"status": serializers.CharField(), "checks": serializers.DictField()}),
            503: inline_serializer("Unhealthy", {"status": serializers.CharField(), "checks": serializers.DictField()}),
        }
    )
    def get(self, request: Request) -> Response:
        checks = {"database": check_database()}
        healthy = all(bool(check["ok"]) for check in checks.values())
        return Response({"status": "ok" if healthy else "unhealthy", "checks": checks}, status=200 if healthy else 503)
