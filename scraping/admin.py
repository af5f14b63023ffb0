"""Admin for store policies: limits are editable; breaker state is shown, changed by the workers."""

from __future__ import annotations

from django.contrib import admin

from scraping.models import Store

BREAKER_FIELDS = ("breaker_state", "breaker_opened_at", "breaker_reason", "next_request_at", "updated_at")


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "enabled",
        "min_interval_minutes",
        "requests_per_minute",
        "concurrency",
        "breaker_state",
        "breaker_opened_at",
        "updated_at",
    )
    list_filter = ("enabled", "breaker_state")
    list_editable = ("enabled",)
    search_fields = ("code", "name")
    fieldsets = (
        (None, {"fields": ("code", "name", "enabled")}),
        (
            "Politeness",
            {"fields": ("min_interval_minutes", "requests_per_minute", "concurrency")},
        ),
        ("Failure backoff per product", {"fields": ("backoff_base_minutes", "backoff_max_minutes")}),
        (
            "Circuit breaker",
            {
                "fields": (
                    "breaker_threshold",
                    "breaker_window_minutes",
                    "breaker_cooldown_minutes",
                    *BREAKER_FIELDS,
                )
            },
        ),
    )

    def get_readonly_fields(self, request, obj=None):
        # The code names the provider; renaming it would orphan the store's products.
        return ("code", *BREAKER_FIELDS) if obj is not None else BREAKER_FIELDS
