"""``manage.py setup_schedules``: register the periodic jobs (idempotent; also runs after migrate)."""

from django.core.management.base import BaseCommand

from pricetracker.schedules import register_schedules


class Command(BaseCommand):
    help = "Create or correct django-q2 schedules declared in pricetracker/schedules.py. Safe to run any time."

    def handle(self, *args: object, **options: object) -> None:
        for name, outcome in register_schedules().items():
            self.stdout.write(f"{name}: {outcome}")
