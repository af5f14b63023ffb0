"""Read-only queries over the alert outbox (no writes, no side effects), for health and metrics.

Every query is served by the ``(status, next_attempt_at)`` index (``notifications_due_idx``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q

from notifications.models import Notification, NotificationStatus


def due_for_sending(now: datetime) -> Q:
    """Outbox rows due for a send attempt: PENDING or FAILED whose next attempt has come."""
    return Q(status__in=[NotificationStatus.PENDING, NotificationStatus.FAILED], next_attempt_at__lte=now)


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    """Alert emails waiting: due now, the oldest due time, held for an address, given up on."""

    due: int
    oldest_due_at: datetime | None
    held: int
    failed_permanently: int


def outbox_backlog(*, now: datetime) -> OutboxBacklog:
    """Alert emails due for sending and since when the oldest has waited, plus held and given-up ones."""
    due = Notification.objects.filter(due_for_sending(now))
    return OutboxBacklog(
        due=due.count(),
        oldest_due_at=due.order_by("next_attempt_at").values_list("next_attempt_at", flat=True).first(),
        held=Notification.objects.filter(status=NotificationStatus.HELD).count(),
        failed_permanently=Notification.objects.filter(
            status=NotificationStatus.FAILED, next_attempt_at__isnull=True
        ).count(),
    )


def outbox_due_count(*, now: datetime) -> int:
    """How many alert emails are due for sending now."""
    return Notification.objects.filter(due_for_sending(now)).count()


def notifications_by_status() -> dict[str, int]:
    """``{status: count}`` of every outbox row (the status prefix of the index alone serves it)."""
    return dict(Notification.objects.values_list("status").annotate(n=Count("pk")).order_by())
