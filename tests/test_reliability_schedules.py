"""The periodic jobs exist after every ``migrate``: no separate command needed after an upgrade.

Recovery depends on them: the recovery sweep closes runs whose worker was killed, the dispatcher
re-claims what a lost task left behind, and the outbox sweep re-sends alerts. Without them a
crashed worker's product would never be scraped again.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from pricetracker.schedules import SCHEDULES

pytestmark = pytest.mark.django_db


def test_migrate_registers_every_periodic_job_even_after_they_were_deleted():
    Schedule.objects.all().delete()
    call_command("migrate", verbosity=0)
    rows = set(Schedule.objects.values_list("name", "func", "minutes", "repeats"))
    assert rows == {(spec.name, spec.func, spec.minutes, -1) for spec in SCHEDULES}


def test_migrating_again_changes_no_schedule():
    call_command("migrate", verbosity=0)
    before = list(Schedule.objects.order_by("name").values_list("pk", "name", "next_run"))
    call_command("migrate", verbosity=0)
    assert list(Schedule.objects.order_by("name").values_list("pk", "name", "next_run")) == before
