"""The email outbox: one row per alert crossing per tracker, or per account email, with every
attempt's outcome.

A crossing writes a PENDING row inside the scrape's transaction; a separate task claims it
(PENDING -> SENDING with a lease), sends it and marks it SENT, or FAILED with the error and a
retry time. The database makes a second row for the same crossing impossible, so a redelivered
scrape or a second worker can never send the same alert twice.

Account emails (address confirmations, password resets: ``kind``) travel the same way, so a mail
server outage delays them instead of losing them. Their rows carry no product or price, and no
token: the email is rendered when sent (:func:`accounts.emails.account_email_render`).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from accounts.hooks import AccountEmailKind


class NotificationStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"  # ready to send; a task is (or should be) on its way
    SENDING = "SENDING", "Sending"  # claimed by a worker until lease_until
    SENT = "SENT", "Sent"
    FAILED = "FAILED", "Failed"  # retried at next_attempt_at; for good when next_attempt_at is null
    HELD = "HELD", "Held"  # the user has no confirmed alert address yet
    CANCELLED = "CANCELLED", "Cancelled"  # an account email no longer needed (address replaced or confirmed)


class NotificationKind(models.TextChoices):
    ALERT = "alert", "Price alert"
    CONFIRM_LOGIN = AccountEmailKind.CONFIRM_LOGIN.value, "Login address confirmation"
    CONFIRM_NOTIFICATION = AccountEmailKind.CONFIRM_NOTIFICATION.value, "Notification address confirmation"
    PASSWORD_RESET = AccountEmailKind.PASSWORD_RESET.value, "Password reset"


def crossing_key(*, tracker_id: int, price_point_id: int) -> str:
    """The idempotency key of one crossing: the same tracker and observation give the same key."""
    return f"crossing-{tracker_id}-{price_point_id}"


class Notification(models.Model):
    """An outbox row: an alert email for one tracker's crossing below its target, or an account email."""

    kind = models.CharField(max_length=24, choices=NotificationKind.choices, default=NotificationKind.ALERT)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    # Alerts only (null for account emails, enforced below).
    # SET_NULL: deleting a tracker keeps the record of what was sent for it.
    tracker = models.ForeignKey(
        "tracking.Tracker", on_delete=models.SET_NULL, null=True, blank=True, related_name="notifications"
    )
    product = models.ForeignKey(
        "tracking.Product", on_delete=models.PROTECT, null=True, blank=True, related_name="notifications"
    )
    price_point = models.ForeignKey(
        "tracking.PricePoint", on_delete=models.PROTECT, null=True, blank=True, related_name="notifications"
    )
    # Copies, so the record reads the same after the tracker's target changes or it is deleted.
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    target_price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True, default="")

    # Survives the tracker's deletion (unlike the (tracker, price_point) constraint, whose
    # tracker becomes NULL) and names the crossing in the Message-ID.
    idempotency_key = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    # Alerts: resolved at send time from user.alert_address(); blank until the first attempt.
    # Account emails: the address the email is about, fixed when queued.
    to_email = models.EmailField(max_length=254, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    # "<ExceptionClass>: <short message>" of the last failure; never credentials.
    last_error = models.CharField(max_length=300, blank=True, default="")
    # PENDING: when the sweep assumes the enqueued task was lost and kicks it again.
    # FAILED: when to retry (null: given up for good).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # SENDING: past this time the worker is presumed dead and the sweep takes the row back.
    lease_until = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "notifications_sent"
        constraints = [
            models.UniqueConstraint(fields=["tracker", "price_point"], name="notifications_one_per_crossing"),
            models.CheckConstraint(
                condition=Q(status__in=NotificationStatus.values), name="notifications_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status=NotificationStatus.SENT, sent_at__isnull=False)
                | (~Q(status=NotificationStatus.SENT) & Q(sent_at__isnull=True)),
                name="notifications_sent_iff_sent_at",
            ),
            models.CheckConstraint(
                condition=~Q(status=NotificationStatus.SENDING) | Q(lease_until__isnull=False),
                name="notifications_sending_has_lease",
            ),
            models.CheckConstraint(condition=Q(price__gte=0), name="notifications_price_not_negative"),
            models.CheckConstraint(condition=Q(kind__in=NotificationKind.values), name="notifications_kind_valid"),
            # An alert names its crossing; an account email names only its recipient.
            models.CheckConstraint(
                condition=Q(
                    kind=NotificationKind.ALERT,
                    product__isnull=False,
                    price_point__isnull=False,
                    price__isnull=False,
                    target_price__isnull=False,
                )
                | (
                    ~Q(kind=NotificationKind.ALERT)
                    & Q(
                        tracker__isnull=True,
                        product__isnull=True,
                        price_point__isnull=True,
                        price__isnull=True,
                        target_price__isnull=True,
                    )
                    & ~Q(to_email="")
                ),
                name="notifications_alert_or_account_email",
            ),
        ]
        indexes = [
            # API list: WHERE user_id = ? ORDER BY created_at DESC (optionally AND status = ?).
            models.Index(fields=["user", "-created_at"], name="notifications_user_idx"),
            # Sweep: WHERE status IN ('PENDING', 'FAILED') AND next_attempt_at <= now, and
            # WHERE status = 'HELD' (the status prefix alone serves that one).
            models.Index(fields=["status", "next_attempt_at"], name="notifications_due_idx"),
            # Sweep: WHERE status = 'SENDING' AND lease_until < now (workers that died mid-send).
            models.Index(
                fields=["lease_until"], condition=Q(status=NotificationStatus.SENDING), name="notifications_lease_idx"
            ),
        ]

    def __str__(self) -> str:
        if self.kind != NotificationKind.ALERT:
            return f"notification {self.pk} {self.status} {self.kind}"
        return f"notification {self.pk} {self.status} {self.price} {self.currency}"
