"""Changes to a store's policy, made by operators (the store admin) or code (the demo, benchmarks).

The breaker and the request slot are not edited here: the workers move them, and an operator
overrides the breaker with :func:`scraping.policy.breaker_set`.
"""

from __future__ import annotations

from django.db import transaction

from scraping.hooks import min_interval_handlers
from scraping.models import Store

# What an operator may change on an existing store. The code names the provider (renaming it
# would orphan the store's products); breaker state and request slot belong to the workers.
POLICY_FIELDS = (
    "name",
    "enabled",
    "base_url",
    "currency",
    "language",
    "min_interval_minutes",
    "requests_per_minute",
    "concurrency",
    "backoff_base_minutes",
    "backoff_max_minutes",
    "breaker_threshold",
    "breaker_window_minutes",
    "breaker_cooldown_minutes",
    "min_plausible_price",
    "max_plausible_price",
)


def store_update_policy(*, store: Store, **changes: object) -> Store:
    """Apply ``changes`` (policy fields) to ``store`` and save them, and only them.

    When the minimum interval changed, the handlers registered in :mod:`scraping.hooks` (tracking
    re-derives its products' intervals) run in the same transaction, after the save: the new
    minimum and the schedules under it commit together. This is the one path for such a change:
    a queryset ``update()`` or a bare ``save()`` of the row calls no handler.

    Only the changed columns are written, so a worker moving the breaker or the request slot
    meanwhile keeps its write. A new store (not yet saved) is inserted whole; it has no products,
    so there is nothing to re-derive. The database refuses values that make no sense (CHECK
    constraints); the admin's form explains them before they get here.
    """
    unknown = sorted(set(changes) - set(POLICY_FIELDS))
    if unknown:
        raise ValueError(f"Not a store policy field: {', '.join(unknown)}.")
    for name, value in changes.items():
        setattr(store, name, value)
    if store._state.adding:
        store.save()
        return store
    if not changes:
        return store
    with transaction.atomic():
        # Under the row lock, so two concurrent changes apply one after the other and the second
        # compares with what the first committed.
        previous = Store.objects.select_for_update().values_list("min_interval_minutes", flat=True).get(pk=store.pk)
        store.save(update_fields=[*changes, "updated_at"])
        if "min_interval_minutes" in changes and store.min_interval_minutes != previous:
            for handler in min_interval_handlers():
                handler(store_id=store.pk)
    return store
