"""The dashboard in real headless Chromium, on the real pipeline running on the simulator.

The module starts the simulator (session fixture), the two ingestors polling every 2 s, the
stream worker on a 2 s trigger and the dashboard, all as processes the way ``make run`` starts
them, on topics and a dataset of their own. Two more dashboards show the other states: one on
a dataset nobody has written to, one on a port where no emulator listens. Chromium is Debian's
(``make setup`` installs it), driven by Playwright.
"""

from __future__ import annotations

import io
import json
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.cloud import bigquery
from playwright.sync_api import Browser, Page, expect, sync_playwright

from deploy.local.readiness import http_answers
from shared.schemas import ASSETS
from shared.settings import PROJECT_ROOT, Settings
from shared.warehouse import create_bigquery_client, ensure_views, ensure_warehouse, table_id
from tests.harness.asset_history import load_history, walk_back
from tests.harness.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.harness.environment import SIMULATOR_PORT, TEST_ENVIRONMENT, TEST_STATE_DIR, offset_port
from tests.harness.processes import LocalStack, ManagedProcess, settings_from
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.browser

DASHBOARD_PORT = offset_port(18200)
EMPTY_DASHBOARD_PORT = offset_port(18201)
UNREACHABLE_DASHBOARD_PORT = offset_port(18202)
DEAD_EMULATOR_PORT = offset_port(18259)  # nothing listens here
DOCS = PROJECT_ROOT / "docs"
LOG_DIR = TEST_STATE_DIR / "logs"
PRICE_CHART = "chart-asset-price"
MONTH_SECONDS = 30 * 86400


@dataclass
class Pipeline:
    """The processes of the module, and the settings the main dashboard reads with."""

    settings: Settings
    dashboard_url: str
    empty_settings: Settings
    empty_dashboard_url: str
    unreachable_dashboard_url: str


def start(name: str, module: str, environment: dict[str, str], *arguments: str) -> ManagedProcess:
    process = ManagedProcess(name, [sys.executable, "-m", module, *arguments], environment, LOG_DIR)
    process.start()
    return process


def wait_answering(process: ManagedProcess, url: str, timeout: float) -> None:
    def up() -> bool:
        assert process.is_running(), f"{process.name} exited:\n{process.log_tail(30)}"
        return http_answers(url)

    wait_for(up, f"{process.name} at {url}", timeout)


@pytest.fixture(scope="module")
def pipeline(local_stack: LocalStack, simulator: str) -> Iterator[Pipeline]:
    suffix = uuid.uuid4().hex[:8]
    environment = {
        **TEST_ENVIRONMENT,
        "COINSTREAM_COINCAP_SIMULATOR_PORT": str(SIMULATOR_PORT),
        "COINSTREAM_TOPIC_ASSETS": f"test.dashboard.assets.{suffix}",
        "COINSTREAM_TOPIC_EXCHANGES": f"test.dashboard.exchanges.{suffix}",
        "COINSTREAM_TOPIC_DEADLETTER": f"test.dashboard.deadletter.{suffix}",
        "COINSTREAM_TOPIC_CONTROL": f"test.dashboard.control.{suffix}",
        "COINSTREAM_BIGQUERY_DATASET": f"dashboard_{suffix}",
        "COINSTREAM_POLL_INTERVAL_SECONDS": "2",
        "COINSTREAM_STREAM_TRIGGER_SECONDS": "2",
        "COINSTREAM_STREAM_CHECKPOINT_LOCATION": str(TEST_STATE_DIR / f"checkpoint-{suffix}"),
        "COINSTREAM_STREAM_CONSUMER_GROUP": f"test-dashboard-{suffix}",
        "COINSTREAM_SPARK_DRIVER_MEMORY": "768m",
        "COINSTREAM_ASSET_INGESTOR_PORT": str(offset_port(18211)),
        "COINSTREAM_EXCHANGE_INGESTOR_PORT": str(offset_port(18212)),
        "COINSTREAM_STREAM_WORKER_PORT": str(offset_port(18213)),
        "COINSTREAM_DASHBOARD_PORT": str(DASHBOARD_PORT),
    }
    empty_environment = {
        **environment,
        "COINSTREAM_BIGQUERY_DATASET": f"dashboard_empty_{suffix}",
        "COINSTREAM_DASHBOARD_PORT": str(EMPTY_DASHBOARD_PORT),
    }
    unreachable_environment = {
        **environment,
        "COINSTREAM_BIGQUERY_EMULATOR_URL": f"http://127.0.0.1:{DEAD_EMULATOR_PORT}",
        "COINSTREAM_DASHBOARD_PORT": str(UNREACHABLE_DASHBOARD_PORT),
    }
    # The worker takes longest to start (Spark), so it goes first.
    processes = [start(f"stream-worker-{suffix}", "services.stream_worker", environment)]
    processes += [
        start(f"asset-ingestor-{suffix}", "services.ingestor", environment, "assets"),
        start(f"exchange-ingestor-{suffix}", "services.ingestor", environment, "exchanges"),
        start(f"dashboard-{suffix}", "services.dashboard", environment),
        start(f"dashboard-empty-{suffix}", "services.dashboard", empty_environment),
        start(f"dashboard-unreachable-{suffix}", "services.dashboard", unreachable_environment),
    ]
    try:
        for process, port in zip(
            processes[3:],
            (DASHBOARD_PORT, EMPTY_DASHBOARD_PORT, UNREACHABLE_DASHBOARD_PORT),
            strict=True,
        ):
            wait_answering(process, f"http://127.0.0.1:{port}/healthz", 60)
        settings = settings_from(environment)
        client = create_bigquery_client(settings)

        def rows_arrived() -> bool:
            for process in processes[:3]:
                assert process.is_running(), f"{process.name} exited:\n{process.log_tail(30)}"
            sql = f"SELECT COUNT(*) AS n FROM `{table_id(settings, ASSETS)}`"
            try:
                return bool(next(iter(client.query(sql).result()))["n"] > 0)
            except Exception:  # the table does not exist until the worker starts
                return False

        wait_for(rows_arrived, "the first asset rows in the warehouse", 120)
        yield Pipeline(
            settings=settings,
            dashboard_url=f"http://127.0.0.1:{DASHBOARD_PORT}/",
            empty_settings=settings_from(empty_environment),
            empty_dashboard_url=f"http://127.0.0.1:{EMPTY_DASHBOARD_PORT}/",
            unreachable_dashboard_url=f"http://127.0.0.1:{UNREACHABLE_DASHBOARD_PORT}/",
        )
    finally:
        for process in reversed(processes):
            process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
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
    page.goto(url)
    page.wait_for_function("Number(document.body.dataset.loads || 0) >= 1", timeout=60_000)


def test_an_empty_warehouse_says_why_and_what_to_start(page: Page, pipeline: Pipeline) -> None:
    page.goto(pipeline.empty_dashboard_url)
    empty = page.locator("#empty")
    expect(empty).to_be_visible(timeout=20_000)
    expect(empty).to_contain_text("No data yet")
    expect(empty).to_contain_text("is the stream worker running? (`make run` starts it)")
    expect(page.locator("#content")).to_be_hidden()

    # The worker creates the tables and views: the page, without a reload, says they are empty.
    client = create_bigquery_client(pipeline.empty_settings)
    ensure_warehouse(client, pipeline.empty_settings)
    ensure_views(client, pipeline.empty_settings)
    expect(empty).to_contain_text("has no asset or exchange rows", timeout=20_000)


def test_an_unreachable_warehouse_names_the_service_to_check(
    page: Page, pipeline: Pipeline
) -> None:
    page.goto(pipeline.unreachable_dashboard_url)
    problem = page.locator("#problem")
    expect(problem).to_be_visible(timeout=30_000)
    expect(problem).to_contain_text(
        f"the warehouse (BigQuery emulator at http://127.0.0.1:{DEAD_EMULATOR_PORT})"
    )
    expect(problem).to_contain_text("make run")
    expect(page.locator("#freshness")).to_contain_text("not updating")


def test_asset_charts_draw_the_top_ten_and_the_table_sorts(page: Page, pipeline: Pipeline) -> None:
    open_dashboard(page, pipeline.dashboard_url)
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


def test_picking_a_coin_and_a_range_changes_what_is_drawn(page: Page, pipeline: Pipeline) -> None:
    # An older snapshot of Dogecoin, three hours back: only a range that reaches it draws it.
    old = datetime.now(UTC) - timedelta(hours=3)
    load_old_snapshot(pipeline.settings, "dogecoin", old)
    open_dashboard(page, pipeline.dashboard_url)

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
    page.wait_for_function(
        """(before) => {
            const sets = window.coinstreamDashboard.charts['chart-asset-price'].data.datasets;
            return sets.length === 1 && sets[0].data.length && sets[0].data[0].x < before;
        }""",
        arg=(old + timedelta(minutes=1)).timestamp() * 1000,
    )


def test_a_new_batch_is_drawn_without_a_reload(page: Page, pipeline: Pipeline) -> None:
    open_dashboard(page, pipeline.dashboard_url)
    wait_until_drawn(page, PRICE_CHART)
    page.evaluate("() => { window.loadedOnce = 'still the same page'; }")
    newest = max(series["last"] for series in chart_series(page, PRICE_CHART))
    freshness = page.locator("#freshness").get_attribute("data-newest")

    page.wait_for_function(
        """(newest) => window.coinstreamDashboard.charts['chart-asset-price'].data.datasets
            .some((d) => d.data.length && d.data[d.data.length - 1].x > newest)""",
        arg=newest,
        timeout=30_000,
    )
    assert page.evaluate("() => window.loadedOnce") == "still the same page"
    assert page.locator("#freshness").get_attribute("data-newest") != freshness


def test_exchange_charts_show_volume_share_over_time_and_its_split(
    page: Page, pipeline: Pipeline
) -> None:
    open_dashboard(page, pipeline.dashboard_url + "#exchanges")
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

    page.screenshot(path=str(DOCS / "dashboard-exchanges.png"), full_page=True)


def test_history_is_drawn_before_live_data_with_a_line_where_it_begins(
    page: Page, pipeline: Pipeline
) -> None:
    open_dashboard(page, pipeline.dashboard_url)
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
    client = create_bigquery_client(pipeline.settings)
    # Where live data begins for them: the first snapshot of any of the ten.
    first_snapshot = next(
        iter(
            client.query(
                f"SELECT MIN(source_timestamp) AS t FROM `{table_id(pipeline.settings, ASSETS)}` "
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
    load_history(client, pipeline.settings, rows)

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


def load_old_snapshot(settings: Settings, asset_id: str, at: datetime) -> None:
    """A few snapshots of one asset around ``at``, loaded through the real client."""
    rows = [
        {
            "id": asset_id,
            "rank": 8,
            "symbol": "DOGE",
            "name": "Dogecoin",
            "supply": 147_000_000_000.0,
            "price_usd": 0.3 + step / 100,
            "market_cap_usd": 4.4e10,
            "source_timestamp": (at + timedelta(minutes=step)).isoformat(),
            "processing_timestamp": (at + timedelta(minutes=step, seconds=2)).isoformat(),
        }
        for step in range(3)
    ]
    body = io.BytesIO("\n".join(json.dumps(row) for row in rows).encode())
    client = create_bigquery_client(settings)
    client.load_table_from_file(
        body,
        table_id(settings, ASSETS),
        size=None,
        job_config=bigquery.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON"),
    ).result(timeout=60)
