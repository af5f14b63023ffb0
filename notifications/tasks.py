"""django-q2 task entry points. Thin: take ids, call one service, return a short summary.

Sending errors are recorded on the notification and return normally, so django-q2 only sees a
failed task when our own code is broken.
"""

from __future__ import annotations

from notifications import services


def send_notification(notification_id: int) -> str:
    """Send one notification (enqueued after the crossing commits, by the sweep or by an admin)."""
    return str(services.notification_send(notification_id=notification_id))


def sweep_outbox() -> str:
    """Every minute: take back expired leases, release held alerts, enqueue lost and due sends."""
    return str(services.notifications_sweep())
