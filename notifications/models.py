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
    # Alerts only. WAITING: raised during the user's quiet hours; the sweep makes it PENDING at
    # next_attempt_at (when they end). MERGED: raised while another alert of the same tracker
    # was WAITING, and folded into it (merged_into): that one email lists both.
    # SUPPRESSED: recorded, never sent (every rule that fired was in its cooldown, or the
    # user's daily limit was reached); its reasons say which.
    WAITING = "WAITING", "Waiting for quiet hours to end"
    MERGED = "MERGED", "Merged into a waiting alert"
    SUPPRESSED = "SUPPRESSED", "Suppressed"


class NotificationKind(models.TextChoices):
    ALERT = "alert", "Price alert"
    CONFIRM_LOGIN = AccountEmailKind.CONFIRM_LOGIN.value, "Login address confirmation"
    CONFIRM_NOTIFICATION = AccountEmailKind.CONFIRM_NOTIFICATION.value, "Notification address confirmation"
    PASSWORD_RESET = AccountEmailKind.PASSWORD_RESET.value, "Password reset"


class Suppression(models.TextChoices):
    """Why a rule's firing sent no email (``reasons[].suppressed``)."""

    COOLDOWN = "cooldown", "The rule fired within its cooldown"
    DAILY_LIMIT = "daily_limit", "The user's daily alert limit was reached"


def crossing_key(*, tracker_id: int, price_point_id: int) -> str:
    """The idempotency key of one alert: the same tracker and observation give the same key."""
    return f"crossing-{tracker_id}-{price_point_id}"


class Notification(models.Model):
    """An outbox row: the alert of one tracker for one observation (every rule that fired), or an
    account email.

    ``reasons`` lists the rules that fired, strongest first: ``{kind, rule_id, detail,
    observed_price, observed_at, suppressed}`` (``suppressed``: "" or a :class:`Suppression`).
    """

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
    # Copies, so the record reads the same after the tracker's rules change or it is deleted.
    # price: the observed price; previous_price: the previous successful observation's (null
    # for the first); target_price: the below_target rule's price when one fired (else null).
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    previous_price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    target_price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True, default="")
    reasons = models.JSONField(default=list, blank=True)
    # MERGED rows: the WAITING alert of the same tracker whose email carries this one's reasons.
    merged_into = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="merged", editable=False
    )

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
    # FAILED: when to retry (null: given up for good). WAITING: when the quiet hours end.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # SENDING: past this time the worker is presumed dead and the sweep takes the row back.
    lease_until = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "notifications_sent"
        # `reasons` is a JSONField. Declared, so that Django's system checks take JSON support as
        # given instead of opening a connection to ask SQLite at every command's start (which
        # created an empty default database file before `serve --demo` switched databases).
        required_db_features = ["supports_json_field"]
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
            models.CheckConstraint(
                condition=Q(previous_price__isnull=True) | Q(previous_price__gte=0),
                name="notifications_previous_price_not_negative",
            ),
            models.CheckConstraint(condition=Q(kind__in=NotificationKind.values), name="notifications_kind_valid"),
            # A merged alert names the alert that carries it, and only a merged one does; a
            # waiting alert knows when it may go.
            models.CheckConstraint(
                condition=Q(status=NotificationStatus.MERGED, merged_into__isnull=False)
                | (~Q(status=NotificationStatus.MERGED) & Q(merged_into__isnull=True)),
                name="notifications_merged_iff_merged_into",
            ),
            models.CheckConstraint(
                condition=~Q(status=NotificationStatus.WAITING) | Q(next_attempt_at__isnull=False),
                name="notifications_waiting_has_time",
            ),
            # An alert names its tracker's observation; an account email names only its recipient.
            models.CheckConstraint(
                condition=Q(
                    kind=NotificationKind.ALERT,
                    product__isnull=False,
                    price_point__isnull=False,
                    price__isnull=False,
                )
                | (
                    ~Q(kind=NotificationKind.ALERT)
                    & Q(
                        tracker__isnull=True,
                        product__isnull=True,
                        price_point__isnull=True,
                        price__isnull=True,
                        previous_price__isnull=True,
                        target_price__isnull=True,
                    )
                    & ~Q(to_email="")
                ),
                name="notifications_alert_or_account_email",
            ),
        ]
        # The (tracker, price_point) unique index also serves "the WAITING alert of this tracker".
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


class DailyAlertCount(models.Model):
    """How many alerts a user was sent (or has waiting) on one day of their own time zone.

    Serves ``User.max_alerts_per_day``: counted with a conditional UPDATE (``count < limit``)
    in the transaction that writes the alert, so two workers alerting one user at once cannot
    both pass the limit. Rows older than a few days are pruned by the outbox sweep.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "alert_daily_counts"
        constraints = [
            # One counter per user and day; its index also serves the conditional UPDATE.
            models.UniqueConstraint(fields=["user", "day"], name="alert_daily_counts_one_per_day"),
        ]
        indexes = [
            # Pruning: DELETE WHERE day < today - a few days.
            models.Index(fields=["day"], name="alert_daily_counts_day_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.count} alert(s) for user {self.user_id} on {self.day}"
