"""The user: email is the login (case-insensitive, unique), plus per-user limits; mail quotas."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models, transaction
from django.db.models import F
from django.db.models.functions import Lower
from django.utils import timezone


def default_max_trackers() -> int:
    """Deployment default for a new user's active-tracker limit (``USER_MAX_TRACKERS``)."""
    return settings.USER_MAX_TRACKERS


def default_manual_scrapes_per_hour() -> int:
    """Deployment default for a new user's manual scrape limit (``USER_MANUAL_SCRAPES_PER_HOUR``)."""
    return settings.USER_MANUAL_SCRAPES_PER_HOUR


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

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        db_table = "users"
        constraints = [
            # Case-insensitive uniqueness in the database, not only in the serializer.
            models.UniqueConstraint(Lower("email"), name="users_email_ci_unique"),
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
