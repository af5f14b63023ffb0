"""Every contact with django-q2's internals: enqueueing scrape tasks, alone or in batches.

Nothing else in the project builds django-q2 packages or touches a broker. The batch writer
(:class:`_PackageCollector`) stands in for the broker inside ``async_task``; that works only because
``async_task`` calls nothing on its broker but ``enqueue`` and reads nothing but ``list_key``,
which ``tests/test_queue_contract.py`` pins to the django-q2 version in ``uv.lock``.
"""

from __future__ import annotations

import contextlib
import math
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tracking import policy

if TYPE_CHECKING:
    from django_q.brokers import Broker

SCRAPE_TASK = "tracking.tasks.scrape_product"


@dataclass(frozen=True, slots=True)
class _ScrapeTask:
    product_id: int
    claim_token: uuid.UUID
    trigger: str
    requested_by_id: int | None
    not_before: datetime | None = None

    def arguments(self) -> tuple[object, ...]:
        """The positional arguments of ``tracking.tasks.scrape_product`` (ids and strings only)."""
        args: tuple[object, ...] = (self.product_id, str(self.claim_token), self.trigger, self.requested_by_id)
        # Only when set, so every other task looks exactly as before to workers not yet upgraded.
        return args if self.not_before is None else (*args, self.not_before.isoformat())

    def options(self) -> dict[str, object]:
        """django-q2 options for this task beyond the shared ones."""
        if self.not_before is None:
            return {}
        # The task first waits for the due time (tracking.policy.wait_until_due, at most the
        # look-ahead): its timeout grows by as much, so the wait never shortens the fetch's time.
        wait = math.ceil(policy.due_lookahead().total_seconds())
        return {"timeout": settings.Q_CLUSTER["timeout"] + wait}


# The scrapes enqueued inside `enqueued_together()` in this thread; None outside such a block.
_batch = threading.local()


def enqueue_scrape(
    *,
    product_id: int,
    claim_token: uuid.UUID,
    trigger: str,
    requested_by_id: int | None = None,
    not_before: datetime | None = None,
) -> None:
    """Enqueue the scrape task once the current transaction commits (ids only).

    ``not_before``: the product was claimed ahead of its due time; the task fetches no earlier.
    """
    task = _ScrapeTask(product_id, claim_token, str(trigger), requested_by_id, not_before)
    batch: list[_ScrapeTask] | None = getattr(_batch, "tasks", None)
    if batch is not None:
        batch.append(task)
    else:
        transaction.on_commit(lambda: _send_scrapes([task]))


@contextlib.contextmanager
def enqueued_together() -> Iterator[None]:
    """Send the scrapes enqueued in this block together, in one on_commit callback.

    Not for blocks with inner savepoints that may roll back: their scrapes would still be sent.
    The dispatcher's claim block has none.
    """
    tasks: list[_ScrapeTask] = []
    _batch.tasks = tasks
    try:
        yield
    finally:
        _batch.tasks = None
    if tasks:
        transaction.on_commit(lambda: _send_scrapes(tasks))


def _send_scrapes(tasks: list[_ScrapeTask]) -> None:
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    # Left to itself, async_task opens a new broker per task (a Redis connection pool; with the
    # ORM broker and CONN_MAX_AGE=0, a new database connection) and writes each task on its own:
    # a 1,000-claim tick took 3.7 s on SQLite, 3.2 s of it in these callbacks (BENCHMARKS.md). So one broker for the
    # batch, and for the ORM and Redis brokers one write for all of it.
    broker = get_broker()
    collector = _PackageCollector.for_broker(broker)
    for task in tasks:
        async_task(
            SCRAPE_TASK,
            *task.arguments(),
            task_name=f"scrape-{task.product_id}-{str(task.claim_token)[:8]}",
            group="scrape",
            # Every scrape is recorded as a ScrapeRun; storing successful task results too made
            # django-q2's monitor take the SQLite write lock per task (BENCHMARKS.md). Failures are saved.
            save=False,
            broker=collector or broker,
            **task.options(),
        )
    if collector is not None:
        collector.flush()


class _PackageCollector:
    """Takes the broker's place in ``async_task``, which still builds, signs and announces
    (``pre_enqueue``) every package; :meth:`flush` then writes them all as the broker would one by
    one: a multi-row INSERT of ``OrmQ`` rows (ORM broker) or one multi-value RPUSH (Redis)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.list_key = broker.list_key
        self.packages: list[str] = []

    @classmethod
    def for_broker(cls, broker: Broker) -> _PackageCollector | None:
        from django_q.brokers.orm import ORM
        from django_q.brokers.redis_broker import Redis

        return cls(broker) if isinstance(broker, ORM | Redis) else None

    def enqueue(self, package: str) -> int:
        self.packages.append(package)
        return len(self.packages)

    def flush(self) -> None:
        from django_q.brokers.orm import ORM
        from django_q.conf import Conf
        from django_q.models import OrmQ

        if not self.packages:  # sync mode (tests): async_task ran every task inline instead
            return
        if isinstance(self.broker, ORM):
            # As ORM.enqueue: key falls back to the cluster name (OrmQ.key is not null), lock = now.
            key, now = self.list_key or Conf.CLUSTER_NAME, timezone.now()
            OrmQ.objects.using(Conf.ORM).bulk_create([OrmQ(key=key, payload=p, lock=now) for p in self.packages])
        else:
            self.broker.connection.rpush(self.list_key, *self.packages)  # as Redis.enqueue, in order
