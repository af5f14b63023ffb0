"""Admin for the email-login User: confirmation state and per-user limits at a glance."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from accounts.models import User, normalize_email
from accounts.services import EMAIL_TAKEN


def _clean_unique_email(form: forms.ModelForm) -> str:
    """Normalise the address and refuse one taken in another case (the DB would too, less kindly)."""
    email = normalize_email(form.cleaned_data["email"])
    taken = User.objects.filter(email__iexact=email).exclude(pk=form.instance.pk)
    if taken.exists():
        raise forms.ValidationError(EMAIL_TAKEN, code="unique")
    return email


class UserAddForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)
        field_classes: dict = {}

    def clean_email(self) -> str:
        return _clean_unique_email(self)


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"
        field_classes: dict = {}

    def clean_email(self) -> str:
        return _clean_unique_email(self)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserEditForm
    add_form = UserAddForm
    list_display = (
        "email",
        "is_staff",
        "is_active",
        "email_confirmed",
        "notification_email",
        "notification_email_confirmed",
        "max_trackers",
        "manual_scrapes_per_hour",
        "date_joined",
    )
    list_filter = ("is_staff", "is_superuser", "is_active")
    search_fields = ("email", "notification_email")
    ordering = ("email",)
    readonly_fields = ("last_login", "date_joined")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (
            "Email confirmation",
            {
                "description": "Alerts go only to confirmed addresses (ACCOUNTS_REQUIRE_EMAIL_VERIFICATION). "
                "Set a timestamp to confirm an address by hand; clear it to ask for a new confirmation.",
                "fields": ("email_verified_at", "notification_email", "notification_email_verified_at"),
            },
        ),
        ("Limits", {"fields": ("max_trackers", "manual_scrapes_per_hour")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "usable_password", "password1", "password2"),
            },
        ),
    )

    @admin.display(boolean=True, description="email confirmed", ordering="email_verified_at")
    def email_confirmed(self, user: User) -> bool:
        return user.email_confirmed

    @admin.display(boolean=True, description="notification email confirmed")
    def notification_email_confirmed(self, user: User) -> bool:
        return user.notification_email_confirmed
