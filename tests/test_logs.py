"""Logs: one JSON line per scrape outcome with its fields; credentials never reach a log line."""

from __future__ import annotations

import json
import logging

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils.log import log_response

from pricetracker.logging import JsonFormatter
from scraping.results import ErrorKind, ScrapeResult, ScrapeStatus
from tests.tracking_factories import make_product, make_tracker
from tracking import services

pytestmark = pytest.mark.django_db


def scrape_lines(caplog) -> list[dict]:
    """The scrape-outcome records of the ``tracking`` logger, as the JSON formatter writes them."""
    formatter = JsonFormatter()
    return [
        json.loads(formatter.format(record))
        for record in caplog.records
        if record.name == "tracking" and record.getMessage().startswith("scrape ")
    ]


def scrape(product) -> None:
    token = services.product_claim(product_id=product.pk)
    assert token is not None, "product already claimed"
    services.product_scrape(product_id=product.pk, claim_token=token)


def test_a_scrape_outcome_is_one_json_line_with_asin_status_kind_and_duration(provider, store, alice, caplog):
    product = make_product(store, "B0LOGS0001")
    make_tracker(alice, product)
    provider.queue(
        "B0LOGS0001",
        ScrapeResult(status=ScrapeStatus.FAILED, error_kind=ErrorKind.TIMEOUT, duration_ms=20_004, message="timed out"),
    )

    with caplog.at_level(logging.INFO, logger="tracking"):
        scrape(product)

    [line] = scrape_lines(caplog)
    assert line["level"] == "info"
    assert line["logger"] == "tracking"
    fields = (line["asin"], line["status"], line["kind"], line["duration_ms"])
    assert fields == ("B0LOGS0001", "FAILED", "timeout", 20004)
    assert "B0LOGS0001 FAILED timeout 20004ms" in line["message"]


def test_a_successful_scrape_logs_one_line_too(provider, store, alice, caplog):
    product = make_product(store, "B0LOGS0002")
    make_tracker(alice, product)

    with caplog.at_level(logging.INFO, logger="tracking"):
        scrape(product)

    [line] = scrape_lines(caplog)
    assert (line["asin"], line["status"], line["kind"]) == ("B0LOGS0002", "SUCCESS", "")
    assert isinstance(line["duration_ms"], int)


def test_a_logged_server_error_never_contains_the_authorization_header():
    token = "eyJhbGciOiJIUzI1NiJ9.secret-access-token.signature"
    request = RequestFactory().get("/api/trackers/", HTTP_AUTHORIZATION=f"Bearer {token}")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logging.getLogger("django.request").addHandler(handler)
    try:
        log_response("Internal Server Error: %s", request.path, response=HttpResponse(status=500), request=request)
    finally:
        logging.getLogger("django.request").removeHandler(handler)

    [record] = records
    line = JsonFormatter().format(record)
    assert json.loads(line)["status_code"] == 500
    assert token not in line
    assert "Authorization" not in line
