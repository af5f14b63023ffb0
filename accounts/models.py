"""The user: email is the login (case-insensitive, unique), plus per-user limits."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
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
    REQUIRED_FIELDS: list[str] = []

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
