"""Every periodic job, declared in one place and registered idempotently.

django-q2 keeps schedules as rows keyed by name. :func:`register_schedules` creates missing
rows and corrects drifted ones; running it twice changes nothing. It runs after every
``migrate`` (post_migrate) and from ``manage.py setup_schedules`` / ``manage.py serve``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """One periodic job: a django-q2 task function run every ``minutes``."""

    name: str
    func: str
    minutes: int
    doc: str


SCHEDULES: tuple[ScheduleSpec, ...] = (
    ScheduleSpec(
        name="tracking.dispatch",
        func="tracking.tasks.dispatch_due_products",
        minutes=1,
        doc="Claim due products within each store's budget and enqueue their scrapes.",
    ),
    ScheduleSpec(
        name="tracking.recover",
        func="tracking.tasks.recover_stale_runs",
        minutes=1,
        doc="Close runs left RUNNING past their lease (worker killed, task lost); make products due again.",
    ),
    ScheduleSpec(
        name="notifications.sweep",
        func="notifications.tasks.sweep_outbox",
        minutes=1,
        doc="Recover the alert outbox: expired send leases, held alerts now deliverable, lost and due retries.",
    ),
)


def schedule_period(name: str) -> timedelta:
    """How often the periodic job ``name`` runs (its tick)."""
    for spec in SCHEDULES:
        if spec.name == name:
            return timedelta(minutes=spec.minutes)
    raise KeyError(f"No periodic job named {name!r}.")


def register_schedules(*, using: str = "default") -> dict[str, str]:
    """Create or correct the schedule rows; return ``{name: "created"|"updated"|"unchanged"}``."""
    from django_q.models import Schedule

    outcome: dict[str, str] = {}
    with transaction.atomic(using=using):
        for spec in SCHEDULES:
            wanted = {
                "func": spec.func,
                "schedule_type": Schedule.MINUTES,
                "minutes": spec.minutes,
                "repeats": -1,
            }
            row = Schedule.objects.using(using).filter(name=spec.name).first()
            if row is None:
                Schedule.objects.using(using).create(name=spec.name, next_run=timezone.now(), **wanted)
                outcome[spec.name] = "created"
                continue
            changed = [key for key, value in wanted.items() if getattr(row, key) != value]
            if changed:
                for key in changed:
                    setattr(row, key, wanted[key])
                row.save(using=using, update_fields=changed)
                outcome[spec.name] = "updated"
            else:
                outcome[spec.name] = "unchanged"
    return outcome
