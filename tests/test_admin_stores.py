"""The store policy admin: limits edited, the circuit breaker opened or closed by hand."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from scraping.models import Store

CHANGELIST = "/admin/scraping/store/"


def test_open_breaker_pauses_the_store_and_says_who_did_it(admin_client, store):
    before = timezone.now()

    response = admin_client.post(CHANGELIST, {"action": "open_breaker", "_selected_action": [store.pk]}, follow=True)

    assert response.status_code == 200
    store.refresh_from_db()
    assert store.breaker_state == Store.BreakerState.OPEN
    assert before <= store.breaker_opened_at <= timezone.now()
    assert store.breaker_reason == "opened by admin@example.com in the admin"
    assert "Circuit breaker opened for 1 store(s)." in [str(m) for m in response.context["messages"]]


def test_close_breaker_resumes_scraping_and_keeps_when_it_last_opened(admin_client, store):
    opened_at = timezone.now() - timedelta(minutes=3)
    Store.objects.filter(pk=store.pk).update(
        breaker_state=Store.BreakerState.HALF_OPEN, breaker_opened_at=opened_at, breaker_reason="5 blocked"
    )

    admin_client.post(CHANGELIST, {"action": "close_breaker", "_selected_action": [store.pk]})

    store.refresh_from_db()
    assert store.breaker_state == Store.BreakerState.CLOSED
    assert store.breaker_opened_at == opened_at
    assert store.breaker_reason == "closed by admin@example.com in the admin"


def test_the_store_page_explains_the_breaker_and_shows_its_state_read_only(admin_client, store):
    Store.objects.filter(pk=store.pk).update(
        breaker_state=Store.BreakerState.OPEN, breaker_reason="7 blocked responses"
    )

    page = admin_client.get(f"{CHANGELIST}{store.pk}/change/")

    assert page.status_code == 200
    content = page.content.decode()
    assert "Open (paused after blocks)" in content
    assert "7 blocked responses" in content
    assert 'name="breaker_state"' not in content
    assert 'name="requests_per_minute"' in content
    assert "Half-open: one probe request decides" in content
    assert "across all workers, clusters and hosts" in content


def test_the_store_list_shows_the_breaker_and_the_next_request_slot(admin_client, store):
    slot = timezone.now() + timedelta(seconds=30)
    Store.objects.filter(pk=store.pk).update(next_request_at=slot, breaker_reason="probe succeeded")

    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    assert b"Closed (scraping)" in response.content
    assert b"probe succeeded" in response.content


def test_the_plausible_price_range_is_editable(admin_client, store):
    page = admin_client.get(f"/admin/scraping/store/{store.pk}/change/")
    assert b'name="min_plausible_price"' in page.content
    assert b'name="max_plausible_price"' in page.content


def test_unticking_enabled_on_the_store_list_pauses_the_store_and_writes_nothing_else(admin_client, store):
    opened_at = timezone.now() - timedelta(minutes=1)
    Store.objects.filter(pk=store.pk).update(
        breaker_state=Store.BreakerState.OPEN, breaker_opened_at=opened_at, breaker_reason="5 blocked"
    )

    response = admin_client.post(
        CHANGELIST,
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": str(store.pk),
            "_save": "Save",
        },
    )

    assert response.status_code == 302
    store.refresh_from_db()
    assert not store.enabled
    assert (store.breaker_state, store.breaker_opened_at, store.breaker_reason) == (
        Store.BreakerState.OPEN,
        opened_at,
        "5 blocked",
    )


def test_an_admin_adds_a_store_with_its_policy(admin_client, store):
    page = admin_client.get(f"{CHANGELIST}add/")
    fields = page.context["adminform"].form.fields
    data = {name: field.initial() if callable(field.initial) else field.initial for name, field in fields.items()}
    data.update(code="example.test", name="Example", enabled="on", min_interval_minutes=45)

    response = admin_client.post(f"{CHANGELIST}add/", data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    added = Store.objects.get(code="example.test")
    assert (added.name, added.min_interval_minutes, added.breaker_state) == ("Example", 45, Store.BreakerState.CLOSED)
