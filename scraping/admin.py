"""Admin for store policies: limits are editable; the breaker is shown, and can be opened or closed by hand.

Saving goes through :func:`scraping.services.store_update_policy`, which writes only the changed
fields and lets a new minimum interval reach the products scheduled under it. The workers move
the breaker themselves; the two actions here are the operator's override
(:func:`scraping.policy.breaker_set`).
"""

from __future__ import annotations

from typing import Any

from babel.numbers import is_currency
from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from scraping import policy
from scraping.models import Store
from scraping.services import POLICY_FIELDS, store_update_policy

BREAKER_FIELDS = ("breaker_state", "breaker_opened_at", "breaker_reason", "next_request_at", "updated_at")


class StorePolicyForm(forms.ModelForm):
    class Meta:
        model = Store
        fields = ("code", *POLICY_FIELDS)
        # Admin-facing explanations for fields whose model help text is missing or terse.
        help_texts = {
            "name": "Display name, shown to admins only.",
            "requests_per_minute": "Request budget for this store across all workers, clusters and hosts: "
            "request starts are spaced 60 / this many seconds apart.",
            "concurrency": "Maximum scrapes of this store fetching at once, across all workers.",
            "breaker_window_minutes": "The window in which BLOCKED outcomes are counted against the threshold.",
            "breaker_cooldown_minutes": "How long an open breaker pauses scraping before one probe request is "
            "allowed (half-open). A blocked probe re-opens it; a successful one closes it.",
        }

    def clean_currency(self) -> str:
        """An ISO 4217 code CLDR knows: prices are stored and formatted with it."""
        code = str(self.cleaned_data["currency"]).strip().upper()
        if not is_currency(code):
            raise forms.ValidationError("Not an ISO 4217 currency code (e.g. EUR, JPY).")
        return code


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    form = StorePolicyForm
    list_display = (
        "code",
        "name",
        "enabled",
        "min_interval_minutes",
        "requests_per_minute",
        "concurrency",
        "breaker_state",
        "breaker_opened_at",
        "breaker_reason",
        "next_request_at",
    )
    list_filter = ("enabled", "breaker_state")
    list_editable = ("enabled",)
    search_fields = ("code", "name")
    actions = ("open_breaker", "close_breaker")
    fieldsets = (
        (None, {"fields": ("code", "name", "enabled")}),
        ("Marketplace", {"fields": ("currency", "language", "base_url")}),
        (
            "Politeness",
            {"fields": ("min_interval_minutes", "requests_per_minute", "concurrency")},
        ),
        ("Failure backoff per product", {"fields": ("backoff_base_minutes", "backoff_max_minutes")}),
        (
            "Plausible prices (outside: a FAILED run, implausible_price; never a price point)",
            {"fields": ("min_plausible_price", "max_plausible_price")},
        ),
        (
            "Circuit breaker settings",
            {"fields": ("breaker_threshold", "breaker_window_minutes", "breaker_cooldown_minutes")},
        ),
        (
            "Circuit breaker state (kept by the workers)",
            {
                "description": "Closed: scraping normally. Open: paused after too many blocked responses, "
                "until the cooldown ends. Half-open: one probe request decides whether to close or "
                "re-open. Use the “Open breaker” and “Close breaker” actions on the store list to "
                "override it; untick “Enabled” to pause the store indefinitely. The next request slot "
                "is the rate limiter's: no request to this store starts before it.",
                "fields": BREAKER_FIELDS,
            },
        ),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Store | None = None) -> tuple[str, ...]:
        # The code names the provider; renaming it would orphan the store's products.
        return ("code", *BREAKER_FIELDS) if obj is not None else BREAKER_FIELDS

    def save_model(self, request: HttpRequest, obj: Store, form: forms.ModelForm, change: bool) -> None:
        """Save through the service: only the fields the operator changed, and a new minimum
        interval applied to the store's products in the same transaction."""
        changes: dict[str, Any] = {name: getattr(obj, name) for name in form.changed_data} if change else {}
        store_update_policy(store=obj, **changes)

    @admin.action(description="Open breaker (pause scraping for the cooldown, then probe)", permissions=["change"])
    def open_breaker(self, request: HttpRequest, queryset: QuerySet[Store]) -> None:
        """Open the selected stores' breakers now, as if they had just been blocked."""
        self._set_breakers(request, queryset, Store.BreakerState.OPEN, "opened")

    @admin.action(description="Close breaker (resume scraping now)", permissions=["change"])
    def close_breaker(self, request: HttpRequest, queryset: QuerySet[Store]) -> None:
        """Close the selected stores' breakers; scraping resumes at the next dispatcher tick."""
        self._set_breakers(request, queryset, Store.BreakerState.CLOSED, "closed")

    def _set_breakers(self, request: HttpRequest, queryset: QuerySet[Store], state: str, verb: str) -> None:
        moved = policy.breaker_set(
            store_ids=queryset.values_list("pk", flat=True),
            state=state,
            reason=f"{verb} by {request.user.get_username()} in the admin",
        )
        self.message_user(request, f"Circuit breaker {verb} for {moved} store(s).", messages.SUCCESS)
