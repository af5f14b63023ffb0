"""Every API error is JSON ``{"message", "code", "errors"?}``; never a stack trace or an HTML page."""

from __future__ import annotations

import logging

import pytest
from django.http import Http404
from django.urls import path
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from pricetracker.api import ApplicationError


class Boom(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        raise RuntimeError("secret database password is hunter2")


class NeedsName(APIView):
    permission_classes = [AllowAny]

    class Input(serializers.Serializer):
        name = serializers.CharField()
        age = serializers.IntegerField(min_value=0)

    def post(self, request: Request) -> Response:
        self.Input(data=request.data).is_valid(raise_exception=True)
        return Response({})


class Refuses(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        raise ApplicationError("You already track 5 products.", code="limit_reached", status_code=409)


class Missing(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        raise Http404("no such tracker 42")


urlpatterns = [
    path("boom/", Boom.as_view()),
    path("needs-name/", NeedsName.as_view()),
    path("refuses/", Refuses.as_view()),
    path("missing/", Missing.as_view()),
]

pytestmark = pytest.mark.urls(__name__)


def test_an_unexpected_exception_is_a_json_500_without_a_traceback(caplog):
    with caplog.at_level(logging.ERROR, logger="pricetracker.api"):
        response = APIClient().get("/boom/")

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"message": "Internal server error. The error was logged.", "code": "server_error"}
    assert b"hunter2" not in response.content
    assert b"Traceback" not in response.content
    # The operator still gets the traceback, in the log.
    assert "hunter2" in caplog.text


def test_the_exception_handler_answers_a_view_called_directly():
    response = Boom.as_view()(APIRequestFactory().get("/boom/"))

    assert response.status_code == 500
    assert response.data["code"] == "server_error"


def test_a_validation_error_has_a_message_and_errors_per_field():
    response = APIClient().post("/needs-name/", {"age": -1}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert body["message"] == "name: This field is required."
    assert body["errors"] == {
        "name": ["This field is required."],
        "age": ["Ensure this value is greater than or equal to 0."],
    }


def test_malformed_json_is_a_400_with_a_message():
    response = APIClient().post("/needs-name/", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_an_application_error_keeps_its_status_and_code():
    response = APIClient().get("/refuses/")

    assert response.status_code == 409
    assert response.json() == {"message": "You already track 5 products.", "code": "limit_reached"}


def test_http404_in_a_view_is_a_json_404_that_hides_the_detail():
    response = APIClient().get("/missing/")

    assert response.status_code == 404
    assert response.json() == {"message": "Not found.", "code": "not_found"}


@pytest.mark.urls("pricetracker.urls")
def test_an_unknown_url_is_a_json_404(db):
    response = APIClient().get("/api/no-such-endpoint/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"message": "Not found.", "code": "not_found"}
