"""Record: write one finished attempt (run, price point, product cache, backoff, breaker) and
evaluate the product's trackers against the new price point, all in one transaction."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from scraping.results import ScrapeResult
from tracking import policy
from tracking.models import PricePoint, Product, RunStatus, ScrapeRun, TrackingConfig
from tracking.services.evaluate import tracker_evaluate

logger = logging.getLogger("tracking")


def run_finish(
    *, run: ScrapeRun, product: Product, result: ScrapeResult, error_kind_override: str | None = None
) -> ScrapeRun | None:
    """Record a finished attempt atomically: run, price point, product cache and backoff,
    breaker, and the trackers' alert state. Returns None if the run was already closed."""
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
            failures = product.consecutive_failures + 1
            delay = policy.backoff_delay(store, failures)
            # Never sooner than the product's own interval after a success would have been.
            delay = max(delay, timedelta(minutes=1))
            fields.update(consecutive_failures=failures, backoff_until=now + delay, next_scrape_at=now + delay)
        trackers = list(TrackingConfig.objects.filter(product_id=product.pk, enabled=True).select_related("user"))
        if not trackers:
            fields["next_scrape_at"] = None
        Product.objects.filter(pk=product.pk).update(**fields)
        policy.breaker_record(store_id=store.pk, status=status_value, now=now)
        if point is not None:
            for tracker in trackers:
                tracker_evaluate(tracker=tracker, point=point)
    logger.info(
        "scrape %s %s %s %dms",
        product.asin,
        status_value,
        error_kind or "-",
        result.duration_ms,
        extra={"asin": product.asin, "status": status_value, "kind": error_kind, "duration_ms": result.duration_ms},
    )
    return run
