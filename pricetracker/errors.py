"""Domain errors: a business rule refused what was asked. Framework-free on purpose.

Services raise these (never DRF exceptions or HTTP statuses), so commands, the admin and tasks
can catch them without speaking HTTP. The API layer maps each family to a status code in one
table (:data:`pricetracker.api.DOMAIN_STATUS`); the admin turns them into form errors; commands
print :attr:`DomainError.message`.

The families, by what the client can do about it:

- :class:`InvalidInput`: fix the input (``field`` names it).
- :class:`LimitReached`: the account's limits forbid it (raise the limit, or free something).
- :class:`Conflict`: the resource is in a state that forbids it (``extra`` says which).
- :class:`RateLimited`: too often; ``retry_after_seconds`` says when it may work.
- :class:`Unavailable`: paused on our side (a store disabled or blocked); may say until when.
- :class:`UpstreamFailed`: a service we depend on (a mail server) failed; its summary says how.
"""

from __future__ import annotations

import math
from typing import Any


class DomainError(Exception):
    """A refusal with a message a user understands and a stable machine ``code``.

    ``field``: the input the refusal is about (validation errors), with all its ``messages`` when
    there are several (password validators); ``extra``: data a client may need (an existing
    tracker's id, ``retry_after_seconds``), returned in the error body.
    """

    code = "refused"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        messages: list[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field
        self.messages = list(messages or [])
        self.extra: dict[str, Any] = dict(extra or {})

    @property
    def retry_after_seconds(self) -> int | None:
        """When trying again may work, in whole seconds (None: nobody knows)."""
        wait = self.extra.get("retry_after_seconds")
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not math.isfinite(wait):
            return None
        return max(0, math.ceil(wait))

    def __str__(self) -> str:
        return self.message


class InvalidInput(DomainError):
    """The input breaks a rule; ``field`` names it when there is one."""

    code = "invalid"


class LimitReached(DomainError):
    """An account limit forbids it."""


class Conflict(DomainError):
    """The current state forbids it (a duplicate, something already running)."""


class RateLimited(DomainError):
    """Asked too often; ``retry_after_seconds`` says when it may work."""


class Unavailable(DomainError):
    """Paused on our side (a store disabled by an admin, or blocking us)."""


class UpstreamFailed(DomainError):
    """A service we depend on failed (the mail server refused a test email)."""
