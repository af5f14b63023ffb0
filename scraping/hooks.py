"""The seam between scraping and the apps that schedule scrapes.

``scraping`` imports no other app, yet a change of a store's minimum interval must reach the
products scheduled under it (``tracking``). So scraping exposes one explicit hook: handlers
registered here are called by :func:`scraping.services.store_update_policy`, in its transaction,
after the store row is saved. ``tracking`` registers its handler in ``AppConfig.ready``.
"""

from __future__ import annotations

from typing import Protocol


class MinIntervalHandler(Protocol):
    """Called with the id of a store whose minimum interval has just changed."""

    def __call__(self, *, store_id: int) -> object: ...


_min_interval_handlers: list[MinIntervalHandler] = []


def register_min_interval_handler(handler: MinIntervalHandler) -> None:
    """Call ``handler(store_id=...)`` whenever a store's minimum interval changes (idempotent registration)."""
    if handler not in _min_interval_handlers:
        _min_interval_handlers.append(handler)


def min_interval_handlers() -> tuple[MinIntervalHandler, ...]:
    """The registered handlers, in registration order."""
    return tuple(_min_interval_handlers)
