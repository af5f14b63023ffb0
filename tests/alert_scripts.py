"""Price walks for the alert-rule tests: a script of observations recorded one after another,
each at its own time, and what each one alerted.

A step is a successful observation (``ok("90.00")``, ``ok(None, "out_of_stock")`` for a page
without a price), a failure (``FAILED``) or a block (``BLOCKED``), each after ``after`` (an hour
by default). :func:`walk` records the steps through ``run_finish`` as a worker does, under a
frozen clock, and returns one :class:`Outcome` per step: the kinds of the rules that fired, the
alert's status, and whether an email went out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import time_machine
from django.core import mail

from notifications.models import Notification
from scraping.results import ErrorKind, ScrapeResult, ScrapeStatus
from tests.tracking_factories import record, success
from tracking.models import Product

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Step:
    status: ScrapeStatus = ScrapeStatus.SUCCESS
    price: str | None = None
    availability: str = "in_stock"
    after: timedelta = HOUR

    def result(self) -> ScrapeResult:
        if self.status == ScrapeStatus.SUCCESS:
            return success(self.price, availability=self.availability)
        kind = ErrorKind.CAPTCHA if self.status == ScrapeStatus.BLOCKED else ErrorKind.TIMEOUT
        return ScrapeResult(status=self.status, error_kind=kind)


def ok(price: str | None, availability: str = "in_stock", *, after: timedelta = HOUR) -> Step:
    return Step(price=price, availability=availability, after=after)


FAILED = Step(status=ScrapeStatus.FAILED)
BLOCKED = Step(status=ScrapeStatus.BLOCKED)


@dataclass
class Outcome:
    """What one step alerted: the kinds that fired (strongest first), suppressed ones apart."""

    kinds: list[str] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    status: str = ""
    emails: int = 0

    @property
    def alerted(self) -> bool:
        return bool(self.kinds)


def walk(product: Product, steps: Sequence[Step], *, capture, start: datetime = START) -> list[Outcome]:
    """Record ``steps`` for ``product`` in order; the outcome of each (see the module docstring).

    ``capture`` is pytest-django's ``django_capture_on_commit_callbacks`` (sends run in-process).
    """
    outcomes = []
    moment = start
    for step in steps:
        moment += step.after
        seen = set(Notification.objects.values_list("pk", flat=True))
        sent = len(mail.outbox)
        with time_machine.travel(moment, tick=False), capture(execute=True):
            record(product, step.result())
        outcome = Outcome(emails=len(mail.outbox) - sent)
        for alert in Notification.objects.exclude(pk__in=seen).order_by("pk"):
            outcome.status = alert.status
            for reason in alert.reasons:
                (outcome.suppressed if reason["suppressed"] else outcome.kinds).append(reason["kind"])
        outcomes.append(outcome)
    return outcomes


def alerted_at(outcomes: Sequence[Outcome]) -> list[int]:
    """The indexes of the steps that sent an email."""
    return [index for index, outcome in enumerate(outcomes) if outcome.emails]
