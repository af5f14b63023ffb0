"""Issue 11, item 6: the Django admin login is locked after repeated wrong passwords (django-axes).

Before: 40 wrong passwords in a row, then the right one logged in. Now a username + client
address combination is locked after ``AXES_FAILURE_LIMIT`` failures for ``AXES_COOLOFF_TIME``;
the right password is refused meanwhile. The API's token endpoint keeps its own throttle and
is never locked by axes.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "correct-horse-battery-9"


@pytest.fixture
def root(make_user):
    return make_user("root@example.com", PASSWORD, is_staff=True, is_superuser=True)


def admin_login(password: str, *, username: str = "root@example.com", address: str = "203.0.113.5"):
    return Client(REMOTE_ADDR=address).post(LOGIN, {"username": username, "password": password})


def logged_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


def fail_until_locked(settings, **kwargs) -> None:
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        assert admin_login(f"wrong-{attempt}", **kwargs).status_code in (200, 429)


def test_the_right_password_logs_in(root):
    assert logged_in(admin_login(PASSWORD))


def test_many_wrong_passwords_lock_the_admin_login_even_for_the_right_one(root):
    for attempt in range(40):  # what the attacker tried
        admin_login(f"wrong-{attempt}")

    response = admin_login(PASSWORD)

    assert response.status_code == 429
    assert not logged_in(response)
    assert "Try again in" in response.content.decode()


def test_the_lock_is_counted_however_the_address_is_written(root, settings):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        admin_login(f"wrong-{attempt}", username="ROOT@example.com" if attempt % 2 else "root@example.com")

    assert admin_login(PASSWORD, username="Root@Example.com").status_code == 429


def test_the_lock_ends_after_the_cool_off(root, settings):
    fail_until_locked(settings)
    assert admin_login(PASSWORD).status_code == 429

    with time_machine.travel(timezone.now() + settings.AXES_COOLOFF_TIME + timedelta(seconds=1)):
        assert logged_in(admin_login(PASSWORD))


def test_an_operator_can_lift_the_lock(root, settings):
    fail_until_locked(settings)

    call_command("axes_reset_username", "root@example.com")

    assert logged_in(admin_login(PASSWORD))


def test_the_lock_is_per_username_and_client_address(root, settings, make_user):
    make_user("ops@example.com", PASSWORD, is_staff=True, is_superuser=True)
    fail_until_locked(settings)

    # The same account from another address, and another account from the same address.
    assert logged_in(admin_login(PASSWORD, address="198.51.100.9"))
    assert logged_in(admin_login(PASSWORD, username="ops@example.com"))


def test_a_forged_forwarded_for_header_does_not_escape_the_lock(root, settings):
    fail_until_locked(settings)

    response = Client(REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR="192.0.2.77").post(
        LOGIN, {"username": "root@example.com", "password": PASSWORD}
    )

    assert response.status_code == 429


def test_the_api_token_endpoint_is_not_locked_by_the_admin_protection(api_client, root, settings):
    for attempt in range(settings.AXES_FAILURE_LIMIT + 3):
        response = api_client.post(
            "/api/auth/token/", {"email": "root@example.com", "password": f"wrong-{attempt}"}, format="json"
        )
        assert response.status_code == 401

    response = api_client.post("/api/auth/token/", {"email": "root@example.com", "password": PASSWORD}, format="json")

    assert response.status_code == 200
    assert "access" in response.json()


def test_the_admin_protection_is_configured(settings):
    assert "axes" in settings.INSTALLED_APPS
    assert settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert settings.AXES_COOLOFF_TIME
