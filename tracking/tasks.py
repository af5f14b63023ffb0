"""django-q2 task entry points. Thin: take ids, call one service, return a small summary.

Expected scrape failures are recorded as runs and return normally, so django-q2 only sees a
failed task when our own code is broken.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from tracking import policy, services


def scrape_product(
    product_id: int,
    claim_token: str,
    trigger: str = "scheduled",
    requested_by_id: int | None = None,
    not_before: str | None = None,
) -> str:
    """Scrape one claimed product (enqueued by the dispatcher, a manual request or a new tracker).

    ``not_before`` (ISO 8601): claimed ahead of its due time by the dispatcher; wait for it first.
    """
    if not_before:
        policy.wait_until_due(datetime.fromisoformat(not_before))
    run = services.product_scrape(
        product_id=product_id, claim_token=uuid.UUID(claim_token), trigger=trigger, requested_by_id=requested_by_id
    )
    return "skipped" if run is None else f"{run.status} {run.error_kind}".strip()


def dispatch_due_products() -> str:
    """Every minute: claim due products and enqueue their scrapes (one dispatcher at a time)."""
    # The holder is this worker process, named at call time: django-q2 forks its workers after
    # this module is imported, so a name computed at import would be the parent's, shared by all.
    holder = services.worker_name()
    if not policy.lease_acquire("dispatcher", holder=holder, seconds=50):
        return "another dispatcher is running"
    try:
        report = services.dispatch_due_products()
    finally:
        policy.lease_release("dispatcher", holder=holder)
    return f"claimed {report.claimed} {report.per_store}"


def recover_stale_runs() -> str:
    """Every minute: close runs whose worker died and make their products due again."""
    return f"recovered {services.runs_recover_stale()}"
