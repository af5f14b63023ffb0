from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PricetrackerConfig(AppConfig):
    """Project-level commands (serve, setup_schedules) and the schedule registry."""

    name = "pricetracker"
    verbose_name = "pricetracker"

    def ready(self) -> None:
        from django.apps import apps

        # Upgrading is `migrate`: schedules are (re-)registered idempotently right after it.
        # Django sends post_migrate only for apps with a models module, which this app lacks, so
        # the sender is django_q, whose table the schedules live in (once per migrate).
        post_migrate.connect(_register_schedules_after_migrate, sender=apps.get_app_config("django_q"))


def _register_schedules_after_migrate(sender: AppConfig, using: str = "default", **kwargs: object) -> None:
    from pricetracker.schedules import register_schedules

    register_schedules(using=using)
