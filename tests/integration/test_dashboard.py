"""The dashboard at `/` in a real headless Chromium (Debian's `chromium`, driven by
Playwright): a tenant signs in with the demo key, creates a container, watches it
run, stops it and reads its logs; the operator sees the fleet. A screenshot of each
view goes to build/screenshots/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from devstack.processes import REPO
from tests.fixtures.live import LiveCorral

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = REPO / "build" / "screenshots"
# Each wait for a state the page reaches through the API and a worker.
STATE_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"the dashboard tests need Debian's chromium at {CHROMIUM} (`make deps`)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console", lambda msg: errors.append(msg.text) if _unexpected(msg.type, msg.text) else None
    )
    try:
        yield page
        assert not errors, errors  # no script error, no CSP violation
    finally:
        context.close()


def _unexpected(kind: str, text: str) -> bool:
    """A console error other than the 401 the sign-in probe gets (the page asks the
    tenant API first: a 401 there means an operator key, or a wrong one)."""
    return kind == "error" and "status of 401" not in text


def sign_in(page: Page, url: str, key: str) -> None:
    page.goto(url + "/")
    page.get_by_test_id("key").fill(key)
    page.get_by_test_id("sign-in").click()


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_tenant_creates_runs_stops_and_reads_logs(page: Page, live_corral: LiveCorral) -> None:
    sign_in(page, live_corral.url, live_corral.demo.api_key)
    expect(page.get_by_test_id("who")).to_contain_text("cluster demo")

    page.get_by_test_id("create-name").fill("from-browser")
    # the demo cluster allows two eggs (busybox and http): the form offers both
    egg_choice = page.get_by_test_id("create-egg")
    expect(egg_choice.locator("option")).to_have_count(2)
    egg_choice.select_option(live_corral.demo.egg_id)
    page.get_by_test_id("create").click()
    row = page.locator("tr[data-container='from-browser']")
    expect(row.get_by_test_id("status")).to_have_text("running", timeout=STATE_TIMEOUT_MS)

    row.locator("button[data-action='logs']").click()
    expect(page.get_by_test_id("logs")).to_contain_text(
        "hello from a Corral demo container", timeout=STATE_TIMEOUT_MS
    )
    expect(page.get_by_test_id("tenant-operations")).to_contain_text("provision")
    screenshot(page, "tenant")

    row.locator("button[data-action='stop']").click()
    expect(row.get_by_test_id("status")).to_have_text("stopped", timeout=STATE_TIMEOUT_MS)
    expect(row.locator("button[data-action='start']")).to_be_enabled(timeout=STATE_TIMEOUT_MS)

    row.locator("button[data-action='resize']").click()
    resize = row.get_by_test_id("resize-form")
    resize.locator("input[name='cpu_cores']").fill("0.25")
    resize.locator("button[type='submit']").click()
    expect(row.get_by_test_id("resources")).to_have_text("0.25 cores · 64 MB")
    expect(row.locator("button[data-action='start']")).to_be_enabled(timeout=STATE_TIMEOUT_MS)
    # The key lives in this tab's session storage only, never in a cookie.
    assert page.evaluate("sessionStorage.getItem('corral.key')") == live_corral.demo.api_key
    assert page.context.cookies() == []


def test_a_wrong_key_is_told_and_kept_out(page: Page, live_corral: LiveCorral) -> None:
    sign_in(page, live_corral.url, "ck_not_a_key")
    expect(page.get_by_test_id("message")).to_contain_text("unauthorized")
    expect(page.locator("#tenant")).to_be_hidden()
    expect(page.locator("#operator")).to_be_hidden()


def test_operator_sees_the_fleet_and_drains_a_host(page: Page, live_corral: LiveCorral) -> None:
    sign_in(page, live_corral.url, live_corral.operator_key)
    expect(page.get_by_test_id("who")).to_contain_text("operator")
    host = page.locator("tr[data-host='local']")
    expect(host.get_by_test_id("status")).to_have_text("ready", timeout=STATE_TIMEOUT_MS)
    expect(page.locator("tr[data-cluster='demo']")).to_be_visible()
    screenshot(page, "operator")

    host.locator("button[data-action='drain']").click()
    expect(host.get_by_test_id("status")).to_have_text("draining")
    host.locator("button[data-action='undrain']").click()
    expect(host.get_by_test_id("status")).to_have_text("ready")
