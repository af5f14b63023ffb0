"""Admin for the email outbox: why did an alert (or an account email) fail or wait, why did it
fire (its reasons), and send it again."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from notifications import services
from notifications.models import Notification, NotificationStatus
from tracking.models import RuleKind


class ReasonKindFilter(admin.SimpleListFilter):
    """Alerts one of whose reasons is a rule of this kind."""

    title = "reason (rule kind)"
    parameter_name = "reason"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(RuleKind.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() not in RuleKind.values:
            return queryset
        # A text match on the stored JSON: SQLite has no JSON containment lookup. Both backends
        # write an object's items as "key": "value", and a quote inside a value is escaped, so
        # only a reason's kind can match.
        return queryset.filter(reasons__icontains=f'"kind": "{self.value()}"')


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "user",
        "product",
        "price",
        "reasons_summary",
        "currency",
        "status",
        "attempts",
        "to_email",
        "last_error",
        "created_at",
        "sent_at",
    ]
    list_filter = ["kind", "status", ReasonKindFilter, "created_at"]
    search_fields = ["user__email", "product__asin", "product__title", "to_email", "idempotency_key"]
    list_select_related = ["user", "product"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-pk"]
    actions = ["resend"]

    # The model's fields in order, with the reasons as a list rather than raw JSON.
    fields = ["reasons_list" if field.name == "reasons" else field.name for field in Notification._meta.fields]

    def get_readonly_fields(self, request: HttpRequest, obj: Notification | None = None) -> list[str]:
        # An outbox row is an audit record: it changes only through the send workflow.
        return ["reasons_list", *(field.name for field in Notification._meta.fields if field.name != "reasons")]

    @admin.display(description="reasons")
    def reasons_summary(self, notification: Notification) -> str:
        kinds = [str(reason.get("kind")) for reason in notification.reasons or [] if isinstance(reason, dict)]
        if notification.target_price is not None:
            return f"target {notification.target_price}" + (f" + {len(kinds) - 1} more" if len(kinds) > 1 else "")
        return ", ".join(kinds) or "-"

    @admin.display(description="reasons")
    def reasons_list(self, notification: Notification) -> SafeString | str:
        reasons = [reason for reason in notification.reasons or [] if isinstance(reason, dict)]
        if not reasons:
            return "-"
        rows = (
            (
                reason.get("kind", ""),
                reason.get("rule_id") or "-",
                reason.get("detail", ""),
                reason.get("observed_price", ""),
                f" (suppressed: {reason['suppressed']})" if reason.get("suppressed") else "",
            )
            for reason in reasons
        )
        # Every value is escaped by format_html_join (details are our own text, but a JSON
        # column is no place to trust).
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{} (rule #{}): {}, at {}{}</li>", rows))

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
