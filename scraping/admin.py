"""Admin for store policies: limits are editable; the breaker is shown, and can be opened or closed by hand.

The workers move the breaker themselves (``tracking.policy``); the two actions here are the
operator's override. They are plain UPDATEs of the breaker columns, written
here because ``scraping`` imports no other app.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from scraping.models import Store

POLICY_FIELDS = (
    "code",
    "name",
    "enabled",
    "min_interval_minutes",
    "requests_per_minute",
    "concurrency",
    "backoff_base_minutes",
    "backoff_max_minutes",
    "breaker_threshold",
    "breaker_window_minutes",
    "breaker_cooldown_minutes",
    "min_plausible_price",
    "max_plausible_price",
)
BREAKER_FIELDS = ("breaker_state", "breaker_opened_at", "breaker_reason", "next_request_at", "updated_at")
REASON_MAX_LENGTH = Store._meta.get_field("breaker_reason").max_length


class StorePolicyForm(forms.ModelForm):
    class Meta:
        model = Store
        fields = POLICY_FIELDS
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

    @admin.action(description="Open breaker (pause scraping for the cooldown, then probe)", permissions=["change"])
    def open_breaker(self, request: HttpRequest, queryset: QuerySet[Store]) -> None:
        """Open the selected stores' breakers now, as if they had just been blocked."""
        reason = f"opened by {request.user.get_username()} in the admin"[:REASON_MAX_LENGTH]
        opened = queryset.update(
            breaker_state=Store.BreakerState.OPEN, breaker_opened_at=timezone.now(), breaker_reason=reason
        )
        self.message_user(request, f"Circuit breaker opened for {opened} store(s).", messages.SUCCESS)

    @admin.action(description="Close breaker (resume scraping now)", permissions=["change"])
    def close_breaker(self, request: HttpRequest, queryset: QuerySet[Store]) -> None:
        """Close the selected stores' breakers; scraping resumes at the next dispatcher tick."""
        reason = f"closed by {request.user.get_username()} in the admin"[:REASON_MAX_LENGTH]
        # breaker_opened_at stays: it records when the breaker last opened.
        closed = queryset.update(breaker_state=Store.BreakerState.CLOSED, breaker_reason=reason)
        self.message_user(request, f"Circuit breaker closed for {closed} store(s).", messages.SUCCESS)
