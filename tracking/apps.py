from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_save, pre_save


class TrackingAppConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tracking"

    def ready(self) -> None:
        # scraping imports no other app, so a changed store minimum reaches tracking through
        # the Store model's save signals (the admin edits stores with save()).
        from scraping.models import Store

        pre_save.connect(_remember_min_interval, sender=Store, dispatch_uid="tracking.store_min_interval_pre")
        post_save.connect(_apply_min_interval, sender=Store, dispatch_uid="tracking.store_min_interval_post")


def _remember_min_interval(sender: type, instance: Any, **kwargs: Any) -> None:
    if instance.pk is None:
        instance._previous_min_interval = None
        return
    instance._previous_min_interval = (
        sender.objects.filter(pk=instance.pk).values_list("min_interval_minutes", flat=True).first()
    )


def _apply_min_interval(sender: type, instance: Any, created: bool, **kwargs: Any) -> None:
    previous = getattr(instance, "_previous_min_interval", None)
    if created or previous is None or previous == instance.min_interval_minutes:
        return
    from tracking.services import store_apply_min_interval

    with transaction.atomic():
        store_apply_min_interval(store_id=instance.pk)
