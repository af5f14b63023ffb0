"""The dispatcher runs once at a time: a lease row claimed by one conditional UPDATE, held in the
name of the worker process that runs it (docs/decisions.md, "Dispatcher lease")."""

from __future__ import annotations

import pytest

from tracking import policy, tasks
from tracking.models import SchedulerLease


@pytest.mark.django_db
def test_the_lease_is_held_in_the_name_of_the_process_that_runs_the_dispatcher(monkeypatch):
    """django-q2 forks workers after import: a holder named at import would be the parent's,
    the same for every worker of the host, so one worker could release another's lease."""
    held: list[str | None] = []
    monkeypatch.setattr("os.getpid", lambda: 424242)
    monkeypatch.setattr(
        "tracking.services.dispatch_due_products",
        lambda: held.append(SchedulerLease.objects.get(name="dispatcher").holder) or _report(),
    )
    tasks.dispatch_due_products()
    assert held and held[0] is not None and held[0].endswith(":424242")


@pytest.mark.django_db
def test_a_second_dispatcher_does_not_run_while_the_lease_is_held():
    assert policy.lease_acquire("dispatcher", holder="other-host:1", seconds=50)
    assert tasks.dispatch_due_products() == "another dispatcher is running"
    policy.lease_release("dispatcher", holder="other-host:1")


def _report():
    from tracking.services import DispatchReport

    return DispatchReport()
