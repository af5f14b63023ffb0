"""Account endpoints under ``/api/auth/``: thin views over ``accounts.services``."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts import services
from accounts.serializers import (
    AtomicTokenRefreshSerializer,
    EmailConfirmedSerializer,
    EmailConfirmSerializer,
    EmailResendResultSerializer,
    MessageSerializer,
    PasswordChangeSerializer,
    PasswordResetConfirmSerializer,
    PasswordResetSerializer,
    ProfileSerializer,
    RefreshTokenSerializer,
    RegisteredUserSerializer,
    RegisterSerializer,
    TokenPairSerializer,
)
from pricetracker.api import request_user

TAG = "auth"
PASSWORD_RESET_REQUESTED = "If an account uses this address, we have emailed it a password reset token."  # noqa: S105 - a message, not a secret

INVALID_INPUT = OpenApiResponse(description="Invalid input: `{message, code, errors: {field: [...]}}`.")
UNAUTHORIZED = OpenApiResponse(description="Missing, invalid or expired credentials.")
THROTTLED = OpenApiResponse(description="Too many requests; retry after the `Retry-After` header.")
EMAIL_LIMIT = OpenApiResponse(
    description="`email_limit`: the address has had its share of confirmation emails; `email_change_limit`: "
    "you changed your notification email too often. `retry_after_seconds` (and `Retry-After`) say when to try again."
)


class PublicView(APIView):
    """An endpoint for anonymous clients: a stale ``Authorization`` header must not get in the way."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]


class RegisterView(PublicView):
    throttle_scope = "register"

    @extend_schema(
        tags=[TAG],
        summary="Create an account",
        description="Creates the account and emails a confirmation link to it. Signing in works right "
        "away; price alerts are sent only to a confirmed address.",
        request=RegisterSerializer,
        responses={201: RegisteredUserSerializer, 400: INVALID_INPUT, 429: THROTTLED},
    )
    def post(self, request: Request) -> Response:
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_register(**serializer.validated_data)
        return Response(RegisteredUserSerializer(user).data, status=status.HTTP_201_CREATED)


class TokenObtainView(TokenObtainPairView):
    """``{email, password}`` -> ``{access, refresh}``. Email is case-insensitive."""

    serializer_class = TokenObtainPairSerializer
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"

    @extend_schema(
        tags=[TAG],
        summary="Sign in",
        description="Wrong credentials and inactive accounts get the same 401.",
        responses={200: TokenPairSerializer, 400: INVALID_INPUT, 401: UNAUTHORIZED, 429: THROTTLED},
    )
    def post(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().post(request, *args, **kwargs)


class TokenRotateView(TokenRefreshView):
    """``{refresh}`` -> ``{access, refresh}``; the old refresh token works exactly once."""

    serializer_class = AtomicTokenRefreshSerializer

    @extend_schema(
        tags=[TAG],
        summary="Exchange a refresh token for a new pair",
        description="Rotation: the refresh token sent is revoked. Of concurrent requests with one "
        "token exactly one succeeds; reusing a rotated token is refused.",
        responses={200: TokenPairSerializer, 400: INVALID_INPUT, 401: UNAUTHORIZED, 429: THROTTLED},
    )
    def post(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().post(request, *args, **kwargs)


class LogoutView(APIView):
    @extend_schema(
        tags=[TAG],
        summary="Sign out",
        description="Revokes the refresh token. Access tokens expire on their own (minutes).",
        request=RefreshTokenSerializer,
        responses={204: None, 400: INVALID_INPUT, 401: UNAUTHORIZED},
    )
    def post(self, request: Request) -> Response:
        serializer = RefreshTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.user_logout(user=request_user(request), raw_refresh=serializer.validated_data["refresh"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    @extend_schema(tags=[TAG], summary="Your profile and limits", responses={200: ProfileSerializer, 401: UNAUTHORIZED})
    def get(self, request: Request) -> Response:
        return Response(ProfileSerializer(request.user).data)

    @extend_schema(
        tags=[TAG],
        summary="Change where alerts go, your default marketplace and language, quiet hours and limits",
        description="`notification_email`, `default_store` and `language` are writable. A new address is "
        "emailed a confirmation link; until it is confirmed alerts keep going to the confirmed login address. "
        "Changes per account and confirmation emails per address are limited (429, nothing changed). "
        "`default_store` is the marketplace a bare ASIN is added on; `language` formats amounts in emails. "
        "`timezone`, `quiet_hours` and `max_alerts_per_day` shape when alerts are sent.",
        request=ProfileSerializer,
        responses={200: ProfileSerializer, 400: INVALID_INPUT, 401: UNAUTHORIZED, 429: EMAIL_LIMIT},
    )
    def patch(self, request: Request) -> Response:
        serializer = ProfileSerializer(request.user, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = request_user(request)
        if "notification_email" in serializer.validated_data:
            user = services.user_update_notification_email(
                user=user, notification_email=serializer.validated_data["notification_email"]
            )
        preferences = {"timezone", "quiet_hours_start", "quiet_hours_end", "max_alerts_per_day"}
        if preferences & set(serializer.validated_data):
            user = services.user_update_alert_preferences(
                user=user,
                changes={
                    name: serializer.validated_data[name] for name in preferences & set(serializer.validated_data)
                },
            )
        if {"default_store", "language"} & set(serializer.validated_data):
            user = services.user_update_locale(
                user=user,
                default_store=serializer.validated_data.get("default_store"),
                language=serializer.validated_data.get("language"),
            )
        return Response(ProfileSerializer(user).data)


class EmailConfirmView(PublicView):
    """The link in a confirmation email: GET (clicked) or POST ``{token}`` (a client app)."""

    throttle_scope = "email_confirm"

    def _confirm(self, data: object) -> Response:
        serializer = EmailConfirmSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        confirmation = services.user_confirm_email(token=serializer.validated_data["token"])
        return Response({"email": confirmation.address, "kind": confirmation.kind.value})

    @extend_schema(
        tags=[TAG],
        summary="Confirm an email address (link)",
        description="The link in a confirmation email. Answers JSON.",
        parameters=[OpenApiParameter("token", OpenApiTypes.STR, OpenApiParameter.QUERY, required=True)],
        responses={200: EmailConfirmedSerializer, 400: INVALID_INPUT, 429: THROTTLED},
    )
    def get(self, request: Request) -> Response:
        return self._confirm(request.query_params)

    @extend_schema(
        tags=[TAG],
        summary="Confirm an email address",
        description="The token of a confirmation link, for client apps.",
        request=EmailConfirmSerializer,
        responses={200: EmailConfirmedSerializer, 400: INVALID_INPUT, 429: THROTTLED},
    )
    def post(self, request: Request) -> Response:
        return self._confirm(request.data)


class EmailResendView(APIView):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "email_confirm"

    @extend_schema(
        tags=[TAG],
        summary="Send new confirmation links",
        description="One for each of your addresses still awaiting confirmation; `sent_to` lists them. "
        "429 `email_limit` (nothing sent) when one of them has had its share of confirmation emails.",
        request=None,
        responses={200: EmailResendResultSerializer, 401: UNAUTHORIZED, 429: THROTTLED},
    )
    def post(self, request: Request) -> Response:
        return Response({"sent_to": services.user_resend_email_confirmations(user=request_user(request))})


class PasswordChangeView(APIView):
    # A stolen access token must not become an oracle for guessing the old password.
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "password_change"

    @extend_schema(
        tags=[TAG],
        summary="Change your password",
        description="Signs out every session (all refresh tokens are revoked) and returns a new pair for this client.",
        request=PasswordChangeSerializer,
        responses={200: TokenPairSerializer, 400: INVALID_INPUT, 401: UNAUTHORIZED, 429: THROTTLED},
    )
    def post(self, request: Request) -> Response:
        serializer = PasswordChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = request_user(request)
        services.user_change_password(user=user, **serializer.validated_data)
        return Response(services.user_issue_tokens(user=user))


class PasswordResetView(PublicView):
    throttle_scope = "password_reset"

    @extend_schema(
        tags=[TAG],
        summary="Ask for a password reset token by email",
        description="Answers the same whether or not the address has an account.",
        request=PasswordResetSerializer,
        responses={202: MessageSerializer, 400: INVALID_INPUT, 429: THROTTLED},
    )
    def post(self, request: Request) -> Response:
        serializer = PasswordResetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.user_request_password_reset(email=serializer.validated_data["email"])
        return Response({"message": PASSWORD_RESET_REQUESTED}, status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmView(PublicView):
    throttle_scope = "password_reset"

    @extend_schema(
        tags=[TAG],
        summary="Set a new password with an emailed token",
        description="Also signs out every session of the account.",
        request=PasswordResetConfirmSerializer,
        responses={204: None, 400: INVALID_INPUT, 429: THROTTLED},
    )
    def post(self, request: Request) -> Response:
        serializer = PasswordResetConfirmSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.user_reset_password(**serializer.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)
