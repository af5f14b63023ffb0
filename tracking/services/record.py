"""Record: write one finished attempt (run, price point, product cache, backoff, breaker) and
evaluate the product's trackers' alert rules against the new price point, all in one transaction.

If that transaction fails (a bug, a value the database refuses, a crashing hook), the attempt
is still recorded: as a FAILED run (``internal_error``) in a fresh transaction, counting toward
the product's backoff. Before, the run stayed RUNNING until the sweep closed it and the product
was due at once again: one bad page was fetched every few minutes, forever.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from scraping import policy as store_policy
from scraping.models import Store
from scraping.results import ScrapeResult, ScrapeStatus
from tracking import policy
from tracking.models import INTERNAL_ERROR, PricePoint, Product, RunStatus, ScrapeRun, Tracker
from tracking.services.evaluate import History, alerts_record, rules_of, tracker_evaluate

logger = logging.getLogger("tracking")

# The shortest wait before retrying a failed product, whatever the store's backoff says.
MIN_RETRY_DELAY = timedelta(minutes=1)
RECORD_FAILED_MESSAGE = "The result could not be recorded (internal error; see the worker log)."


def failure_delay(*, store: Store, interval_minutes: int, failures: int) -> timedelta:
    """How long a product waits after its ``failures``-th consecutive failure.

    The store's exponential backoff (``scraping.policy.backoff_delay``), capped at the product's
    own interval: a product that keeps failing is checked as often as a healthy one at most, and
    never less often, so a long failure streak cannot hide a recovery (or a deal) for a day.
    Never under a minute.
    """
    delay = min(store_policy.backoff_delay(store, failures), timedelta(minutes=interval_minutes))
    return max(delay, MIN_RETRY_DELAY)


def failure_fields(*, store: Store, interval_minutes: int, failures: int, now: datetime) -> dict[str, object]:
    """The product columns a failed attempt sets: the new streak and when to retry."""
    delay = failure_delay(store=store, interval_minutes=interval_minutes, failures=failures)
    return {"consecutive_failures": failures, "backoff_until": now + delay, "next_scrape_at": now + delay}


def run_finish(
    *, run: ScrapeRun, product: Product, result: ScrapeResult, error_kind_override: str | None = None
) -> ScrapeRun | None:
    """Record a finished attempt atomically: run, price point, product cache and backoff,
    breaker, and the trackers' alert state. Returns None if the run was already closed.

    Never leaves the run RUNNING because recording failed: the exception is logged and the
    attempt is recorded as FAILED / ``internal_error`` instead (:func:`run_fail_internal`).
    """
    try:
        return _record(run=run, product=product, result=result, error_kind_override=error_kind_override)
    except Exception:
        # Everything the transaction wrote is rolled back (it was one atomic block); what is
        # left to do is close the run and count the failure, in a transaction of its own.
        logger.exception("recording a scrape result failed", extra={"asin": product.asin})
        return run_fail_internal(run=run, product=product, result=result)


def _record(
    *, run: ScrapeRun, product: Product, result: ScrapeResult, error_kind_override: str | None
) -> ScrapeRun | None:
    now = timezone.now()
    status_value = str(result.status)
    error_kind = error_kind_override or str(result.error_kind)
    with transaction.atomic():
        run_fields: dict[str, object] = {
            "status": status_value,
            "error_kind": error_kind,
            "message": result.message[:500],
            "http_status": result.http_status,
            "bytes_received": result.bytes_received,
            "duration_ms": result.duration_ms,
            "rule": result.rule[:100],
            "availability": str(result.availability) if result.ok else "",
            "finished_at": now,
        }
        closed = ScrapeRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(**run_fields)
        if not closed:
            # The recovery sweep closed it as lost while we were fetching: its product is
            # already due again, and recording now could duplicate the next run's work.
            logger.warning("scrape result discarded: run already closed", extra={"asin": product.asin})
            return None
        # What the UPDATE wrote, without reading the row back (the write lock is held meanwhile).
        for name, value in run_fields.items():
            setattr(run, name, value)
        store = product.store
        point = None
        fields: dict[str, object] = {
            "last_scraped_at": now,
            "last_scrape_status": status_value,
            "last_error_kind": error_kind,
            "last_rule": result.rule[:100],
            "claimed_until": None,
            "claim_token": None,
        }
        interval = timedelta(minutes=product.interval_minutes)
        if result.ok:
            fields.update(
                consecutive_failures=0,
                backoff_until=None,
                last_success_at=now,
                availability=str(result.availability),
                next_scrape_at=now + interval + timedelta(seconds=policy.jitter_seconds(interval)),
            )
            if result.title:
                fields["title"] = result.title[:500]
            if result.price is not None:
                fields.update(current_price=result.price, currency=result.currency or "", list_price=result.list_price)
                point = PricePoint.objects.create(
                    product=product,
                    run=run,
                    price=result.price,
                    currency=result.currency or "",
                    list_price=result.list_price,
                    availability=str(result.availability),
                    observed_at=now,
                )
            else:
                fields["current_price"] = None
        else:
            fields.update(
                failure_fields(
                    store=store,
                    interval_minutes=product.interval_minutes,
                    failures=product.consecutive_failures + 1,
                    now=now,
                )
            )
        trackers = list(Tracker.objects.enabled().filter(product_id=product.pk).select_related("user"))
        if not trackers:
            fields["next_scrape_at"] = None
        Product.objects.filter(pk=product.pk).update(**fields)
        policy.breaker_record(store_id=store.pk, status=status_value, now=now)
        if point is not None and trackers:
            # One query for every tracker's rules; the history they compare with is read once.
            rules = rules_of([tracker.pk for tracker in trackers])
            history = History(point=point, cached_price=product.current_price, cached_availability=product.availability)
            evaluations = [
                evaluation
                for tracker in trackers
                if (
                    evaluation := tracker_evaluate(
                        tracker=tracker, point=point, history=history, rules=rules[tracker.pk]
                    )
                )
            ]
            alerts_record(evaluations=evaluations, moment=point.observed_at)
    logger.info(
        "scrape %s %s %s %dms",
        product.asin,
        status_value,
        error_kind or "-",
        result.duration_ms,
        extra={"asin": product.asin, "status": status_value, "kind": error_kind, "duration_ms": result.duration_ms},
    )
    return run


def run_fail_internal(*, run: ScrapeRun, product: Product, result: ScrapeResult) -> ScrapeRun | None:
    """Close ``run`` as FAILED / ``internal_error`` and count the failure toward the backoff.

    Used when recording ``result`` raised. Keeps only what cannot be wrong (timings, HTTP status,
    rule), never the price. Returns None if the run was already closed (by the sweep).
    """
    now = timezone.now()
    run_fields: dict[str, object] = {
        "status": RunStatus.FAILED,
        "error_kind": INTERNAL_ERROR,
        "message": RECORD_FAILED_MESSAGE,
        "http_status": result.http_status,
        "bytes_received": result.bytes_received,
        "duration_ms": result.duration_ms,
        "rule": result.rule[:100],
        "availability": "",
        "finished_at": now,
    }
    with transaction.atomic():
        if not ScrapeRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(**run_fields):
            return None
        fields: dict[str, object] = {
            "last_scraped_at": now,
            "last_scrape_status": RunStatus.FAILED,
            "last_error_kind": INTERNAL_ERROR,
            "last_rule": result.rule[:100],
            "claimed_until": None,
            "claim_token": None,
            **failure_fields(
                store=product.store,
                interval_minutes=product.interval_minutes,
                failures=product.consecutive_failures + 1,
                now=now,
            ),
        }
        if not Tracker.objects.enabled().filter(product_id=product.pk).exists():
            fields["next_scrape_at"] = None
        Product.objects.filter(pk=product.pk).update(**fields)
        policy.breaker_record(store_id=product.store_id, status=ScrapeStatus.FAILED, now=now)
    for name, value in run_fields.items():
        setattr(run, name, value)
    logger.info("scrape %s FAILED %s", product.asin, INTERNAL_ERROR, extra={"asin": product.asin})
    return run
