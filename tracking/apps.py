from __future__ import annotations

from django.apps import AppConfig


class TrackingAppConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tracking"

    def ready(self) -> None:
        # scraping must not import tracking (imports flow one way), so a changed store minimum
        # reaches the products scheduled under it through this hook, called by
        # scraping.services.store_update_policy in the transaction that saves the store.
        from scraping.hooks import register_min_interval_handler
        from tracking.services import store_apply_min_interval

        register_min_interval_handler(store_apply_min_interval)

        # accounts must not import scraping either: a profile's default marketplace is checked
        # against the marketplaces through this hook.
        from accounts.hooks import register_store_codes
        from scraping.marketplaces import MARKETPLACES

        register_store_codes(lambda: frozenset(marketplace.code for marketplace in MARKETPLACES))
