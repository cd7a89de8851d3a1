"""What the page says about its data, in real headless Chromium: nothing yet (and what to start),
a warehouse that does not answer (and which one), and a new batch drawn without a reload.

The empty and unreachable dashboards are processes of their own, on a dataset nobody has
written to and on a port where no emulator listens; the live one is the session's seeded
dashboard, given one more poll.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from shared.settings import Settings
from tests.harness.dashboard_page import (
    PRICE_CHART,
    SeededDashboard,
    chart_series,
    dashboard_environment,
    dashboard_url,
    launch_dashboard,
    open_dashboard,
    wait_until_drawn,
    wait_until_serving,
)
from tests.harness.environment import offset_port
from tests.harness.processes import LocalStack, settings_from
from tests.harness.warehouse_seed import prepared_warehouse

EMPTY_DASHBOARD_PORT = offset_port(18201)
UNREACHABLE_DASHBOARD_PORT = offset_port(18202)
DEAD_EMULATOR_PORT = offset_port(18259)  # nothing listens here


@dataclass
class StateDashboards:
    empty_url: str
    empty_settings: Settings
    """A dataset nobody has made yet."""
    unreachable_url: str
    """Its emulator does not answer."""


@pytest.fixture(scope="module")
def state_dashboards(local_stack: LocalStack) -> Iterator[StateDashboards]:
    """Both dashboards, started side by side (each spends seconds importing)."""
    empty = dashboard_environment(f"dashboard_empty_{uuid.uuid4().hex[:8]}", EMPTY_DASHBOARD_PORT)
    unreachable = dashboard_environment(
        "dashboard_unreachable",
        UNREACHABLE_DASHBOARD_PORT,
        COINSTREAM_BIGQUERY_EMULATOR_URL=f"http://127.0.0.1:{DEAD_EMULATOR_PORT}",
    )
    processes = {
        "empty": (launch_dashboard("dashboard-empty", empty), empty),
        "unreachable": (launch_dashboard("dashboard-unreachable", unreachable), unreachable),
    }
    try:
        for process, environment in processes.values():
            wait_until_serving(process, environment)
        yield StateDashboards(
            empty_url=dashboard_url(empty),
            empty_settings=settings_from(empty),
            unreachable_url=dashboard_url(unreachable),
        )
    finally:
        for process, _ in processes.values():
            process.stop()


def test_an_empty_warehouse_says_why_and_what_to_start(
    page: Page, state_dashboards: StateDashboards
) -> None:
    page.goto(state_dashboards.empty_url)
    empty = page.locator("#empty")
    expect(empty).to_be_visible(timeout=20_000)
    expect(empty).to_contain_text("No data yet")
    expect(empty).to_contain_text("is the stream worker running? (`make run` starts it)")
    expect(page.locator("#content")).to_be_hidden()

    # The worker creates the tables and views: the page, without a reload, says they are empty.
    prepared_warehouse(state_dashboards.empty_settings)
    expect(empty).to_contain_text("has no asset or exchange rows", timeout=20_000)


def test_an_unreachable_warehouse_names_the_service_to_check(
    page: Page, state_dashboards: StateDashboards
) -> None:
    page.goto(state_dashboards.unreachable_url)
    problem = page.locator("#problem")
    expect(problem).to_be_visible(timeout=30_000)
    expect(problem).to_contain_text(
        f"the warehouse (BigQuery emulator at http://127.0.0.1:{DEAD_EMULATOR_PORT})"
    )
    expect(problem).to_contain_text("make run")
    expect(page.locator("#freshness")).to_contain_text("not updating")


def test_a_new_batch_is_drawn_without_a_reload(
    page: Page, seeded_dashboard: SeededDashboard
) -> None:
    open_dashboard(page, seeded_dashboard.url)
    wait_until_drawn(page, PRICE_CHART)
    page.evaluate("() => { window.loadedOnce = 'still the same page'; }")
    newest = max(series["last"] for series in chart_series(page, PRICE_CHART))
    freshness = page.locator("#freshness").get_attribute("data-newest")

    # The worker's next batch: a poll newer than every seeded one, processed just now.
    seeded_dashboard.polls.load(
        seeded_dashboard.client,
        seeded_dashboard.settings,
        [datetime.now(UTC) - timedelta(seconds=1)],
    )
    page.wait_for_function(
        """(newest) => window.coinstreamDashboard.charts['chart-asset-price'].data.datasets
            .some((d) => d.data.length && d.data[d.data.length - 1].x > newest)""",
        arg=newest,
        timeout=30_000,
    )
    assert page.evaluate("() => window.loadedOnce") == "still the same page"
    assert page.locator("#freshness").get_attribute("data-newest") != freshness
