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
        sender = apps.get_app_config("django_q")
        post_migrate.connect(_create_cache_tables_after_migrate, sender=sender)
        post_migrate.connect(_register_schedules_after_migrate, sender=sender)


def _create_cache_tables_after_migrate(sender: AppConfig, using: str = "default", **kwargs: object) -> None:
    """Create the table of every database cache (the default ``CACHES``) on ``migrate``.

    Throttles on register and sign-in, and the cluster heartbeat that /api/health/ reads, live in
    the cache: without its table they were 500s and a 503, and Django creates it only on an
    explicit ``createcachetable``, which the production steps (migrate, collectstatic, gunicorn,
    qcluster) never ran. The command skips tables that exist, so this is idempotent.
    """
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=0)


def _register_schedules_after_migrate(sender: AppConfig, using: str = "default", **kwargs: object) -> None:
    from pricetracker.schedules import register_schedules

    register_schedules(using=using)
