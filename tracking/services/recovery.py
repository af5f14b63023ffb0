"""Recovery: close runs whose worker died or whose task was lost, so their products are due again."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from tracking.models import WORKER_LOST, Product, RunStatus, ScrapeRun

logger = logging.getLogger("tracking")


def runs_recover_stale(*, now: datetime | None = None) -> int:
    """Close runs left RUNNING past their lease (worker killed, task lost) and make their
    products due again. Returns how many runs were closed."""
    now = now or timezone.now()
    closed = 0
    for run in ScrapeRun.objects.filter(status=RunStatus.RUNNING, lease_until__lt=now).only("pk", "product_id")[:500]:
        with transaction.atomic():
            if not ScrapeRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
                status=RunStatus.FAILED,
                error_kind=WORKER_LOST,
                message="The worker stopped before finishing (killed or timed out); the product is due again.",
                finished_at=now,
            ):
                continue
            Product.objects.filter(pk=run.product_id, claim_token=run.claim_token).update(
                claimed_until=None, claim_token=None, next_scrape_at=now, last_scraped_at=now,
                last_scrape_status=RunStatus.FAILED, last_error_kind=WORKER_LOST,
            )  # fmt: skip
            closed += 1
    if closed:
        logger.warning("recovered %d stale runs", closed)
    return closed
