"""The admin in a real headless Chromium: log in, filter the scrape runs, see the price chart; the
run list fits a 1400 px window and a run's page tells its story.

Needs Debian's ``chromium`` and ``chromium-driver`` packages (``/usr/bin/chromium``,
``/usr/bin/chromedriver``) and the ``selenium`` dev dependency; skipped without them. Nothing is
downloaded: the driver path is given, so Selenium Manager never runs. The app is served by
pytest-django's ``live_server`` on the loopback interface.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.tracking_factories import make_product, make_tracker, record, success
from tracking.models import RunStatus, ScrapeRun

if TYPE_CHECKING:
    from selenium.webdriver import Chrome

pytestmark = pytest.mark.default_db_only

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PASSWORD = "correct-horse-battery-9"
WAIT_SECONDS = 10

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (uv sync --dev)")
if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip(
        f"{CHROMIUM} or {CHROMEDRIVER} missing: apt-get install chromium chromium-driver", allow_module_level=True
    )

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS * 2)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Chrome, css: str):
    return WebDriverWait(driver, WAIT_SECONDS).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def log_in(live_server, browser, django_user_model) -> None:
    """Create a superuser and log in through the form, like a person."""
    django_user_model.objects.create_superuser("root@example.com", PASSWORD)
    browser.get(f"{live_server.url}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys("root@example.com")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for(browser, "#content-main .app-tracking")


def test_an_admin_logs_in_filters_blocked_runs_and_sees_the_price_chart(
    live_server, browser, store, alice, django_user_model
):
    charted = make_product(store, asin="B00BROWSER", title="Pour-over kettle")
    make_tracker(alice, charted, target="15.00")  # below every price: no alert, one target line
    for price in ("24.00", "22.50", "23.75"):
        record(charted, success(price))
    blocked = make_product(store, asin="B00BLOCKED", title="Blocked thing")
    ScrapeRun.objects.create(
        product=blocked, status=RunStatus.BLOCKED, error_kind="captcha", http_status=503, finished_at=charted.created_at
    )

    log_in(live_server, browser, django_user_model)

    # The run list, filtered to blocked runs.
    browser.get(f"{live_server.url}/admin/tracking/scraperun/?status__exact=BLOCKED")
    rows = [row.text for row in wait_for(browser, "#result_list").find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert len(rows) == 1
    assert "B00BLOCKED" in rows[0]
    assert "captcha" in rows[0]

    # The product page draws its history: one vertex per observation, and the target line.
    browser.get(f"{live_server.url}/admin/tracking/product/{charted.pk}/change/")
    polyline = wait_for(browser, "svg.price-chart polyline")
    assert len(polyline.get_attribute("points").split()) == 3
    assert polyline.is_displayed()
    targets = browser.find_elements(By.CSS_SELECTOR, "svg.price-chart line.target")
    assert len(targets) == 1
    assert "target 15.00 USD" in browser.find_element(By.CSS_SELECTOR, "svg.price-chart").text


def test_the_run_list_fits_a_1400_px_window_and_cuts_long_messages_short(
    live_server, browser, store, django_user_model
):
    log_in(live_server, browser, django_user_model)
    browser.set_window_size(1400, 1000)
    long_message = ("The page could not be parsed: " + "an unusually long explanation, " * 14).strip()
    product = make_product(store, asin="B00WIDEROW", title="A product title that goes on " * 10)
    for kind, trigger in (("service_unavailable", "initial"), ("redirect_refused", "scheduled"), ("", "manual")):
        ScrapeRun.objects.create(
            product=product,
            status=RunStatus.FAILED if kind else RunStatus.SUCCESS,
            error_kind=kind,
            http_status=503,
            duration_ms=123_456,
            trigger=trigger,
            rule="no_price:variant_not_selected",
            worker="a-rather-long-worker-host-name.internal.example:65535",
            message=long_message,
            finished_at=product.created_at,
        )

    browser.get(f"{live_server.url}/admin/tracking/scraperun/")
    wait_for(browser, "#result_list")

    page_width, viewport_width = browser.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert page_width <= viewport_width  # no horizontal scrollbar on the page
    results = browser.find_element(By.CSS_SELECTOR, "#changelist-form .results")
    assert browser.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth", results)
    headers = browser.find_elements(By.CSS_SELECTOR, "#result_list thead th")
    assert headers[-1].text.strip().lower() == "message"
    last_right_edge = browser.execute_script("return arguments[0].getBoundingClientRect().right", headers[-1])
    assert last_right_edge <= viewport_width
    # The message is cut short on screen; the whole of it is the tooltip.
    message = browser.find_element(By.CSS_SELECTOR, "#result_list td.field-message_excerpt .run-message")
    assert message.get_attribute("title") == long_message
    assert browser.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth", message)
    assert message.is_displayed()


def test_the_run_page_shows_the_url_the_times_to_the_second_the_worker_and_the_rule(
    live_server, browser, store, django_user_model, settings
):
    settings.AMAZON_BASE_URL = "https://www.amazon.com"
    log_in(live_server, browser, django_user_model)
    product = make_product(store, asin="B00RUNPAGE", title="Tea kettle")
    run = record(product, success("31.50", rule="core_price_display", http_status=200, bytes_received=180_000))
    ScrapeRun.objects.filter(pk=run.pk).update(worker="scraper-3.internal:4711")
    run.refresh_from_db()

    browser.get(f"{live_server.url}/admin/tracking/scraperun/{run.pk}/change/")
    content = wait_for(browser, "#content").text

    assert f"Run #{run.pk} of B00RUNPAGE: SUCCESS at {run.created_at:%Y-%m-%d %H:%M:%S} UTC" in content
    assert "https://www.amazon.com/dp/B00RUNPAGE" in content
    assert f"{run.finished_at:%Y-%m-%d %H:%M:%S} UTC" in content
    assert "scraper-3.internal:4711" in content
    assert "core_price_display" in content
    link = browser.find_element(By.PARTIAL_LINK_TEXT, "$31.50")
    assert link.get_attribute("href").endswith(f"/admin/tracking/pricepoint/{run.price_point.pk}/change/")
