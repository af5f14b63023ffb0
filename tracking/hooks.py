"""The seam between tracking and notifications.

Imports flow one way (notifications imports tracking, never the reverse), so tracking exposes
one explicit hook: handlers registered here are called once for every tracker alert (one
observation of a tracker's product on which at least one of its rules fired), inside the
scrape's finishing transaction. notifications registers its outbox writer in ``AppConfig.ready``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracking.models import PricePoint, Tracker


@dataclass(frozen=True, slots=True)
class AlertReason:
    """One rule that fired: its kind and id, and what happened in words (``-12.5% from 40.00``).

    ``suppressed`` is ``"cooldown"`` when the rule fired within its cooldown: recorded, not sent.
    """

    kind: str
    rule_id: int | None
    detail: str
    suppressed: str = ""


@dataclass(frozen=True, slots=True)
class TrackerAlert:
    """Every rule of one tracker that fired on one observation, strongest first."""

    tracker: Tracker
    point: PricePoint
    reasons: tuple[AlertReason, ...]
    previous_price: Decimal | None
    # The price of the below_target rule that fired, if one did (the email names the target).
    target_price: Decimal | None

    @property
    def observed_at(self) -> datetime:
        return self.point.observed_at

    @property
    def suppressed(self) -> bool:
        """True when every rule that fired was in its cooldown."""
        return all(reason.suppressed for reason in self.reasons)


class AlertOutcome(enum.StrEnum):
    """What a handler did with an alert."""

    # The user will be told: an email is queued, waits for quiet hours, or was merged into one.
    QUEUED = "queued"
    # Recorded, not sent: cooldown, or the user's daily limit.
    SUPPRESSED = "suppressed"
    # This tracker already has an alert for this observation: nothing new.
    DUPLICATE = "duplicate"


AlertHandler = Callable[[TrackerAlert], AlertOutcome]

_alert_handlers: list[AlertHandler] = []


def register_alert_handler(handler: AlertHandler) -> None:
    """Call ``handler(alert)`` for every tracker alert (idempotent registration)."""
    if handler not in _alert_handlers:
        _alert_handlers.append(handler)


def alert_handlers() -> tuple[AlertHandler, ...]:
    """The registered handlers, in registration order."""
    return tuple(_alert_handlers)
