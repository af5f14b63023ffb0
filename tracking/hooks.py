"""The seam between tracking and notifications.

Imports flow one way (notifications imports tracking, never the reverse), so tracking exposes
one explicit hook: handlers registered here are called for every crossing, inside the scrape's
finishing transaction. notifications registers its outbox writer in ``AppConfig.ready``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracking.models import PricePoint, Tracker

# The return value is ignored (notifications' handler returns the row it wrote).
CrossingHandler = Callable[["Tracker", "PricePoint"], object]

_crossing_handlers: list[CrossingHandler] = []


def register_crossing_handler(handler: CrossingHandler) -> None:
    """Call ``handler(tracker, price_point)`` for every crossing (idempotent registration)."""
    if handler not in _crossing_handlers:
        _crossing_handlers.append(handler)


def crossing_handlers() -> tuple[CrossingHandler, ...]:
    """The registered handlers, in registration order."""
    return tuple(_crossing_handlers)
