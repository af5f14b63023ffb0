"""API conventions shared by every app: pagination, one exception handler, and the one table
from domain errors (:mod:`pricetracker.errors`, raised by services) to HTTP statuses.

Every error response has the same JSON shape::

    {"message": "Human readable summary.", "code": "machine_code", "errors": {"field": ["..."]}}

``errors`` is present for validation failures only. A 429 or 503 whose exception knows when to
come back (DRF's ``Throttled.wait``, a domain error's ``retry_after_seconds``) carries
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
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.models import User
from pricetracker.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    LimitReached,
    RateLimited,
    Unavailable,
    UpstreamFailed,
)

logger = logging.getLogger("pricetracker.api")


def request_user(request: Request) -> User:
    """The signed-in user of a request that passed ``IsAuthenticated``.

    DRF types ``request.user`` as ``User | AnonymousUser`` whatever the permissions say; this
    narrows it for the services, which take a ``User``, and answers 401 should a view ever be
    reached without one rather than hand an anonymous user on.
    """
    user = request.user
    if not isinstance(user, User):
        raise exceptions.NotAuthenticated()
    return user


class Pagination(PageNumberPagination):
    """Page-number pagination; clients may ask for up to 200 items a page.

    A ``page_size`` that is not a whole number from 1 is a 400 (DRF would silently use the
    default, so a client's typo would go unnoticed); one above the maximum is capped.
    """

    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int | None:
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


# The one table from domain errors (pricetracker.errors, raised by services) to HTTP statuses.
DOMAIN_STATUS: dict[type[DomainError], int] = {
    InvalidInput: status.HTTP_400_BAD_REQUEST,
    LimitReached: status.HTTP_403_FORBIDDEN,
    Conflict: status.HTTP_409_CONFLICT,
    RateLimited: status.HTTP_429_TOO_MANY_REQUESTS,
    UpstreamFailed: status.HTTP_502_BAD_GATEWAY,
    Unavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}


def domain_status(exc: DomainError) -> int:
    """The HTTP status of a domain error: its nearest family in :data:`DOMAIN_STATUS` (else 400)."""
    for cls in type(exc).__mro__:
        if cls in DOMAIN_STATUS:
            return DOMAIN_STATUS[cls]
    return status.HTTP_400_BAD_REQUEST


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def _field_errors(detail: Any, path: str = "") -> dict[str, list[str]]:
    """Validation errors as ``{field: [messages]}``, nested fields named by their path.

    A nested input (a tracker's ``rules``) fails per item: ``{"rules.1.percent": [...]}``, so
    every error body keeps the one documented shape whatever the input's depth.
    """
    if isinstance(detail, dict):
        errors: dict[str, list[str]] = {}
        for key, value in detail.items():
            inner = path if key == "non_field_errors" and path else f"{path}.{key}" if path else str(key)
            for name, messages in _field_errors(value, inner).items():
                errors.setdefault(name, []).extend(messages)
        return errors
    if isinstance(detail, list) and any(isinstance(item, (dict, list)) for item in detail):
        errors = {}
        for index, item in enumerate(detail):
            for name, messages in _field_errors(item, f"{path}.{index}" if path else str(index)).items():
                errors.setdefault(name, []).extend(messages)
        return errors
    messages = detail if isinstance(detail, list) else [detail]
    return {path or "non_field_errors": [str(message) for message in messages]}


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
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not math.isfinite(wait):
        return None
    return max(0, math.ceil(wait))


def _domain_error_response(exc: DomainError) -> Response:
    """A domain error as the API's error body: a field error like a validation error, others
    with their code and extra data (``tracker_id``, ``retry_after_seconds``)."""
    status_code = domain_status(exc)
    body: dict[str, Any] = {"message": exc.message, "code": exc.code}
    if exc.field is not None:
        messages = exc.messages or [exc.message]
        body = {"message": f"{exc.field}: {messages[0]}", "code": exc.code, "errors": {exc.field: messages}}
    body.update(exc.extra)
    response = Response(body, status=status_code)
    retry_after = exc.retry_after_seconds
    if retry_after is not None and status_code in RETRY_AFTER_STATUSES:
        response["Retry-After"] = str(retry_after)
    return response


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render every API error as ``{"message", "code", "errors"?}``; hide unexpected ones."""
    if isinstance(exc, DomainError):
        return _domain_error_response(exc)
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
        errors = _field_errors(exc.detail)
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
    else:  # pragma: no cover - DRF only answers for APIException subclasses
        body = {"message": "Error.", "code": "error"}
    response.data = body
    return response


def json_error_view(status_code: int, message: str, code: str):
    """Build a plain Django view that answers JSON errors (for handler404/handler500)."""

    def view(request, exception=None):
        return JsonResponse({"message": message, "code": code}, status=status_code)

    return view
