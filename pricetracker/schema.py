"""OpenAPI generation: every operation documents the errors it can answer, in the one error shape.

Views document their success bodies and the refusals particular to them (``extend_schema``);
the errors that follow from how a view is built are added here, so a client (or a fuzzer) never
meets an undocumented status code:

* 400 for an operation with a request body or query parameters (validation, malformed JSON);
* 401 for a view that authenticates (missing, invalid or expired token);
* 404 for an operation with path parameters (not found, or not yours) or a page number;
* 413 and 415 for an operation with a request body (too large; only JSON is accepted);
* 429 for a throttled view.

Every error response, added here or only described by a view, gets the body of
:class:`ErrorSerializer` (see :mod:`pricetracker.api`).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers

GENERIC_ERRORS = {
    "400": "Invalid input: `message`, `code` and, for validation errors, `errors` per field.",
    "401": "Missing, invalid or expired credentials.",
    "404": "Not found (or not yours).",
    "413": "The request body is larger than `DATA_UPLOAD_MAX_MEMORY_SIZE`.",
    "415": "Unsupported media type: send JSON.",
    "429": "Too many requests; retry after the `Retry-After` header.",
}


class ErrorSerializer(serializers.Serializer):
    """The body of every error response (``pricetracker.api.exception_handler``)."""

    message = serializers.CharField(help_text="A sentence for the user.")
    code = serializers.CharField(help_text="A stable machine-readable code.")
    # ``errors`` is added in get_fields(): as a class attribute it would read as overriding
    # Serializer.errors (DRF's metaclass takes declared fields off the class; type checkers do not know).

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["errors"] = serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text="Validation errors only: messages per field (`non_field_errors` for the whole body).",
        )
        return fields


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema plus the error responses every operation can give."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses: dict[str, Any] = operation.setdefault("responses", {})
        for code in self._generic_error_codes(operation):
            responses.setdefault(code, {"description": GENERIC_ERRORS[code]})
        error_body = {"application/json": {"schema": self.resolve_serializer(ErrorSerializer(), "response").ref}}
        for code, response in responses.items():
            if code >= "400" and "content" not in response:
                response["content"] = error_body
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _generic_error_codes(self, operation: dict[str, Any]) -> list[str]:
        locations = {parameter.get("in") for parameter in operation.get("parameters", [])}
        names = {parameter.get("name") for parameter in operation.get("parameters", [])}
        has_body = "requestBody" in operation
        codes = []
        if has_body or "query" in locations:
            codes.append("400")
        if self.view.get_authenticators():
            codes.append("401")
        if "path" in locations or "page" in names:
            codes.append("404")
        if has_body:
            codes += ["413", "415"]
        if getattr(self.view, "throttle_scope", None) and self.view.get_throttles():
            codes.append("429")
        return codes
