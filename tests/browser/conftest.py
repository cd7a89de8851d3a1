"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, a page that fails its
test on any script error or request beyond our services, and one dashboard, shared by the
session, on a warehouse seeded with simulated polls (``tests.harness.warehouse_seed``).

Tests that only read the seeded dashboard share it (it idles between them); a test that adds
rows adds them newer than every seeded one, or older than the range the others look at, so no
test depends on whether another ran before it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.harness.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.harness.dashboard_page import (
    SeededDashboard,
    dashboard_environment,
    dashboard_url,
    launch_dashboard,
    wait_until_serving,
)
from tests.harness.environment import offset_port
from tests.harness.processes import LocalStack, settings_from
from tests.harness.warehouse_seed import SimulatedPolls, prepared_warehouse

SEEDED_DASHBOARD_PORT = offset_port(18200)
SEEDED_POLLS = 12
POLL_SPACING = timedelta(seconds=30)
"""Twelve polls half a minute apart: each its own point on the last hour's charts (a bucket
there is about 7 s), ending half a minute before the tests start."""


@pytest.fixture(scope="session")
def seeded_dashboard(local_stack: LocalStack) -> Iterator[SeededDashboard]:
    environment = dashboard_environment(
        f"dashboard_seeded_{uuid.uuid4().hex[:8]}", SEEDED_DASHBOARD_PORT
    )
    process = launch_dashboard("dashboard-seeded", environment)
    try:
        # The dashboard reads nothing until asked, so the seeds load while it starts.
        settings = settings_from(environment)
        client = prepared_warehouse(settings)
        now = datetime.now(UTC)
        times = [now - POLL_SPACING * (SEEDED_POLLS - index) for index in range(SEEDED_POLLS)]
        polls = SimulatedPolls(times[0])
        polls.load(client, settings, times)
        wait_until_serving(process, environment)
        yield SeededDashboard(
            url=dashboard_url(environment), settings=settings, client=client, polls=polls
        )
    finally:
        process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per module: Playwright's sync API must not outlive the module into tests
    that run an asyncio loop of their own."""
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}; run `make setup` (it installs Debian's chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    # Every request the page makes stays on this machine, at our own services.
    outside: list[str] = []
    opened.on(
        "request",
        lambda request: (
            None
            if request.url.startswith(("http://127.0.0.1:", "data:"))
            else outside.append(request.url)
        ),
    )
    yield opened
    context.close()
    assert errors == [], f"the page raised: {errors}"
    assert outside == [], f"the page reached outside our services: {outside}"
