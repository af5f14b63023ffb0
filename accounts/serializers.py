"""Request and response shapes of the account endpoints. Workflows live in ``accounts.services``."""

from __future__ import annotations

import re
from datetime import time
from typing import Any

from babel import Locale, UnknownLocaleError
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, serializers

from accounts import services
from accounts.hooks import store_codes
from accounts.jwt import RefreshRefused
from accounts.models import User, time_zone_names


class RegisterSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, trim_whitespace=False, style={"input_type": "password"})


class RegisteredUserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()


class AtomicTokenRefreshSerializer(serializers.Serializer):
    """A refresh token is exchanged for a new pair once; afterwards it is refused."""

    # Also named in SIMPLE_JWT["TOKEN_REFRESH_SERIALIZER"], so simplejwt's own refresh view is
    # safe too. services.refresh_token_rotate explains why simplejwt's rotation is not.

    refresh = serializers.CharField()
    access = serializers.CharField(read_only=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        try:
            return services.refresh_token_rotate(raw_refresh=attrs["refresh"])
        except RefreshRefused as exc:
            # A plain message (simplejwt's InvalidToken carries a nested dict).
            raise exceptions.AuthenticationFailed(str(exc), code="token_not_valid") from None


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class RefreshTokenSerializer(serializers.Serializer):
    refresh = serializers.CharField()


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "properties": {
            "start": {"type": "string", "pattern": r"^\d{2}:\d{2}$", "example": "22:00"},
            "end": {"type": "string", "pattern": r"^\d{2}:\d{2}$", "example": "07:00"},
        },
        "required": ["start", "end"],
        "description": "Alerts raised between start and end (your timezone; start after end spans midnight) "
        "wait and go out, one email per tracker, when they end. null: none.",
    }
)
class QuietHoursField(serializers.Field):
    """``{"start": "22:00", "end": "07:00"}`` or null, read from and written to the user's two columns."""

    default_error_messages = {
        # Doubled braces: DRF formats these messages with str.format.
        "invalid": 'Use {{"start": "HH:MM", "end": "HH:MM"}} (24-hour clock), or null for none.',
        "empty": "Start and end must differ (null switches quiet hours off).",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="*", required=False, allow_null=True, **kwargs)

    def to_representation(self, user: User) -> dict[str, str] | None:
        if user.quiet_hours_start is None or user.quiet_hours_end is None:
            return None
        return {"start": user.quiet_hours_start.strftime("%H:%M"), "end": user.quiet_hours_end.strftime("%H:%M")}

    def to_internal_value(self, data: object) -> dict[str, time | None]:
        if not isinstance(data, dict) or set(data) != {"start", "end"}:
            self.fail("invalid")
        times = [_clock_time(data["start"]), _clock_time(data["end"])]
        if None in times:
            self.fail("invalid")
        if times[0] == times[1]:
            self.fail("empty")
        return {"quiet_hours_start": times[0], "quiet_hours_end": times[1]}

    def validate_empty_values(self, data: object) -> tuple[bool, object]:
        if data is None:  # null: quiet hours off (both columns)
            return True, {"quiet_hours_start": None, "quiet_hours_end": None}
        return super().validate_empty_values(data)


def _clock_time(text: object) -> time | None:
    if not isinstance(text, str) or not re.fullmatch(r"\d{2}:\d{2}", text):
        return None
    hours, minutes = int(text[:2]), int(text[3:])
    return time(hours, minutes) if hours < 24 and minutes < 60 else None


class ProfileSerializer(serializers.ModelSerializer):
    """The signed-in user. ``notification_email``, ``default_store`` and ``language`` are
    writable; limits are set by admins."""

    email_confirmed = serializers.BooleanField(read_only=True)
    notification_email_confirmed = serializers.BooleanField(read_only=True)
    alert_email = serializers.SerializerMethodField(
        help_text="Where price alerts go right now; null while no address is confirmed."
    )
    quiet_hours = QuietHoursField()

    class Meta:
        model = User
        fields = [
            "id",
            "email",
            "notification_email",
            "notification_email_confirmed",
            "email_confirmed",
            "alert_email",
            "default_store",
            "language",
            "timezone",
            "quiet_hours",
            "max_alerts_per_day",
            "max_trackers",
            "manual_scrapes_per_hour",
            "max_rules_per_tracker",
            "date_joined",
        ]
        read_only_fields = [
            "id",
            "email",
            "max_trackers",
            "manual_scrapes_per_hour",
            "max_rules_per_tracker",
            "date_joined",
        ]
        extra_kwargs = {
            "notification_email": {
                "help_text": "Where alerts should go (blank: the login email). A new address gets a "
                "confirmation link and receives alerts only once confirmed."
            },
            "default_store": {
                "help_text": "The Amazon marketplace a bare ASIN is looked up on, e.g. amazon.de (default amazon.com)."
            },
            "language": {"help_text": "Language for amounts in emails and exports, e.g. de-DE or fr (blank: English)."},
            "timezone": {"help_text": "Your time zone, an IANA name such as Europe/Berlin (quiet hours, daily limit)."},
            "max_alerts_per_day": {
                "min_value": 1,
                "help_text": "At most this many alert emails a day (your timezone's day); null: no limit. "
                "Alerts past it are recorded as suppressed, not sent.",
            },
        }

    def get_alert_email(self, user: User) -> str | None:
        return user.alert_address()

    def validate_timezone(self, value: str) -> str:
        if value not in time_zone_names():
            raise serializers.ValidationError("Not a time zone we know; use an IANA name such as Europe/Berlin.")
        return value

    def validate_default_store(self, value: str) -> str:
        code = value.strip().lower()
        if code not in store_codes():
            raise serializers.ValidationError(
                f"Not an Amazon marketplace we track; use one of {', '.join(sorted(store_codes()))}."
            )
        return code

    def validate_language(self, value: str) -> str:
        """A language Babel knows, stored as a BCP 47 tag (``de-DE``); blank means English."""
        value = value.strip()
        if not value:
            return ""
        try:
            locale = Locale.parse(value.replace("_", "-"), sep="-")
        except (ValueError, UnknownLocaleError):
            raise serializers.ValidationError("Not a language we know; use a tag such as de-DE, fr or ja.") from None
        return "-".join(part for part in (locale.language, locale.script, locale.territory) if part)


class EmailConfirmSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=512)


class EmailConfirmedSerializer(serializers.Serializer):
    email = serializers.EmailField()
    # A plain string, not an enum: an enum component named after a field called "kind" would
    # collide with other apps' "kind" enums in the OpenAPI schema.
    kind = serializers.CharField(help_text='"login" or "notification": which of your addresses was confirmed.')


class EmailResendResultSerializer(serializers.Serializer):
    sent_to = serializers.ListField(child=serializers.EmailField())


class PasswordChangeSerializer(serializers.Serializer):
    old_password = serializers.CharField(write_only=True, trim_whitespace=False)
    new_password = serializers.CharField(write_only=True, trim_whitespace=False)


class PasswordResetSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class PasswordResetConfirmSerializer(serializers.Serializer):
    uid = serializers.CharField(max_length=64)
    token = serializers.CharField(max_length=128)
    new_password = serializers.CharField(write_only=True, trim_whitespace=False)


class MessageSerializer(serializers.Serializer):
    message = serializers.CharField()
