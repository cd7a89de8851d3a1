"""The assets view in real headless Chromium, on the session's seeded dashboard: the top ten's
charts and the sortable table, picking a coin and a range, and backfilled history drawn before
the live snapshots. Writes the assets and history screenshots docs/dashboard.md shows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.cloud import bigquery
from playwright.sync_api import Page, expect

from shared.schemas import ASSETS
from shared.warehouse import table_id
from tests.harness.asset_history import load_history, walk_back
from tests.harness.dashboard_page import (
    DOCS,
    PRICE_CHART,
    SeededDashboard,
    chart_series,
    open_dashboard,
    wait_until_drawn,
)
from tests.harness.warehouse_seed import load_rows, worker_row

MONTH_SECONDS = 30 * 86400


def test_asset_charts_draw_the_top_ten_and_the_table_sorts(
    page: Page, seeded_dashboard: SeededDashboard
) -> None:
    open_dashboard(page, seeded_dashboard.url)
    expect(page.locator("#simulated-banner")).to_be_visible()
    expect(page.locator("#simulated-banner")).to_contain_text("CoinCap simulator")
    # A few batches, so that the screenshot shows lines rather than dots.
    wait_until_drawn(page, PRICE_CHART, least_points=5, timeout=60)

    rows = page.locator("#asset-table tbody tr")
    assert rows.count() >= 100  # the simulator lists 165 assets
    top_ten = [rows.nth(i).get_attribute("data-id") for i in range(10)]
    drawn = chart_series(page, PRICE_CHART)
    assert len(drawn) == 10
    symbols = page.evaluate(
        "(ids) => ids.map((id) => window.coinstreamDashboard.state.latest.assets"
        ".find((a) => a.id === id).symbol)",
        top_ten,
    )
    assert [series["label"] for series in drawn] == symbols
    for chart in ("chart-asset-market-cap", "chart-asset-rank"):
        assert all(series["points"] >= 5 for series in chart_series(page, chart)), chart
    assert chart_series(page, "chart-asset-supply"), "no top-ten coin has a max supply"
    expect(page.locator("#freshness")).to_contain_text("data last updated")

    page.locator("#asset-table th[data-key='price_usd']").click()
    expect(page.locator("#asset-table th[data-key='price_usd']")).to_have_attribute(
        "aria-sort", "descending"
    )
    prices = page.evaluate(
        "() => window.coinstreamDashboard.state.latest.assets.map((a) => a.price_usd)"
    )
    first_id = rows.nth(0).get_attribute("data-id")
    top_price = page.evaluate(
        "(id) => window.coinstreamDashboard.state.latest.assets.find((a) => a.id === id).price_usd",
        first_id,
    )
    assert top_price == max(price for price in prices if price is not None)
    page.locator("#asset-table th[data-key='rank']").click()  # back to rank order

    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "dashboard-assets.png"), full_page=True)


def load_old_snapshots(seeded: SeededDashboard, asset_id: str, at: datetime) -> None:
    """Three snapshots of one asset a minute apart from ``at``, as the worker wrote them then."""
    [record] = [record for record in seeded.polls.market.assets if record["id"] == asset_id]
    rows = [
        worker_row(
            ASSETS,
            record,
            source_timestamp=at + timedelta(minutes=step),
            processed_at=at + timedelta(minutes=step, seconds=2),
        )
        for step in range(3)
    ]
    load_rows(seeded.client, seeded.settings, ASSETS, rows)


def test_picking_a_coin_and_a_range_changes_what_is_drawn(
    page: Page, seeded_dashboard: SeededDashboard
) -> None:
    # Older snapshots of Dogecoin, three hours back: only a range that reaches them draws them.
    old = datetime.now(UTC) - timedelta(hours=3)
    load_old_snapshots(seeded_dashboard, "dogecoin", old)
    open_dashboard(page, seeded_dashboard.url)

    page.locator("#asset-picker summary").click()
    page.locator("#asset-picker [data-action='none']").click()
    page.locator("#asset-picker .picker-filter").fill("doge")
    page.locator("#asset-picker input[value='dogecoin']").check()
    page.wait_for_function(
        """() => {
            const sets = window.coinstreamDashboard.charts['chart-asset-price'].data.datasets;
            return sets.length === 1 && sets[0].label === 'DOGE' && sets[0].data.length > 0;
        }"""
    )
    expect(page.locator("#asset-picker .picked-count")).to_have_text("1")
    last_hour = chart_series(page, PRICE_CHART)[0]
    assert last_hour["first"] > (old + timedelta(hours=2)).timestamp() * 1000

    page.select_option("#range", "21600")  # last 6 hours
    # A snapshot, not backfilled history (which another test may have loaded), reaches back.
    page.wait_for_function(
        """(before) => {
            const sets = window.coinstreamDashboard.charts['chart-asset-price'].data.datasets;
            return sets.length === 1
                && sets[0].data.some((point) => !point.history && point.x < before);
        }""",
        arg=(old + timedelta(minutes=1)).timestamp() * 1000,
    )


def test_history_is_drawn_before_live_data_with_a_line_where_it_begins(
    page: Page, seeded_dashboard: SeededDashboard
) -> None:
    open_dashboard(page, seeded_dashboard.url)
    page.select_option("#range", str(MONTH_SECONDS))
    # No history yet: the range reaches before the snapshots, and the page says what fills it.
    note = page.locator("#history-note")
    expect(note).to_contain_text("coinstream backfill --top 10", timeout=30_000)
    expect(page.locator("#history-legend")).to_be_hidden()

    # A month of hourly history for the top ten, ending an hour before the first snapshot.
    top_ten = page.evaluate(
        "() => window.coinstreamDashboard.state.latest.assets.slice(0, 10)"
        ".map((a) => [a.id, a.price_usd, a.supply])"
    )
    client, settings = seeded_dashboard.client, seeded_dashboard.settings
    # Where live data begins for them: the first snapshot of any of the ten.
    first_snapshot = next(
        iter(
            client.query(
                f"SELECT MIN(source_timestamp) AS t FROM `{table_id(settings, ASSETS)}` "
                "WHERE id IN UNNEST(@ids)",
                job_config=bigquery.QueryJobConfig(
                    query_parameters=[
                        bigquery.ArrayQueryParameter("ids", "STRING", [row[0] for row in top_ten])
                    ]
                ),
            ).result()
        )
    )["t"]
    until = first_snapshot - timedelta(hours=1)
    rows = [
        row
        for asset_id, price, supply in top_ten
        for row in walk_back(asset_id, price, supply or 1e6, until, hours=30 * 24)
    ]
    load_history(client, settings, rows)

    page.reload()
    page.wait_for_function("Number(document.body.dataset.loads || 0) >= 1", timeout=60_000)
    page.select_option("#range", str(MONTH_SECONDS))
    page.wait_for_function(
        "() => window.coinstreamDashboard.state.liveStart !== null", timeout=60_000
    )
    live_start = page.evaluate("() => window.coinstreamDashboard.state.liveStart")
    assert live_start == pytest.approx(first_snapshot.timestamp() * 1000, abs=60_000)
    drawn = chart_series(page, PRICE_CHART)
    assert len(drawn) == 10
    month_ago = (datetime.now(UTC) - timedelta(days=29)).timestamp() * 1000
    for series in drawn:
        assert series["first"] < month_ago, series  # history reaches back a month
        assert series["last"] >= live_start, series  # and live data follows it
    kinds = page.evaluate(
        """() => window.coinstreamDashboard.charts['chart-asset-price'].data.datasets.map(
            (d) => [d.data.filter((p) => p.history).length, d.data.filter((p) => !p.history)
                    .every((p) => p.x >= window.coinstreamDashboard.state.liveStart)])"""
    )
    assert all(history_points > 100 and live_after for history_points, live_after in kinds)
    for chart in (PRICE_CHART, "chart-asset-market-cap", "chart-asset-supply"):
        marker = page.evaluate(
            "(chart) => window.coinstreamDashboard.charts[chart].options.plugins.liveStart.at",
            chart,
        )
        assert marker == live_start, chart
    legend = page.locator("#history-legend")
    expect(legend).to_be_visible()
    expect(legend).to_contain_text("history (backfilled, simulated)")
    expect(legend).to_contain_text("live data begins")
    expect(note).to_be_hidden()

    page.screenshot(path=str(DOCS / "dashboard-history.png"), full_page=True)
