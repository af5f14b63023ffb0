"""Trackers: a user's request to watch a product (create, change, delete, re-evaluate)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.models import User
from scraping.inputs import InvalidProductReference, ProductReference, RejectReason, parse_product_reference
from scraping.marketplaces import find_marketplace
from scraping.models import Store, get_store
from scraping.shortlinks import ShortLinkError, resolve_short_link
from tracking.errors import (
    DuplicateTracker,
    IntervalTooShort,
    InvalidReference,
    ShortLinkUnresolved,
    TrackerLimitReached,
    UnknownStore,
)
from tracking.models import Product, RuleKind, Tracker, Trigger
from tracking.services import queue, scheduling
from tracking.services.evaluate import tracker_evaluate_current
from tracking.services.rules import RuleSpec, rules_add, tracker_set_target

DEFAULT_STORE = "amazon.com"


def reference_resolve(
    *, reference: str | ProductReference, store_code: str | None = None, default_store: str = DEFAULT_STORE
) -> ProductReference:
    """The marketplace and ASIN a user's URL or ASIN names. Never fetches the user's URL.

    A URL names its marketplace; ``store_code`` (the API's ``store``), when given, must agree.
    A bare ASIN is on ``store_code``, else on ``default_store`` (the user's default marketplace).
    A short link is resolved by :func:`scraping.shortlinks.resolve_short_link`: requests to
    Amazon's shortener, so call this *before* opening a transaction (the API view does; on
    SQLite a transaction holds the database's write lock). Raises InvalidReference,
    ShortLinkUnresolved or UnknownStore.
    """
    if store_code is not None and find_marketplace(store_code) is None:
        raise UnknownStore(f"{store_code[:60]!r} is not an Amazon marketplace we track (e.g. amazon.de).")
    if isinstance(reference, str):
        try:
            reference = parse_product_reference(reference)
        except InvalidProductReference as exc:
            if exc.reason is not RejectReason.SHORT_LINK:
                raise InvalidReference(str(exc)) from None
            try:
                reference = resolve_short_link(exc.short_link)
            except ShortLinkError as error:
                raise ShortLinkUnresolved(
                    f"{error} Open the link in a browser and paste the product page's address instead."
                ) from None
    if reference.store is None:
        code = store_code or default_store
        if find_marketplace(code) is None:
            raise UnknownStore(
                f"Your default marketplace {code[:60]!r} is not one we track; change it in your profile."
            )
        return ProductReference(reference.asin, code)
    if store_code is not None and reference.store != store_code:
        raise InvalidReference(
            f"This link is a product of {reference.store}, but store says {store_code}; "
            "leave store out or make them agree."
        )
    return reference


def product_for_reference(
    *, reference: str | ProductReference, store_code: str | None = None, default_store: str = DEFAULT_STORE
) -> Product:
    """Validate a URL or ASIN and return its (possibly new) Product on its marketplace (see
    :func:`reference_resolve`; pass an already resolved reference inside a transaction)."""
    resolved = reference_resolve(reference=reference, store_code=store_code, default_store=default_store)
    store = get_store(resolved.store or default_store)  # reference_resolve always names the store
    product, _ = Product.objects.get_or_create(
        store=store, asin=resolved.asin, defaults={"interval_minutes": settings.SCRAPE_DEFAULT_INTERVAL_MINUTES}
    )
    return product


def tracker_limit_check(*, user: User, exclude_tracker_id: int | None = None) -> None:
    """Raise :class:`TrackerLimitReached` if ``user`` may not have one more active tracker.

    The one home of the active-tracker limit (API create and update, bulk import, admin). Call
    it inside the transaction that then enables or creates the tracker: it locks the user's row
    (``select_for_update`` on PostgreSQL; on SQLite the IMMEDIATE transaction already serialises
    writers) until that transaction ends, so concurrent requests of one user count one after
    another and never pass the limit together. Called on its own it is only a check.

    ``exclude_tracker_id``: leave this tracker out of the count (the one being enabled, which a
    concurrent request may already have enabled: enabling it again must not count it twice).
    The limit is read from the locked row, not from ``user``, which may be stale.
    """
    with transaction.atomic():
        limit = User.objects.select_for_update().values_list("max_trackers", flat=True).get(pk=user.pk)
        active = Tracker.objects.enabled().filter(user_id=user.pk)
        if exclude_tracker_id is not None:
            active = active.exclude(pk=exclude_tracker_id)
        count = active.count()
        if count >= limit:
            raise TrackerLimitReached(active=count, limit=limit)


def interval_check(*, store: Store, interval_minutes: int) -> None:
    """Raise :class:`IntervalTooShort` for an interval below the store's minimum: a product is
    never fetched more often than that (the one home of this rule: API, import, admin)."""
    if interval_minutes < store.min_interval_minutes:
        raise IntervalTooShort(store_code=store.code, minimum=store.min_interval_minutes)


# Atomic: a refusal (interval, limit, duplicate) must not leave behind the Product row created
# for the reference, or a client could grow the products table with 4xx responses.
@transaction.atomic
def tracker_create(
    *,
    user: User,
    reference: str | ProductReference,
    target_price: Decimal | None = None,
    rules: Sequence[RuleSpec] = (),
    interval_minutes: int | None = None,
    enabled: bool = True,
    store: str | None = None,
) -> Tracker:
    """Start tracking a product for ``user``. A product never scraped is fetched right away.

    ``rules``: its alert rules; ``target_price`` is the shorthand for one more, a below_target
    rule with ``repeat: once``. Neither: a watch-only tracker that just records history.
    """
    # ``store``: the marketplace of a bare ASIN (else the user's default). A short link in
    # ``reference`` is resolved here, under this transaction: callers that may get one resolve it
    # first with reference_resolve (the API view, the import command).
    product = product_for_reference(reference=reference, store_code=store, default_store=user.default_store)
    store_row = product.store
    if interval_minutes is None:
        interval = max(settings.SCRAPE_DEFAULT_INTERVAL_MINUTES, store_row.min_interval_minutes)
    else:
        interval_check(store=store_row, interval_minutes=interval_minutes)
        interval = interval_minutes
    if enabled:
        tracker_limit_check(user=user)  # holds the user's row lock until this create commits
    try:
        with transaction.atomic():
            tracker = Tracker.objects.create(user=user, product=product, interval_minutes=interval, enabled=enabled)
    except IntegrityError:
        existing = Tracker.objects.filter(user=user, product=product).values_list("pk", flat=True).first()
        raise DuplicateTracker(asin=product.asin, existing_id=existing) from None
    # The shorthand's rule first: it is the one target_price names from now on.
    target = [RuleSpec(kind=RuleKind.BELOW_TARGET, price=target_price)] if target_price is not None else []
    specs = [*target, *rules]
    if specs:
        rules_add(tracker=tracker, specs=specs, evaluate=False)  # evaluated below, once scheduled
    product = scheduling.product_refresh_schedule(product_id=product.pk)
    if enabled and product.last_scraped_at is None:
        # The client should see title and price within seconds, not at the next dispatcher tick.
        # Still polite: the task waits for a free request slot like any other.
        token = scheduling.product_claim(product_id=product.pk)
        if token is not None:
            queue.enqueue_scrape(product_id=product.pk, claim_token=token, trigger=Trigger.INITIAL)
    elif enabled and specs:
        tracker_evaluate_current(tracker=tracker)
    return tracker


def tracker_update(
    *,
    tracker: Tracker,
    target_price: Decimal | None = None,
    interval_minutes: int | None = None,
    enabled: bool | None = None,
) -> Tracker:
    """Change target, interval or enabled. A new target (the tracker's first below_target rule,
    created if it has none) is re-evaluated against the current price.

    Enabling checks the active-tracker limit in the transaction that saves (:func:`tracker_limit_check`).
    """
    changes: dict[str, object] = {}
    if interval_minutes is not None and interval_minutes != tracker.interval_minutes:
        interval_check(store=tracker.product.store, interval_minutes=interval_minutes)
        changes["interval_minutes"] = interval_minutes
    if enabled is not None and enabled != tracker.enabled:
        changes["enabled"] = enabled
    target_changed = target_price is not None and target_price != tracker.target_price
    if not changes and not target_changed:
        return tracker
    with transaction.atomic():
        if changes.get("enabled"):
            tracker_limit_check(user=tracker.user, exclude_tracker_id=tracker.pk)
        if changes:
            for name, value in changes.items():
                setattr(tracker, name, value)
            tracker.save(update_fields=[*changes, "updated_at"])
            scheduling.product_refresh_schedule(product_id=tracker.product_id)
        if target_price is not None and target_changed:
            # The shorthand for the first below_target rule (re-evaluated against the current price).
            tracker_set_target(tracker=tracker, price=target_price)
            if not changes:
                tracker.save(update_fields=["updated_at"])
    return tracker


def tracker_delete(*, tracker: Tracker) -> None:
    """Stop tracking. The product and its history stay: other users may track it."""
    product_id = tracker.product_id
    with transaction.atomic():
        tracker.delete()
        scheduling.product_refresh_schedule(product_id=product_id)
