"""The exchanges view in real headless Chromium, on the session's seeded dashboard: share of
total volume over time and its latest split, volume, rank and the table. Writes the exchanges
screenshot docs/dashboard.md shows.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.harness.dashboard_page import (
    DOCS,
    SeededDashboard,
    chart_series,
    open_dashboard,
    wait_until_drawn,
)


def test_exchange_charts_show_volume_share_over_time_and_its_split(
    page: Page, seeded_dashboard: SeededDashboard
) -> None:
    open_dashboard(page, seeded_dashboard.url + "#exchanges")
    expect(page.locator("#view-exchanges")).to_be_visible()
    expect(page.locator("#view-assets")).to_be_hidden()
    wait_until_drawn(page, "chart-exchange-share", least_points=5, timeout=60)
    for chart in ("chart-exchange-share", "chart-exchange-volume", "chart-exchange-rank"):
        drawn = chart_series(page, chart)
        assert len(drawn) == 10 and all(series["points"] >= 5 for series in drawn), chart
    split = page.evaluate(
        """() => { const c = window.coinstreamDashboard.charts['chart-exchange-split'];
                   return {labels: c.data.labels, total: c.data.datasets[0].data
                           .reduce((a, b) => a + b, 0)}; }"""
    )
    assert len(split["labels"]) == 11 and split["labels"][-1].endswith("others")
    assert split["total"] == pytest.approx(100, abs=0.5)  # shares of one snapshot
    assert page.locator("#exchange-table tbody tr").count() >= 30  # 40 simulated exchanges

    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "dashboard-exchanges.png"), full_page=True)
