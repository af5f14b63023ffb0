"""Recovery: close runs whose worker died or whose task was lost, so their products are due again."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from tracking.models import WORKER_LOST, Product, RunStatus, ScrapeRun
from tracking.services.record import failure_delay

logger = logging.getLogger("tracking")


def runs_recover_stale(*, now: datetime | None = None) -> int:
    """Close runs left RUNNING past their lease (worker killed, task lost) and make their
    products due again after the failure backoff. Returns how many runs were closed.

    A lost run counts as a failure of its product: a page that kills or hangs the worker every
    time (or a result that can never be recorded) must back off like any other failure instead
    of being fetched again at once, forever.
    """
    now = now or timezone.now()
    closed = 0
    stale = ScrapeRun.objects.filter(status=RunStatus.RUNNING, lease_until__lt=now)
    for run in stale.only("pk", "product_id", "claim_token")[:500]:
        with transaction.atomic():
            if not ScrapeRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
                status=RunStatus.FAILED,
                error_kind=WORKER_LOST,
                message="The worker stopped before finishing (killed or timed out); the product is due again "
                "after the failure backoff.",
                finished_at=now,
            ):
                continue
            product = (
                Product.objects.select_related("store")
                .only("interval_minutes", "consecutive_failures", "store")
                .get(pk=run.product_id)
            )
            delay = failure_delay(
                store=product.store,
                interval_minutes=product.interval_minutes,
                failures=product.consecutive_failures + 1,
            )
            # One conditional UPDATE: only while the lost run's claim is still the product's (a
            # newer claim means another run owns the product now), the claim is released and the
            # failure counted in the same statement (F(): no lost increment).
            Product.objects.filter(pk=run.product_id, claim_token=run.claim_token).update(
                claimed_until=None, claim_token=None, next_scrape_at=now + delay, backoff_until=now + delay,
                consecutive_failures=F("consecutive_failures") + 1, last_scraped_at=now,
                last_scrape_status=RunStatus.FAILED, last_error_kind=WORKER_LOST,
            )  # fmt: skip
            closed += 1
    if closed:
        logger.warning("recovered %d stale runs", closed)
    return closed
