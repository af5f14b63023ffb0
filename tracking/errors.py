"""The refusals of the tracking services, as domain errors (no HTTP; see pricetracker.errors)."""

from __future__ import annotations

import math
from datetime import datetime

from pricetracker.errors import Conflict, InvalidInput, LimitReached, RateLimited, Unavailable


class InvalidReference(InvalidInput):
    """The URL or ASIN does not name a product we can track (field ``url``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="url")


class IntervalTooShort(InvalidInput):
    """A tracker's interval below its store's minimum (field ``interval_minutes``)."""

    def __init__(self, *, store_code: str, minimum: int) -> None:
        super().__init__(
            f"The minimum interval for {store_code} is {minimum} minutes: "
            "a product is never fetched more often than that.",
            field="interval_minutes",
        )
        self.store_code = store_code
        self.minimum = minimum


class TrackerLimitReached(LimitReached):
    """The user already has as many active trackers as their account allows."""

    code = "tracker_limit"

    def __init__(self, *, active: int, limit: int) -> None:
        super().__init__(
            f"You already have {active} active trackers, the limit for your account ({limit}). "
            "Disable or delete one first."
        )
        self.active = active
        self.limit = limit


class DuplicateTracker(Conflict):
    """The user already tracks this product; ``existing_id`` is that tracker."""

    code = "duplicate_tracker"

    def __init__(self, *, asin: str, existing_id: int | None) -> None:
        super().__init__(
            f"You already track {asin} (tracker {existing_id}). Change that tracker instead.",
            extra={"tracker_id": existing_id},
        )
        self.existing_id = existing_id


class AlreadyQueued(Conflict):
    """A check of the product is already queued or running."""

    code = "already_queued"

    def __init__(self) -> None:
        super().__init__("A check of this product is already queued or running.")


class TooSoon(RateLimited):
    """The product was checked (or failed) too recently to be fetched again now."""

    code = "too_soon"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, extra={"retry_after_seconds": retry_after})


class ManualLimitReached(RateLimited):
    """The user has used their manual scrapes for the hour."""

    code = "manual_limit"

    def __init__(self, *, limit: int, retry_after: int) -> None:
        super().__init__(
            f"You have used your {limit} manual scrapes for this hour. Try again later.",
            extra={"retry_after_seconds": retry_after},
        )


class StoreDisabled(Unavailable):
    """An administrator paused scraping of the store."""

    code = "store_disabled"

    def __init__(self, *, store_code: str) -> None:
        super().__init__(f"Scraping {store_code} is paused by the administrator.")


class StorePaused(Unavailable):
    """The store's circuit breaker is open or probing: it is blocking our requests."""

    code = "store_paused"

    def __init__(self, *, store_code: str, breaker_state: str, until: datetime | None, now: datetime) -> None:
        extra = {}
        if until is not None:
            # The breaker's probe may go after its cooldown: a client retrying sooner is refused.
            extra["retry_after_seconds"] = max(1, math.ceil((until - now).total_seconds()))
        super().__init__(
            f"{store_code} is blocking our requests, so scraping is paused (circuit breaker {breaker_state}). "
            "Scheduled checks resume automatically.",
            extra=extra,
        )
        self.until = until


class InvalidRule(InvalidInput):
    """An alert rule's parameter is missing, does not apply to its kind, or is out of range."""

    code = "invalid_rule"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, field=field)


class RuleLimitReached(LimitReached):
    """The tracker already has as many alert rules as the user's account allows."""

    code = "rule_limit"

    def __init__(self, *, count: int, limit: int) -> None:
        super().__init__(
            f"This tracker already has {count} alert rules, the limit for your account ({limit}). "
            "Delete or change one first."
        )
        self.count = count
        self.limit = limit


class ShortLinkUnresolved(InvalidReference):
    """A short link (a.co, amzn.to, ...) did not lead to a product on a marketplace we track."""

    code = "short_link_unresolved"


class UnknownStore(InvalidInput):
    """The ``store`` asked for (or the profile's default marketplace) is not a marketplace we track."""

    code = "unknown_store"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="store")
