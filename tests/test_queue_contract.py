"""The contract between tracking.services.queue and django-q2's internals.

``_PackageCollector`` stands in for the broker inside ``async_task`` so a dispatcher tick writes
all its tasks at once. That is only correct while ``async_task`` touches nothing on its broker
but ``enqueue`` and ``list_key``, and while the rows or list entries the collector writes are what
the broker itself would write. These tests pin both to the django-q2 version in ``uv.lock``: an
upgrade that changes either fails here, not in production.
"""

from __future__ import annotations

import os
import time
import uuid
from importlib.metadata import version

import pytest
from django.db import transaction
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.signing import SignedPackage
from django_q.tasks import async_task

from tracking.services import queue

LOCKED_VERSION = "1.11.1"


def test_the_contract_is_checked_against_the_locked_django_q2_version():
    assert version("django-q2") == LOCKED_VERSION, (
        "django-q2 changed: re-read django_q/tasks.py async_task and the ORM and Redis brokers' "
        "enqueue, check that tracking/services/queue.py still writes what they write, then update this pin."
    )


class _SpyBroker:
    """Records every attribute async_task reads from its broker."""

    list_key = "spy"

    def __init__(self) -> None:
        self.touched: list[str] = []
        self.packages: list[str] = []

    def __getattribute__(self, name: str):
        if not name.startswith("_") and name not in {"touched", "packages"}:
            object.__getattribute__(self, "touched").append(name)
        return object.__getattribute__(self, name)

    def enqueue(self, package: str) -> int:
        self.packages.append(package)
        return len(self.packages)


def test_async_task_touches_nothing_on_its_broker_but_enqueue_and_list_key(monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)
    spy = _SpyBroker()
    async_task(queue.SCRAPE_TASK, 1, "token", "scheduled", None, save=False, group="scrape", broker=spy)
    assert set(spy.touched) <= {"enqueue", "list_key"}
    assert "enqueue" in spy.touched
    assert len(spy.packages) == 1


@pytest.mark.django_db(transaction=True)
def test_batched_packages_are_what_the_orm_broker_delivers_in_order(monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)
    broker = ORM(list_key="contract-test")
    collector = queue._PackageCollector.for_broker(broker)
    assert collector is not None
    for product_id in (11, 12, 13):
        async_task(queue.SCRAPE_TASK, product_id, "t", "scheduled", None, save=False, broker=collector)
    collector.flush()
    time.sleep(0.01)  # ORM.dequeue takes rows locked strictly before now
    tasks = []
    for _ in range(3):  # Conf.BULK packages a call
        delivered = broker.dequeue()
        assert delivered is not None
        tasks += [SignedPackage.loads(payload) for _, payload in delivered]
    assert broker.dequeue() is None
    assert [task["args"][0] for task in tasks] == [11, 12, 13]
    assert {task["func"] for task in tasks} == {queue.SCRAPE_TASK}
    assert all(task["save"] is False for task in tasks)


@pytest.mark.redis
@pytest.mark.skipif(not os.environ.get("Q_REDIS_URL"), reason="needs the Redis broker (Q_REDIS_URL)")
def test_batched_packages_are_what_the_redis_broker_delivers_in_order(monkeypatch):
    from django_q.brokers.redis_broker import Redis

    monkeypatch.setattr(Conf, "SYNC", False)
    broker = Redis(list_key=f"contract-test-{os.getpid()}")
    broker.purge_queue()
    collector = queue._PackageCollector.for_broker(broker)
    assert collector is not None
    for product_id in (21, 22):
        async_task(queue.SCRAPE_TASK, product_id, "t", "scheduled", None, save=False, broker=collector)
    collector.flush()
    try:
        first, second = broker.dequeue(), broker.dequeue()
        assert [SignedPackage.loads(item[0][1])["args"][0] for item in (first, second)] == [21, 22]
    finally:
        broker.purge_queue()


@pytest.mark.django_db(transaction=True)
def test_a_dispatch_batch_is_sent_once_after_commit_as_one_write(monkeypatch):
    """enqueued_together(): nothing is sent before the transaction commits, then all at once."""
    monkeypatch.setattr(Conf, "SYNC", False)
    sent: list[list] = []
    monkeypatch.setattr(queue, "_send_scrapes", lambda tasks: sent.append(list(tasks)))
    with transaction.atomic(), queue.enqueued_together():
        for product_id in (1, 2, 3):
            queue.enqueue_scrape(product_id=product_id, claim_token=uuid.uuid4(), trigger="scheduled")
        assert sent == []
    assert [[task.product_id for task in batch] for batch in sent] == [[1, 2, 3]]
