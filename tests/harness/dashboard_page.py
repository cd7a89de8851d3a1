"""The dashboard as a process, and its page as headless Chromium draws it, for the browser tests.

The page keeps what it drew in ``window.coinstreamDashboard`` (its charts and state); these
helpers read it there, so a test checks the data each chart holds, not pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.cloud import bigquery
from playwright.sync_api import Page

from shared.settings import PROJECT_ROOT, Settings
from tests.harness.environment import TEST_ENVIRONMENT, TEST_STATE_DIR
from tests.harness.processes import ManagedProcess, launch, wait_until_answering
from tests.harness.warehouse_seed import SimulatedPolls

DOCS = PROJECT_ROOT / "docs"
"""Where the browser tests write the screenshots docs/dashboard.md shows."""
LOG_DIR = TEST_STATE_DIR / "logs"
PRICE_CHART = "chart-asset-price"
REFRESH_SECONDS = 2
"""How often the tests' dashboards ask whether a newer row has landed
(``COINSTREAM_STREAM_TRIGGER_SECONDS``)."""


def dashboard_environment(dataset: str, port: int, **overrides: str) -> dict[str, str]:
    """The settings of a dashboard on ``port`` reading ``dataset`` on the session's emulator."""
    return {
        **TEST_ENVIRONMENT,
        "COINSTREAM_BIGQUERY_DATASET": dataset,
        "COINSTREAM_DASHBOARD_PORT": str(port),
        "COINSTREAM_STREAM_TRIGGER_SECONDS": str(REFRESH_SECONDS),
        **overrides,
    }


def dashboard_url(environment: dict[str, str]) -> str:
    """The page of the dashboard started with ``environment``."""
    return f"http://127.0.0.1:{environment['COINSTREAM_DASHBOARD_PORT']}/"


def launch_dashboard(name: str, environment: dict[str, str]) -> ManagedProcess:
    """``python -m services.dashboard`` with ``environment``, started but not yet answering:
    its imports take seconds, which the caller may spend seeding (``wait_until_serving``)."""
    return launch(name, "services.dashboard", environment, LOG_DIR)


def wait_until_serving(process: ManagedProcess, environment: dict[str, str]) -> None:
    wait_until_answering(process, dashboard_url(environment) + "healthz")


@dataclass
class SeededDashboard:
    """A dashboard process on a dataset seeded with simulated polls."""

    url: str
    settings: Settings
    client: bigquery.Client
    polls: SimulatedPolls
    """The market the polls came from; a test polls it again for a newer batch."""


def chart_series(page: Page, chart: str) -> list[dict[str, Any]]:
    """Label, point count and first and last x of each dataset the chart draws."""
    result: list[dict[str, Any]] = page.evaluate(
        """(chart) => (window.coinstreamDashboard.charts[chart]?.data.datasets || []).map(
            (d) => ({label: d.label, points: d.data.length,
                     first: d.data.length ? d.data[0].x : null,
                     last: d.data.length ? d.data[d.data.length - 1].x : null}))""",
        chart,
    )
    return result


def wait_until_drawn(page: Page, chart: str, least_points: int = 1, timeout: float = 60) -> None:
    """Until every dataset of ``chart`` has at least ``least_points`` points."""
    page.wait_for_function(
        """([chart, least]) => {
            const drawn = window.coinstreamDashboard.charts[chart];
            return drawn && drawn.data.datasets.length > 0
                && drawn.data.datasets.every((d) => d.data.length >= least);
        }""",
        arg=[chart, least_points],
        timeout=timeout * 1000,
    )


def open_dashboard(page: Page, url: str) -> None:
    """Go to ``url`` and wait for the page's first load of data."""
    page.goto(url)
    page.wait_for_function("Number(document.body.dataset.loads || 0) >= 1", timeout=60_000)
