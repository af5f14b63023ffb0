"""Admin for the email outbox: why did an alert (or an account email) fail, and send it again."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from notifications import services
from notifications.models import Notification, NotificationStatus


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "user",
        "product",
        "price",
        "target_price",
        "currency",
        "status",
        "attempts",
        "to_email",
        "last_error",
        "created_at",
        "sent_at",
    ]
    list_filter = ["kind", "status", "created_at"]
    search_fields = ["user__email", "product__asin", "product__title", "to_email", "idempotency_key"]
    list_select_related = ["user", "product"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-pk"]
    actions = ["resend"]

    def get_readonly_fields(self, request: HttpRequest, obj: Notification | None = None) -> list[str]:
        # An outbox row is an audit record: it changes only through the send workflow.
        return [field.name for field in Notification._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Resend selected failed or held notifications", permissions=["change"])
    def resend(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        resent = services.notifications_resend(notification_ids=ids)
        skipped = len(ids) - resent
        self.message_user(request, f"{resent} notification(s) queued for sending.", messages.SUCCESS)
        if skipped:
            statuses = f"{NotificationStatus.FAILED.label} or {NotificationStatus.HELD.label}"
            self.message_user(
                request, f"{skipped} skipped: only {statuses} notifications are resent.", messages.WARNING
            )
