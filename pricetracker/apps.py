from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PricetrackerConfig(AppConfig):
    """Project-level commands (serve, setup_schedules) and the schedule registry."""

    name = "pricetracker"
    verbose_name = "pricetracker"

    def ready(self) -> None:
        # Upgrading is `migrate`: schedules are (re-)registered idempotently right after it.
        post_migrate.connect(_register_schedules_after_migrate, sender=self)


def _register_schedules_after_migrate(sender: AppConfig, using: str = "default", **kwargs: object) -> None:
    from pricetracker.schedules import register_schedules

    register_schedules(using=using)
