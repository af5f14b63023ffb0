"""Request and response shapes of the account endpoints. Workflows live in ``accounts.services``."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, serializers
from rest_framework_simplejwt.exceptions import TokenError

from accounts import services
from accounts.models import User


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
        except TokenError as exc:
            # A plain message (simplejwt's InvalidToken carries a nested dict).
            raise exceptions.AuthenticationFailed(str(exc), code="token_not_valid") from None


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class RefreshTokenSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class ProfileSerializer(serializers.ModelSerializer):
    """The signed-in user. Only ``notification_email`` is writable; limits are set by admins."""

    email_confirmed = serializers.BooleanField(read_only=True)
    notification_email_confirmed = serializers.BooleanField(read_only=True)
    alert_email = serializers.SerializerMethodField(
        help_text="Where price alerts go right now; null while no address is confirmed."
    )

    class Meta:
        model = User
        fields = [
            "id",
            "email",
            "notification_email",
            "notification_email_confirmed",
            "email_confirmed",
            "alert_email",
            "max_trackers",
            "manual_scrapes_per_hour",
            "date_joined",
        ]
        read_only_fields = ["id", "email", "max_trackers", "manual_scrapes_per_hour", "date_joined"]
        extra_kwargs = {
            "notification_email": {
                "help_text": "Where alerts should go (blank: the login email). A new address gets a "
                "confirmation link and receives alerts only once confirmed."
            }
        }

    def get_alert_email(self, user: User) -> str | None:
        return user.alert_address()


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
