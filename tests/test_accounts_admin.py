"""The User admin works with email logins and exposes confirmation state and limits."""

from __future__ import annotations

import pytest

from accounts.models import User


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("root@example.com", is_staff=True, is_superuser=True))
    return client


def test_the_user_list_shows_and_searches_by_email(admin_client, alice, bob):
    response = admin_client.get("/admin/accounts/user/", {"q": "alice"})

    assert response.status_code == 200
    assert b"alice@example.com" in response.content
    assert b"bob@example.com" not in response.content


def test_an_admin_adds_a_user_by_email(admin_client):
    response = admin_client.post(
        "/admin/accounts/user/add/",
        {
            "email": "Carol@Example.com",
            "usable_password": "true",
            "password1": "correct-horse-battery-9",
            "password2": "correct-horse-battery-9",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    carol = User.objects.get(email="carol@example.com")
    assert carol.check_password("correct-horse-battery-9")


def test_an_admin_cannot_add_an_email_taken_in_another_case(admin_client, alice):
    response = admin_client.post(
        "/admin/accounts/user/add/",
        {"email": "ALICE@example.com", "usable_password": "false"},
    )

    assert response.status_code == 200
    assert "email" in response.context["adminform"].form.errors
    assert User.objects.filter(email__iexact="alice@example.com").count() == 1


def test_an_admin_edits_the_limits_and_confirmation(admin_client, make_user):
    alice = make_user("alice@example.com", email_verified_at=None)
    assert admin_client.get(f"/admin/accounts/user/{alice.pk}/change/").status_code == 200

    response = admin_client.post(
        f"/admin/accounts/user/{alice.pk}/change/",
        {
            "email": "alice@example.com",
            "email_verified_at_0": "2026-01-01",
            "email_verified_at_1": "10:00:00",
            "notification_email": "",
            "max_trackers": 5,
            "manual_scrapes_per_hour": 2,
            "is_active": "on",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    alice.refresh_from_db()
    assert (alice.max_trackers, alice.manual_scrapes_per_hour) == (5, 2)
    assert alice.email_confirmed
