"""Tracking workflows, one module a job. Views, tasks, commands and the admin call these
keyword-only functions; none of them holds business logic of its own.

One check of a product, a module a step:

- :mod:`~tracking.services.scheduling`: when a product is due, claims, the dispatcher, manual requests;
- :mod:`~tracking.services.queue`: enqueueing the scrape task (the only code that knows django-q2);
- :mod:`~tracking.services.scrape`: the task body (claim check, request slot, fetch);
- :mod:`~tracking.services.record`: write the run, the price point, backoff and breaker;
- :mod:`~tracking.services.evaluate`: apply the trackers' rules, call the notify hook
  (:mod:`tracking.hooks`, implemented by the notifications app);
- :mod:`~tracking.services.recovery`: runs whose worker died;
- :mod:`~tracking.services.trackers`, :mod:`~tracking.services.rules` and :mod:`~tracking.services.bulk`:
  what users and operators ask for.

Read-only queries live in :mod:`tracking.selectors`. This package re-exports the functions that
callers outside ``tracking.services`` use, so they import ``from tracking import services``;
code inside the package imports the module it needs (tests patch names where they are looked up).
"""

from tracking.services.bulk import (
    RESCRAPE_BATCH,
    RescrapeReport,
    products_rescrape_all,
    spread_slot,
    store_request_spacing,
    tracker_import,
)
from tracking.services.evaluate import tracker_evaluate, tracker_evaluate_current
from tracking.services.queue import enqueue_scrape
from tracking.services.record import run_finish
from tracking.services.recovery import runs_recover_stale
from tracking.services.rules import RuleSpec, rule_create, rule_delete, rule_update, rules_add
from tracking.services.scheduling import (
    CLAIM_LEASE,
    DISPATCH_MAX_PER_TICK,
    DispatchReport,
    dispatch_due_products,
    product_claim,
    product_refresh_schedule,
    product_request_scrape,
    store_apply_min_interval,
    store_check_open,
    tracker_request_scrape,
)
from tracking.services.scrape import (
    MAX_SLOT_WAIT_SECONDS,
    SLOT_POLL_SECONDS,
    max_slot_wait,
    product_scrape,
    run_lease,
    worker_name,
)
from tracking.services.trackers import (
    DEFAULT_STORE,
    interval_check,
    product_for_reference,
    reference_resolve,
    tracker_create,
    tracker_delete,
    tracker_limit_check,
    tracker_update,
)

__all__ = [
    "CLAIM_LEASE",
    "DEFAULT_STORE",
    "DISPATCH_MAX_PER_TICK",
    "MAX_SLOT_WAIT_SECONDS",
    "RESCRAPE_BATCH",
    "SLOT_POLL_SECONDS",
    "DispatchReport",
    "RescrapeReport",
    "RuleSpec",
    "dispatch_due_products",
    "enqueue_scrape",
    "interval_check",
    "max_slot_wait",
    "product_claim",
    "product_for_reference",
    "product_refresh_schedule",
    "product_request_scrape",
    "product_scrape",
    "products_rescrape_all",
    "reference_resolve",
    "rule_create",
    "rule_delete",
    "rule_update",
    "rules_add",
    "run_finish",
    "run_lease",
    "runs_recover_stale",
    "spread_slot",
    "store_apply_min_interval",
    "store_check_open",
    "store_request_spacing",
    "tracker_create",
    "tracker_delete",
    "tracker_evaluate",
    "tracker_evaluate_current",
    "tracker_import",
    "tracker_limit_check",
    "tracker_request_scrape",
    "tracker_update",
    "worker_name",
]
