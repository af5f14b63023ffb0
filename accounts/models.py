"""The user: email is the login (case-insensitive, unique), plus per-user limits; mail quotas."""

from __future__ import annotations

import functools
import hashlib
import zoneinfo
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import ClassVar

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models, transaction
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone


def default_max_trackers() -> int:
    """Deployment default for a new user's active-tracker limit (``USER_MAX_TRACKERS``)."""
    return settings.USER_MAX_TRACKERS


def default_manual_scrapes_per_hour() -> int:
    """Deployment default for a new user's manual scrape limit (``USER_MANUAL_SCRAPES_PER_HOUR``)."""
    return settings.USER_MANUAL_SCRAPES_PER_HOUR


def default_max_rules_per_tracker() -> int:
    """Deployment default for a new user's alert rules per tracker (``USER_MAX_RULES_PER_TRACKER``)."""
    return settings.USER_MAX_RULES_PER_TRACKER


@functools.cache
def time_zone_names() -> frozenset[str]:
    """The IANA time zone names this system knows (``Europe/Berlin``, ``UTC``...)."""
    return frozenset(zoneinfo.available_timezones())


def normalize_email(email: str) -> str:
    """Canonical form of an address: stripped and lower-cased (logins are case-insensitive)."""
    return email.strip().lower()


class UserManager(BaseUserManager["User"]):
    """Creates users by email; looks them up case-insensitively."""

    use_in_migrations = True

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email__iexact=username)

    def _create(self, email: str, password: str | None, **extra: object) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        # An admin created from the command line has proven nothing by email, but is trusted.
        extra.setdefault("email_verified_at", timezone.now())
        return self._create(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who tracks products. ``email`` is the login."""

    # Stored lower-cased (see ``clean``/``UserManager``); the functional constraint below keeps
    # uniqueness case-insensitive even for rows written around the model.
    email = models.EmailField(max_length=254, unique=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    # When the login address was confirmed by following the emailed link (null: not yet).
    email_verified_at = models.DateTimeField(null=True, blank=True)
    # Where alerts go; blank means the login email. A new address must be confirmed again.
    notification_email = models.EmailField(max_length=254, blank=True, default="")
    notification_email_verified_at = models.DateTimeField(null=True, blank=True)
    max_trackers = models.PositiveIntegerField(default=default_max_trackers)
    manual_scrapes_per_hour = models.PositiveIntegerField(default=default_manual_scrapes_per_hour)
    max_rules_per_tracker = models.PositiveIntegerField(default=default_max_rules_per_tracker)
    # Alert preferences, set by the user. An IANA zone name: quiet hours and the daily limit's
    # day are in it. Quiet hours (both or neither; start after end spans midnight): alerts
    # raised then wait and go out when they end. Null limit: no daily limit.
    timezone = models.CharField(max_length=64, default="UTC")
    quiet_hours_start = models.TimeField(null=True, blank=True)
    quiet_hours_end = models.TimeField(null=True, blank=True)
    max_alerts_per_day = models.PositiveIntegerField(null=True, blank=True)
    # The marketplace a bare ASIN is looked up on (a store code such as "amazon.de"), and the
    # language amounts are written in (emails, CSV; blank: English). Checked by the profile API.
    default_store = models.CharField(max_length=50, default="amazon.com")
    language = models.CharField(max_length=16, blank=True, default="")

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        db_table = "users"
        constraints = [
            # Case-insensitive uniqueness in the database, not only in the serializer.
            models.UniqueConstraint(Lower("email"), name="users_email_ci_unique"),
            models.CheckConstraint(
                condition=(Q(quiet_hours_start__isnull=True) & Q(quiet_hours_end__isnull=True))
                | (
                    Q(quiet_hours_start__isnull=False, quiet_hours_end__isnull=False)
                    & ~Q(quiet_hours_start=F("quiet_hours_end"))
                ),
                name="users_quiet_hours_both_or_neither",
            ),
            models.CheckConstraint(
                condition=Q(max_alerts_per_day__isnull=True) | Q(max_alerts_per_day__gte=1),
                name="users_max_alerts_per_day_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = normalize_email(self.email)

    @property
    def email_confirmed(self) -> bool:
        """Has the login address been confirmed by following an emailed link?"""
        return self.email_verified_at is not None

    @property
    def notification_email_confirmed(self) -> bool:
        """Is a separate notification address set *and* confirmed? False while it is blank."""
        return bool(self.notification_email) and self.notification_email_verified_at is not None

    def alert_address(self) -> str | None:
        """The address price alerts may be sent to right now, or None if there is none.

        Alert emails must never become a way to mail strangers, so with
        ``settings.ACCOUNTS_REQUIRE_EMAIL_VERIFICATION`` on (the default) only a confirmed
        address qualifies:

        1. ``notification_email`` if it is set and confirmed;
        2. otherwise the login ``email`` if it is confirmed (so while a newly entered notification
           address waits for its confirmation, alerts keep going to the confirmed login address);
        3. otherwise None: the caller must not send (and should record why).

        With the setting off, confirmation is not required: ``notification_email`` if set, else
        ``email``. An inactive account gets no alerts either way (None).
        """
        if not self.is_active:
            return None
        if not settings.ACCOUNTS_REQUIRE_EMAIL_VERIFICATION:
            return self.notification_email or self.email
        if self.notification_email_confirmed:
            return self.notification_email
        if self.email_confirmed:
            return self.email
        return None

    def zone(self) -> zoneinfo.ZoneInfo:
        """The user's time zone (UTC if the stored name is unknown to this system)."""
        try:
            return zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return zoneinfo.ZoneInfo("UTC")

    def local_day(self, moment: datetime) -> date:
        """The calendar day ``moment`` falls on in the user's time zone."""
        return moment.astimezone(self.zone()).date()

    def quiet_until(self, moment: datetime) -> datetime | None:
        """When the quiet hours that ``moment`` falls in end (aware UTC), or None outside them.

        Start inclusive, end exclusive, in the user's zone; a start after the end spans midnight
        (22:00-07:00). Across a daylight-saving change the end is the wall-clock time of that
        day (an end that does not exist that night is taken as the same offset as before).
        """
        start, end = self.quiet_hours_start, self.quiet_hours_end
        if start is None or end is None or start == end:
            return None
        zone = self.zone()
        local = moment.astimezone(zone)
        now = local.time().replace(tzinfo=None)
        quiet = start <= now < end if start < end else now >= start or now < end
        if not quiet:
            return None
        day = local.date() if now < end else local.date() + timedelta(days=1)
        return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


# The longest window a quota may use; older rows are deleted as new emails are counted.
MAX_QUOTA_WINDOW = timedelta(days=1)


class _QuotaFull(Exception):
    def __init__(self, wait_seconds: int) -> None:
        super().__init__(wait_seconds)
        self.wait_seconds = wait_seconds


class MailQuotaManager(models.Manager["MailQuota"]):
    def consume(self, *, scope: str, subject: str, limits: Sequence[tuple[int, int]], now: datetime) -> int | None:
        """Count one email of ``scope`` for ``subject`` in every window of ``limits``.

        ``limits`` are ``(count, window_seconds)`` pairs, e.g. ``[(3, 3600), (5, 86400)]``. Returns
        None when the email may go (and is counted), or the seconds until every full window has
        ended (and nothing is counted). Windows are fixed and aligned to the epoch (hours on the
        hour, days at midnight UTC), so the wait is exact and one row serves each window.
        Correct under concurrency on SQLite and PostgreSQL: each window is claimed with a
        conditional UPDATE (``count < limit``), and a refusal rolls back the windows already
        counted.
        """
        key = hashlib.sha256(f"{scope}:{subject}".encode()).hexdigest()
        epoch = int(now.timestamp())
        self.filter(window_start__lt=now - MAX_QUOTA_WINDOW).delete()
        try:
            with transaction.atomic():  # a savepoint: a full window undoes the others
                waits = []
                for limit, seconds in limits:
                    start = datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)
                    self.bulk_create(
                        [MailQuota(key=key, window_seconds=seconds, window_start=start)], ignore_conflicts=True
                    )
                    counted = self.filter(key=key, window_seconds=seconds, window_start=start, count__lt=limit).update(
                        count=F("count") + 1
                    )
                    if not counted:
                        waits.append(int((start + timedelta(seconds=seconds) - now).total_seconds()) + 1)
                if waits:
                    raise _QuotaFull(max(waits))
        except _QuotaFull as full:
            return full.wait_seconds
        return None


class MailQuota(models.Model):
    """How many emails of one kind went to one address (or for one account) in one fixed window.

    Confirmation links and password resets can be aimed at anyone's address; these counters
    keep a stranger from being flooded however many accounts or requests target them
    (``accounts.services``). The subject is stored hashed: no stranger's address is kept here.
    """

    key = models.CharField(max_length=64)  # sha256 of "<scope>:<address or user id>"
    window_seconds = models.PositiveIntegerField()
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    objects = MailQuotaManager()

    class Meta:
        db_table = "mail_quotas"
        constraints = [
            # One counter per window; its index also serves the conditional UPDATE.
            models.UniqueConstraint(
                fields=["key", "window_seconds", "window_start"], name="mail_quotas_one_per_window"
            ),
        ]
        indexes = [
            # Pruning: DELETE WHERE window_start < now - MAX_QUOTA_WINDOW.
            models.Index(fields=["window_start"], name="mail_quotas_window_idx"),
        ]

    def __str__(self) -> str:
        return (
            f"mail quota {self.key[:8]} {self.count} in {self.window_seconds}s from {self.window_start:%Y-%m-%d %H:%M}"
        )
