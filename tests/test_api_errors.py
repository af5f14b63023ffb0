"""Every API error is JSON ``{"message", "code", "errors"?}``; never a stack trace or an HTML page."""

from __future__ import annotations

import logging

import pytest
from django.http import Http404
from django.urls import path
from rest_framework import exceptions, serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from pricetracker.api import request_user
from pricetracker.errors import Conflict, InvalidInput, RateLimited, Unavailable


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
        raise Conflict("You already track 5 products.", code="limit_reached")


class Missing(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        raise Http404("no such tracker 42")


class Throttles(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        raise exceptions.Throttled(wait=float(request.query_params["wait"]))


class RefusesFor(APIView):
    """A domain error of the family whose status is in the query string, with its ``retry_after_seconds``."""

    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        extra = {"retry_after_seconds": int(request.query_params["retry"])} if "retry" in request.query_params else None
        family = {400: InvalidInput, 409: Conflict, 429: RateLimited, 503: Unavailable}[
            int(request.query_params["status"])
        ]
        raise family("Not now.", code="not_now", extra=extra)


class WantsUser(APIView):
    """A view that forgot IsAuthenticated but hands the signed-in user to a service."""

    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        return Response({"email": request_user(request).email})


urlpatterns = [
    path("throttles/", Throttles.as_view()),
    path("refuses-for/", RefusesFor.as_view()),
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


def test_a_view_needing_a_user_answers_401_to_an_anonymous_request_never_passes_it_on():
    response = WantsUser.as_view()(APIRequestFactory().get("/wants-user/"))

    assert response.status_code == 401
    assert response.data["code"] == "not_authenticated"


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


def test_a_domain_error_gets_its_familys_status_and_keeps_its_code():
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


@pytest.mark.parametrize(("wait", "header"), [(0.4, "1"), (59.0, "59"), (3599.2, "3600")])
def test_a_throttled_answer_says_when_to_retry_in_whole_seconds_rounded_up(wait, header):
    response = APIClient().get("/throttles/", {"wait": wait})

    assert response.status_code == 429
    assert response["Retry-After"] == header
    assert response.json()["code"] == "throttled"


@pytest.mark.parametrize("status", [429, 503])
def test_a_refusal_that_knows_when_to_come_back_sends_retry_after(status):
    response = APIClient().get("/refuses-for/", {"status": status, "retry": 120})

    assert response.status_code == status
    assert response["Retry-After"] == "120"
    assert response.json() == {"message": "Not now.", "code": "not_now", "retry_after_seconds": 120}


@pytest.mark.parametrize(("status", "retry"), [(503, None), (429, None), (409, 120), (400, 120)])
def test_retry_after_is_sent_only_by_a_429_or_503_that_knows_when(status, retry):
    query = {"status": status} | ({"retry": retry} if retry is not None else {})

    response = APIClient().get("/refuses-for/", query)

    assert response.status_code == status
    assert "Retry-After" not in response


def test_every_domain_error_family_has_one_status():
    from pricetracker.api import DOMAIN_STATUS, domain_status
    from pricetracker.errors import DomainError
    from tracking import errors as tracking_errors

    assert {cls.__name__: code for cls, code in DOMAIN_STATUS.items()} == {
        "InvalidInput": 400,
        "LimitReached": 403,
        "Conflict": 409,
        "RateLimited": 429,
        "UpstreamFailed": 502,
        "Unavailable": 503,
    }
    # Each concrete tracking refusal belongs to exactly one family.
    for cls in vars(tracking_errors).values():
        if isinstance(cls, type) and issubclass(cls, DomainError) and cls.__module__ == tracking_errors.__name__:
            assert sum(issubclass(cls, family) for family in DOMAIN_STATUS) == 1, cls
    assert domain_status(tracking_errors.AlreadyQueued()) == 409
