"""Outbox workflows: crossing or account email -> outbox row -> send -> retry, the outbox sweep,
test emails.

The life of a notification::

    alert (inside the scrape transaction)         -> PENDING, send task enqueued on commit
                               during quiet hours -> WAITING   (the sweep makes it PENDING when they end)
              another alert of the tracker WAITING -> MERGED    (its reasons join that one's email)
                   cooldown or daily limit reached -> SUPPRESSED (recorded, never sent)
    account email (inside the request transaction)-> PENDING, send task enqueued on commit
    PENDING / FAILED and due --claim--------------> SENDING (lease, attempts + 1)
    SENDING --alert, no confirmed address---------> HELD      (the sweep releases it, or gives up)
    SENDING --account email no longer applies-----> CANCELLED (address replaced or confirmed)
    SENDING --mail server accepted----------------> SENT
    SENDING --any error---------------------------> FAILED    (retry with backoff, or for good)
    SENDING past its lease (worker died) --sweep--> FAILED, due now

Every transition is a conditional UPDATE checked by its row count, so two workers, a
redelivered task or a sweep racing a slow worker never send one crossing twice. Email failures
never reach the scrape: the alert only writes a row and registers an on-commit enqueue.
"""

from __future__ import annotations

import enum
import logging
import smtplib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Subquery
from django.utils import timezone

from accounts.emails import account_email_render
from accounts.hooks import AccountEmailKind
from accounts.models import User
from notifications import selectors
from notifications.emails import (
    build_account_message,
    build_alert_message,
    build_test_message,
    notification_message_id,
)
from notifications.models import (
    DailyAlertCount,
    Notification,
    NotificationKind,
    NotificationStatus,
    Suppression,
    crossing_key,
)
from pricetracker.errors import InvalidInput, UpstreamFailed
from tracking.hooks import AlertOutcome, AlertReason, TrackerAlert
from tracking.models import PricePoint

logger = logging.getLogger("notifications")

# Attempts to deliver one notification; after the last failure it stays FAILED for good.
MAX_ATTEMPTS = 6
# Retry delays double from RETRY_BASE (1, 2, 4, 8, 16 minutes) and never exceed RETRY_MAX.
RETRY_BASE = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=1)
# A worker holds a SENDING row this long. Far above the SMTP timeout (10 s by default), so a
# live worker is never overtaken by the sweep; short enough that a killed one is soon replaced.
SEND_LEASE = timedelta(minutes=5)
# A PENDING row whose task has not claimed it after this long is kicked again by the sweep
# (the on-commit enqueue can be lost: a crash right after commit, or the Redis broker).
ENQUEUE_GRACE = timedelta(minutes=1)
# A price alert a week old is useless: HELD rows give up after this long.
HOLD_LIMIT = timedelta(days=7)
# At most this many sends are enqueued by one sweep (and expired leases taken back).
SWEEP_BATCH = 100
# Daily alert counts are kept this long (a user's day ends at most 14 hours after UTC's).
DAILY_COUNT_KEEP = timedelta(days=2)
ERROR_CHARS = 300

NO_ADDRESS = "No confirmed email address for alerts: the alert is held until the user confirms one."
HOLD_GAVE_UP = "Gave up: no confirmed email address for alerts within 7 days."
NO_LONGER_NEEDED = (
    "Not sent: no longer needed (the address was changed or confirmed since, or the account was deactivated)."
)
WORKER_LOST = "WorkerLost: the worker stopped while sending (killed or timed out); retrying."
NO_ADDRESS_FOR_TEST = (
    "You have no confirmed email address for alerts. Confirm your login email or your notification "
    "email (POST /api/auth/email/resend/ sends a new link), then try again."
)


class SendOutcome(enum.StrEnum):
    """What one call of :func:`notification_send` did."""

    SENT = "sent"
    FAILED = "failed"
    HELD = "held"
    CANCELLED = "cancelled"  # an account email that no longer applies
    SKIPPED = "skipped"  # another process got there first, or the row is not due


# --- Creating and enqueueing -------------------------------------------------------------------


def notification_create_for_alert(alert: TrackerAlert) -> AlertOutcome:
    """Write the outbox row of one tracker alert (every rule that fired on one observation).

    The alert hook of :mod:`tracking.hooks`: called inside the scrape's finishing transaction,
    so the row commits or rolls back with the price point. One row per (tracker, observation),
    enforced by the database: a second call for the same observation writes nothing
    (``DUPLICATE``). What the row becomes:

    - every rule in its cooldown: SUPPRESSED (recorded, not sent);
    - another alert of this tracker is WAITING for the quiet hours to end: MERGED into it (the
      one email lists both), without counting toward the daily limit again;
    - the user's daily limit reached: SUPPRESSED;
    - inside the user's quiet hours: WAITING until they end (the sweep sends it then);
    - otherwise PENDING, and its send is enqueued after commit.
    """
    tracker, point = alert.tracker, alert.point
    user = tracker.user
    moment = alert.observed_at
    reasons = [_reason_json(reason, point) for reason in alert.reasons]
    fields: dict[str, object] = {
        "user_id": tracker.user_id,
        "tracker": tracker,
        "product_id": point.product_id,
        "price_point": point,
        "price": point.price,
        "previous_price": alert.previous_price,
        "target_price": alert.target_price,
        "currency": point.currency,
        "idempotency_key": crossing_key(tracker_id=tracker.pk, price_point_id=point.pk),
        "reasons": reasons,
    }
    if alert.suppressed:
        return _create(fields, status=NotificationStatus.SUPPRESSED)
    has_quiet_hours = user.quiet_hours_start is not None
    if has_quiet_hours:
        merged = _merge_into_waiting(fields, tracker_id=tracker.pk, target_price=alert.target_price)
        if merged is not None:
            return merged
    quiet_until = user.quiet_until(moment) if has_quiet_hours else None
    try:
        # A savepoint: a duplicate must not break the scrape's transaction, and it takes back
        # the daily count it made.
        with transaction.atomic():
            if user.max_alerts_per_day is not None and not _count_toward_daily_limit(user=user, moment=moment):
                fields["reasons"] = [
                    {**reason, "suppressed": reason["suppressed"] or Suppression.DAILY_LIMIT} for reason in reasons
                ]
                Notification.objects.create(**fields, status=NotificationStatus.SUPPRESSED)
                logger.info("alert for tracker %s suppressed: daily limit", tracker.pk)
                return AlertOutcome.SUPPRESSED
            if quiet_until is not None:
                Notification.objects.create(**fields, status=NotificationStatus.WAITING, next_attempt_at=quiet_until)
                return AlertOutcome.QUEUED
            notification = Notification.objects.create(**fields, next_attempt_at=timezone.now() + ENQUEUE_GRACE)
    except IntegrityError:
        logger.info("alert %s already recorded", fields["idempotency_key"])
        return AlertOutcome.DUPLICATE
    notification_enqueue(notification_id=notification.pk)
    return AlertOutcome.QUEUED


def _reason_json(reason: AlertReason, point: PricePoint) -> dict[str, object]:
    """One reason as stored in ``Notification.reasons`` (and shown by the API)."""
    return {
        "kind": reason.kind,
        "rule_id": reason.rule_id,
        "detail": reason.detail,
        "observed_price": f"{point.price:.2f}",
        "observed_at": point.observed_at.isoformat(),
        "suppressed": reason.suppressed,
    }


def _create(fields: dict[str, object], *, status: NotificationStatus) -> AlertOutcome:
    """Insert a row that is not sent (SUPPRESSED) in a savepoint; a duplicate writes nothing."""
    try:
        with transaction.atomic():
            Notification.objects.create(**fields, status=status)
    except IntegrityError:
        return AlertOutcome.DUPLICATE
    return AlertOutcome.SUPPRESSED


class _NoLongerWaiting(Exception):
    pass


def _merge_into_waiting(fields: dict[str, object], *, tracker_id: int, target_price: object) -> AlertOutcome | None:
    """Fold this alert into the tracker's WAITING one, if there is one: a MERGED row of its own
    (so the observation is recorded once) and its reasons added to the waiting row's. None if
    no alert of the tracker is waiting (or the sweep released it meanwhile).
    """
    waiting_id = (
        Notification.objects.filter(tracker_id=tracker_id, status=NotificationStatus.WAITING)
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    if waiting_id is None:
        return None
    waiting = Notification.objects.filter(pk=waiting_id, status=NotificationStatus.WAITING)
    try:
        with transaction.atomic():
            # The claim: a conditional UPDATE that changes nothing but holds the row until we
            # commit (PostgreSQL; SQLite writers are serialised anyway). The sweep's own
            # conditional UPDATE (WAITING -> PENDING) waits for it, then sends our reasons too;
            # if the sweep got there first, nothing matches and the alert goes on its own.
            if not waiting.update(next_attempt_at=F("next_attempt_at")):
                raise _NoLongerWaiting
            Notification.objects.create(**fields, status=NotificationStatus.MERGED, merged_into_id=waiting_id)
            # Read and written while we hold the row: no other writer can interleave.
            current = waiting.values_list("reasons", "target_price").get()
            changes: dict[str, object] = {"reasons": [*current[0], *fields["reasons"]]}  # type: ignore[misc]
            if current[1] is None and target_price is not None:
                changes["target_price"] = target_price
            waiting.update(**changes)
    except _NoLongerWaiting:
        return None
    except IntegrityError:
        return AlertOutcome.DUPLICATE
    logger.info("alert for tracker %s merged into waiting notification %s", tracker_id, waiting_id)
    return AlertOutcome.QUEUED


def _count_toward_daily_limit(*, user: User, moment: datetime) -> bool:
    """Count one alert on the user's current day; False (nothing counted) if the limit is reached.

    A conditional UPDATE (``count < limit``) on the day's counter row, so concurrent workers
    alerting the same user never pass the limit together. The limit is read from the row, not
    from ``user``, which may be stale.
    """
    day = user.local_day(moment)
    DailyAlertCount.objects.bulk_create([DailyAlertCount(user_id=user.pk, day=day)], ignore_conflicts=True)
    limit = User.objects.filter(pk=user.pk).values("max_alerts_per_day")
    return bool(
        DailyAlertCount.objects.filter(user_id=user.pk, day=day, count__lt=Subquery(limit)).update(count=F("count") + 1)
    )


def account_email_create(*, user: User, kind: AccountEmailKind, to_email: str) -> Notification:
    """Write the outbox row for an account email and enqueue its send after commit.

    The account email sender of :mod:`accounts.hooks`: called inside the request's transaction,
    so the row commits or rolls back with the change that asked for it. The row names only
    the recipient; the email, with a fresh token, is rendered when it is sent.
    """
    notification = Notification.objects.create(
        user=user,
        kind=NotificationKind(kind.value),
        to_email=to_email,
        # Each request is its own email (a second link is a new, wanted email); the key names it
        # in the Message-ID so the retries of one email share it. Short, so that header stays
        # on one line.
        idempotency_key=f"account-{uuid.uuid4().hex[:16]}",
        next_attempt_at=timezone.now() + ENQUEUE_GRACE,
    )
    notification_enqueue(notification_id=notification.pk)
    return notification


def notification_enqueue(*, notification_id: int) -> None:
    """Enqueue the send task once the current transaction commits (ids only)."""

    def enqueue() -> None:
        from django_q.tasks import async_task

        async_task(
            "notifications.tasks.send_notification",
            notification_id,
            task_name=f"notification-{notification_id}",
            group="notifications",
        )

    # robust: a broker outage must not fail the scrape that has just committed; the row stays
    # PENDING and the sweep enqueues it again after ENQUEUE_GRACE.
    transaction.on_commit(enqueue, robust=True)


# --- Sending ---------------------------------------------------------------------------------


def _claimable(now: datetime) -> Q:
    return Q(status=NotificationStatus.PENDING) | Q(status=NotificationStatus.FAILED, next_attempt_at__lte=now)


def retry_delay(attempts: int) -> timedelta:
    """Backoff after the ``attempts``-th failed attempt."""
    return min(RETRY_BASE * 2 ** max(attempts - 1, 0), RETRY_MAX)


def error_summary(exc: BaseException) -> str:
    """``"<ExceptionClass>: <message>"``, one line, short, with the mailer password masked."""
    if isinstance(exc, smtplib.SMTPResponseException):
        error = exc.smtp_error
        text = f"{exc.smtp_code} {error.decode(errors='replace') if isinstance(error, bytes) else error}"
    else:
        text = str(exc)
    text = " ".join(text.split())
    options = settings.MAILERS.get("default", {}).get("OPTIONS")
    password = options.get("password") if isinstance(options, Mapping) else None
    if password:
        text = text.replace(str(password), "***")
    summary = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return summary[:ERROR_CHARS]


def notification_send(*, notification_id: int) -> SendOutcome:
    """Claim one notification, resolve the address, send it and record the outcome.

    Safe to call any number of times from any number of processes: only the caller whose
    conditional UPDATE claims the row sends it, and only that attempt may mark it SENT or FAILED.
    """
    now = timezone.now()
    claimed = Notification.objects.filter(_claimable(now), pk=notification_id).update(
        status=NotificationStatus.SENDING,
        lease_until=now + SEND_LEASE,
        attempts=F("attempts") + 1,
        next_attempt_at=None,
    )
    if not claimed:
        logger.info("notification %s: another process got there first, or it is not due", notification_id)
        return SendOutcome.SKIPPED

    notification = (
        Notification.objects.select_related("user", "product", "price_point").filter(pk=notification_id).first()
    )
    if notification is None:  # its user was deleted a moment ago (the rows cascade)
        return SendOutcome.SKIPPED
    # Our attempt, and only ours: every claim increments attempts, so the count names the attempt.
    # If our lease ran out and the sweep took the row back (FAILED, or PENDING again) but nobody
    # has claimed it since, our outcome still applies; after a newer claim, nothing matches.
    mine = Notification.objects.filter(
        pk=notification_id,
        attempts=notification.attempts,
        status__in=[NotificationStatus.SENDING, NotificationStatus.FAILED, NotificationStatus.PENDING],
    )
    rendered = None
    if notification.kind == NotificationKind.ALERT:
        address = notification.user.alert_address()
        if address is None:
            # Not a delivery attempt: nothing was tried, so it does not count against MAX_ATTEMPTS.
            mine.update(
                status=NotificationStatus.HELD, lease_until=None, attempts=F("attempts") - 1, last_error=NO_ADDRESS
            )
            logger.info("notification %s held: user %s has no confirmed address", notification_id, notification.user_id)
            return SendOutcome.HELD
    else:
        address = notification.to_email
        # Rendered now, from the account's current state: the token is fresh and is never
        # sent for an address that was replaced (or confirmed) since the row was written.
        rendered = account_email_render(
            user=notification.user, kind=AccountEmailKind(notification.kind), to_email=address
        )
        if rendered is None:
            mine.update(
                status=NotificationStatus.CANCELLED,
                lease_until=None,
                attempts=F("attempts") - 1,
                last_error=NO_LONGER_NEEDED,
            )
            logger.info("notification %s cancelled: %s no longer applies", notification_id, notification.kind)
            return SendOutcome.CANCELLED

    message_id = notification_message_id(notification)
    try:
        if rendered is None:
            message = build_alert_message(notification, to_email=address)
        else:
            message = build_account_message(notification, rendered)
        message.send()
    except Exception as exc:  # any backend error is recorded and retried, never raised to the queue
        error = error_summary(exc)
        final = notification.attempts >= MAX_ATTEMPTS
        mine.update(
            status=NotificationStatus.FAILED,
            lease_until=None,
            last_error=error,
            next_attempt_at=None if final else timezone.now() + retry_delay(notification.attempts),
            to_email=address,
            message_id=message_id,
        )
        logger.warning(
            "notification %s attempt %d failed%s: %s",
            notification_id,
            notification.attempts,
            " (giving up)" if final else "",
            error,
        )
        return SendOutcome.FAILED

    marked = mine.update(
        status=NotificationStatus.SENT,
        sent_at=timezone.now(),
        lease_until=None,
        next_attempt_at=None,
        to_email=address,
        message_id=message_id,
    )
    if not marked:
        # A newer attempt claimed the row while the server was talking: it sends again, and
        # the receiver drops that copy by its Message-ID.
        logger.warning("notification %s was sent after its lease expired and was claimed again", notification_id)
    logger.info("notification %s sent to user %s", notification_id, notification.user_id)
    return SendOutcome.SENT


# --- The sweep ---------------------------------------------------------------------------------


@dataclass
class SweepReport:
    """What one sweep did."""

    leases_expired: int = 0
    released: int = 0
    gave_up: int = 0
    enqueued: int = 0
    # WAITING alerts whose quiet hours ended (also counted in ``enqueued``).
    quiet_hours_ended: int = 0

    def __str__(self) -> str:
        return (
            f"expired leases {self.leases_expired}, released {self.released}, "
            f"gave up {self.gave_up}, enqueued {self.enqueued}, quiet hours ended {self.quiet_hours_ended}"
        )


def _take_back_expired_leases(*, now: datetime, limit: int) -> int:
    """SENDING rows whose worker died: FAILED and due now (or for good after the last attempt)."""
    taken = 0
    expired = Notification.objects.filter(status=NotificationStatus.SENDING, lease_until__lt=now)
    for pk, attempts in expired.values_list("pk", "attempts")[:limit]:
        taken += Notification.objects.filter(
            pk=pk, status=NotificationStatus.SENDING, attempts=attempts, lease_until__lt=now
        ).update(
            status=NotificationStatus.FAILED,
            lease_until=None,
            last_error=WORKER_LOST,
            next_attempt_at=None if attempts >= MAX_ATTEMPTS else now,
        )
    return taken


def _release_held(*, now: datetime) -> tuple[int, int]:
    """HELD rows: due now when their user has an address; FAILED once older than HOLD_LIMIT."""
    gave_up = Notification.objects.filter(status=NotificationStatus.HELD, created_at__lte=now - HOLD_LIMIT).update(
        status=NotificationStatus.FAILED, last_error=HOLD_GAVE_UP, next_attempt_at=None
    )
    released = 0
    # Every user with held alerts is checked (one row read each, cheap); the number of sends
    # stays capped by the due step. alert_address() is the one rule for "may we mail them".
    waiting = User.objects.filter(pk__in=Notification.objects.filter(status=NotificationStatus.HELD).values("user_id"))
    for user in waiting.iterator(chunk_size=500):
        if user.alert_address() is not None:
            released += Notification.objects.filter(user=user, status=NotificationStatus.HELD).update(
                status=NotificationStatus.PENDING, next_attempt_at=now
            )
    return released, gave_up


def _enqueue_due(*, now: datetime, limit: int) -> int:
    """PENDING rows whose task seems lost and FAILED rows due for a retry: enqueue a send each."""
    due = selectors.due_for_sending(now)
    enqueued = 0
    ids = list(Notification.objects.filter(due).order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    for pk in ids:
        # Moving next_attempt_at on means a row is kicked at most once per ENQUEUE_GRACE, even
        # while the queue is backed up; the claim in notification_send decides who sends.
        if Notification.objects.filter(due, pk=pk).update(
            status=NotificationStatus.PENDING, next_attempt_at=now + ENQUEUE_GRACE
        ):
            notification_enqueue(notification_id=pk)
            enqueued += 1
    return enqueued


def _end_quiet_hours(*, now: datetime, limit: int) -> int:
    """WAITING alerts whose quiet hours have ended: PENDING, and a send enqueued for each."""
    ended = 0
    due = Notification.objects.filter(status=NotificationStatus.WAITING, next_attempt_at__lte=now)
    for pk in list(due.order_by("next_attempt_at").values_list("pk", flat=True)[:limit]):
        # Conditional: an alert being merged into this row holds it until that scrape commits,
        # then this UPDATE proceeds and the email carries the merged reasons too.
        if due.filter(pk=pk).update(status=NotificationStatus.PENDING, next_attempt_at=now + ENQUEUE_GRACE):
            notification_enqueue(notification_id=pk)
            ended += 1
    return ended


def _prune_daily_counts(*, now: datetime) -> None:
    """Forget daily alert counts of days that have ended everywhere (a day and a half of margin)."""
    DailyAlertCount.objects.filter(day__lt=(now - DAILY_COUNT_KEEP).date()).delete()


def notifications_sweep(*, now: datetime | None = None, limit: int = SWEEP_BATCH) -> SweepReport:
    """Recover the outbox (every minute): expired leases, released holds, ended quiet hours,
    lost and due sends."""
    now = now or timezone.now()
    report = SweepReport()
    report.leases_expired = _take_back_expired_leases(now=now, limit=limit)
    report.released, report.gave_up = _release_held(now=now)
    report.quiet_hours_ended = _end_quiet_hours(now=now, limit=limit)
    report.enqueued = _enqueue_due(now=now, limit=limit) + report.quiet_hours_ended
    _prune_daily_counts(now=now)
    if report.leases_expired or report.gave_up:
        logger.warning("notification sweep: %s", report)
    return report


# --- Admin and API -------------------------------------------------------------------------------


def notifications_resend(*, notification_ids: Iterable[int]) -> int:
    """Put FAILED or HELD notifications back to PENDING and enqueue them; return how many.

    Attempts are not reset (they count real attempts), so a row that had given up gets one
    more try each time an admin resends it.
    """
    now = timezone.now()
    resendable = [NotificationStatus.FAILED, NotificationStatus.HELD]
    resent = 0
    with transaction.atomic():
        for pk in Notification.objects.filter(pk__in=list(notification_ids), status__in=resendable).values_list(
            "pk", flat=True
        ):
            if Notification.objects.filter(pk=pk, status__in=resendable).update(
                status=NotificationStatus.PENDING, next_attempt_at=now + ENQUEUE_GRACE
            ):
                notification_enqueue(notification_id=pk)
                resent += 1
    return resent


def notification_send_test(*, user: User) -> str:
    """Send a test email to ``user``'s alert address now; return the address.

    Refuses (400) when the user has no confirmed address; reports a mail server failure as 502
    with its summary, so the user learns whether alerts can reach them.
    """
    address = user.alert_address()
    if address is None:
        raise InvalidInput(NO_ADDRESS_FOR_TEST, code="no_alert_address")
    try:
        build_test_message(to_email=address).send()
    except Exception as exc:  # whatever the backend raised, the user gets its summary
        summary = error_summary(exc)
        logger.warning("test email to user %s failed: %s", user.pk, summary)
        raise UpstreamFailed(f"Sending the test email to {address} failed: {summary}", code="email_failed") from None
    return address
