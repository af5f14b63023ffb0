"""API conventions shared by every app: pagination, one error type, one exception handler.

Every error response has the same JSON shape::

    {"message": "Human readable summary.", "code": "machine_code", "errors": {"field": ["..."]}}

``errors`` is present for validation failures only. A 429 or 503 whose exception knows when to
come back (DRF's ``Throttled.wait``, an ``ApplicationError``'s ``retry_after_seconds``) carries
it in a ``Retry-After`` header, in whole seconds. Unexpected exceptions become a generic 500
with no stack trace; the traceback goes to the log.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger("pricetracker.api")


class Pagination(PageNumberPagination):
    """Page-number pagination; clients may ask for up to 200 items a page.

    A ``page_size`` that is not a whole number from 1 is a 400 (DRF would silently use the
    default, so a client's typo would go unnoticed); one above the maximum is capped.
    """

    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request: Any) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if size < 1:
            raise exceptions.ValidationError(
                {self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]}
            )
        return min(size, self.max_page_size)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = f"Items per page (default {self.page_size}, at most {self.max_page_size})."
            elif parameter["name"] == self.page_query_param:
                parameter["schema"]["minimum"] = 1
        return parameters


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


class ApplicationError(exceptions.APIException):
    """A business rule refused the request (limit reached, store paused, ...).

    Services raise it with a message a user understands; the handler renders it like any
    other API error.
    """

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "refused"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail=message, code=code or self.default_code)
        if status_code is not None:
            self.status_code = status_code
        self.extra = extra or {}


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def _first_message(errors: Any) -> str | None:
    if isinstance(errors, dict):
        for key, value in errors.items():
            found = _first_message(value)
            if found:
                return found if key == "non_field_errors" else f"{key}: {found}"
    if isinstance(errors, list):
        for item in errors:
            found = _first_message(item)
            if found:
                return found
    if isinstance(errors, str):
        return errors
    return None


# Statuses whose Retry-After means "try again after this many seconds" (RFC 9110, 10.2.3).
RETRY_AFTER_STATUSES = frozenset({status.HTTP_429_TOO_MANY_REQUESTS, status.HTTP_503_SERVICE_UNAVAILABLE})


def _retry_after_seconds(exc: Exception) -> int | None:
    """When the client may try again, in whole seconds rounded up; None when nobody knows."""
    wait = getattr(exc, "wait", None)
    if wait is None and isinstance(exc, ApplicationError):
        wait = exc.extra.get("retry_after_seconds")
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not math.isfinite(wait):
        return None
    return max(0, math.ceil(wait))


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render every API error as ``{"message", "code", "errors"?}``; hide unexpected ones."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        # Raised by Django when DRF reads a body over DATA_UPLOAD_MAX_MEMORY_SIZE; Django alone
        # would answer 400, but DRF hands it here first, where it was an "unexpected" 500.
        exc = PayloadTooLarge(f"The request body is too large (at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes).")
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError("Malformed request.")

    response = drf_exception_handler(exc, context)
    if response is None:
        view = context.get("view")
        logger.exception("Unhandled error in %s", type(view).__name__ if view else "API view", exc_info=exc)
        return Response(
            {"message": "Internal server error. The error was logged.", "code": "server_error"},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    retry_after = _retry_after_seconds(exc)
    if retry_after is not None and response.status_code in RETRY_AFTER_STATUSES:
        # DRF's own handler sets it for Throttled only; refusals of the services (too_soon, email
        # limits) carry their wait in ``extra``, where a client's HTTP library never looks.
        response["Retry-After"] = str(retry_after)

    body: dict[str, Any]
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        if not isinstance(errors, dict):
            errors = {"non_field_errors": errors if isinstance(errors, list) else [errors]}
        body = {"message": _first_message(errors) or "Invalid input.", "code": "invalid", "errors": errors}
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        if isinstance(detail, dict) and "detail" in detail:
            # simplejwt wraps its errors: {"detail": ..., "code": ..., "messages": [...]}.
            code = detail.get("code", "error")
            exc = exceptions.APIException(detail=str(detail["detail"]), code=str(code))
            exc.status_code = response.status_code
        codes = exc.get_codes()
        body = {
            "message": str(exc.detail)
            if not isinstance(exc.detail, (dict, list))
            else _first_message(_flatten(exc.detail)) or "Error.",
            "code": codes if isinstance(codes, str) else "error",
        }
        if isinstance(exc, ApplicationError) and exc.extra:
            body.update(exc.extra)
    else:  # pragma: no cover - DRF only answers for APIException subclasses
        body = {"message": "Error.", "code": "error"}
    response.data = body
    return response


def json_error_view(status_code: int, message: str, code: str):
    """Build a plain Django view that answers JSON errors (for handler404/handler500)."""

    def view(request, exception=None):
        return JsonResponse({"message": message, "code": code}, status=status_code)

    return view
