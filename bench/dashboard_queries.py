"""How fast the dashboard's queries and page are with a week of data in the warehouse.

Starts a fresh BigQuery emulator on benchmark ports, loads a week of synthetic snapshots (the
simulator's 165 assets and 40 exchanges, one poll every ``--poll-seconds``, prices on a random
walk) into a bench dataset through the real client (``load_table_from_file`` with Parquet), then
times every dashboard query function as the API runs it, over the ranges the page offers.
With Chromium at /usr/bin/chromium it also starts the dashboard process and times the page
until its charts are drawn.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from google.cloud import bigquery

from deploy.local.errors import StackError
from deploy.local.readiness import http_answers, wait_for_bigquery_emulator, wait_until
from services.coincap_simulator import load_universe
from services.dashboard import entities, queries
from services.dashboard.entities import ENTITIES
from services.dashboard.queries import TimeRange
from shared.schemas import ASSETS, EXCHANGES, TableSchema
from shared.settings import PROJECT_ROOT, Settings
from shared.warehouse import create_bigquery_client, ensure_views, ensure_warehouse, table_id
from tests.harness.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.harness.processes import ManagedProcess, settings_from, stack_process

BENCH_STATE_DIR = PROJECT_ROOT / ".state" / "bench-dashboard"
DASHBOARD_PORT = 38200
ENVIRONMENT = {
    "COINSTREAM_BIGQUERY_EMULATOR_URL": "http://127.0.0.1:39250",
    "COINSTREAM_BIGQUERY_EMULATOR_GRPC_PORT": "39260",
    "COINSTREAM_BIGQUERY_DATASET": "bench_dashboard",
    "COINSTREAM_STATE_DIR": str(BENCH_STATE_DIR / "stack"),
    "COINSTREAM_DASHBOARD_PORT": str(DASHBOARD_PORT),
    "COINSTREAM_BIGQUERY_TIMEOUT_SECONDS": "120",
}
RANGES = {"1 h": timedelta(hours=1), "24 h": timedelta(days=1), "7 d": timedelta(days=7)}
ARROW_TYPES = {
    "STRING": pa.string(),
    "INT64": pa.int64(),
    "FLOAT64": pa.float64(),
    "BOOL": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}


def arrow_schema(schema: TableSchema) -> pa.Schema:
    return pa.schema(
        [
            pa.field(column.name, ARROW_TYPES[column.type.value], nullable=not column.required)
            for column in schema.columns
        ]
    )


def poll_times(end: datetime, days: float, poll_seconds: float) -> np.ndarray:
    """Epoch microseconds of every poll in the ``days`` before ``end``, oldest first."""
    polls = int(days * 86400 / poll_seconds)
    end_us = int(end.timestamp() * 1_000_000)
    return end_us - (np.arange(polls, 0, -1) * int(poll_seconds * 1_000_000)).astype(np.int64)


def random_walk(rng: np.random.Generator, start: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` x len(start) values, each column a geometric random walk from its start."""
    factors = np.exp(rng.normal(0.0, 0.002, size=(steps, start.size)))
    return start * np.cumprod(factors, axis=0)


def ranks_of(values: np.ndarray) -> np.ndarray:
    """Per row, 1 for the largest value, 2 for the next, and so on."""
    order = np.argsort(-values, axis=1)
    ranks = np.empty_like(order)
    rows = np.arange(values.shape[0])[:, None]
    ranks[rows, order] = np.arange(1, values.shape[1] + 1)
    return ranks


def asset_table(times: np.ndarray, rng: np.random.Generator) -> pa.Table:
    universe = load_universe()["assets"]
    count, steps = len(universe), times.size
    prices = random_walk(rng, np.array([float(a["priceUsd"]) for a in universe]), steps)
    supply0 = np.array([float(a["supply"]) for a in universe])
    max_supply = np.array([float(a["maxSupply"]) if a["maxSupply"] else np.nan for a in universe])
    supply = supply0 * (1 + np.linspace(0, 0.001, steps))[:, None]
    supply = np.where(np.isnan(max_supply), supply, np.minimum(supply, max_supply))
    market_cap = prices * supply
    ranks = ranks_of(market_cap)
    day_ago = np.maximum(np.arange(steps) - int(86400 / ((times[1] - times[0]) / 1e6)), 0)
    change = (prices / prices[day_ago] - 1) * 100
    flat_time = np.repeat(times, count)
    ratio = (supply / max_supply).ravel()
    columns: dict[str, Any] = {
        "id": np.tile([a["id"] for a in universe], steps),
        "rank": ranks.ravel(),
        "symbol": np.tile([a["symbol"] for a in universe], steps),
        "name": np.tile([a["name"] for a in universe], steps),
        "supply": supply.ravel(),
        "max_supply": pa.array(np.tile(max_supply, steps), from_pandas=True),
        "market_cap_usd": market_cap.ravel(),
        "volume_usd_24hr": (market_cap * 0.03).ravel(),
        "price_usd": prices.ravel(),
        "change_percent_24hr": change.ravel(),
        "vwap_24hr": prices.ravel(),
        "explorer": np.tile([a.get("explorer") for a in universe], steps),
        "supply_ratio": pa.array(ratio, from_pandas=True),
    }
    return pa.table(
        columns | envelope_columns(flat_time, steps, count), schema=arrow_schema(ASSETS)
    )


def exchange_table(times: np.ndarray, rng: np.random.Generator) -> pa.Table:
    # An exchange CoinCap reports no volume for would only add nulls to every measure.
    universe = [e for e in load_universe()["exchanges"] if e["volumeUsd"] is not None]
    count, steps = len(universe), times.size
    volume = random_walk(rng, np.array([float(e["volumeUsd"]) for e in universe]), steps)
    percent = volume / volume.sum(axis=1, keepdims=True) * 100
    flat_time = np.repeat(times, count)
    columns: dict[str, Any] = {
        "exchange_id": np.tile([e["exchangeId"] for e in universe], steps),
        "name": np.tile([e["name"] for e in universe], steps),
        "rank": ranks_of(volume).ravel(),
        "percent_total_volume": percent.ravel(),
        "volume_usd": volume.ravel(),
        "trading_pairs": np.tile([int(e["tradingPairs"]) for e in universe], steps),
        "socket": np.tile([bool(e["socket"]) for e in universe], steps),
        "exchange_url": np.tile([e.get("exchangeUrl") for e in universe], steps),
        "updated": flat_time,
    }
    return pa.table(
        columns | envelope_columns(flat_time, steps, count), schema=arrow_schema(EXCHANGES)
    )


def envelope_columns(flat_time: np.ndarray, steps: int, count: int) -> dict[str, Any]:
    poll_ids = np.repeat([uuid.uuid4().hex for _ in range(steps)], count)
    return {
        "source_timestamp": flat_time,
        "fetched_at": flat_time + 50_000,
        "poll_id": poll_ids,
        "processing_timestamp": flat_time + 2_000_000,
    }


def load(client: bigquery.Client, settings: Settings, schema: TableSchema, table: pa.Table) -> None:
    """Load ``table`` in Parquet chunks; the emulator takes uploads of unknown size only."""
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET,
        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
    )
    for batch in table.to_batches(max_chunksize=250_000):
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_batches([batch]), buffer)
        buffer.seek(0)
        client.load_table_from_file(
            buffer, table_id(settings, schema), size=None, job_config=config
        ).result(timeout=600)


def timed(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median and slowest wall time of ``repeats`` runs, in milliseconds."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1000, max(seconds) * 1000


def query_timings(
    client: bigquery.Client, settings: Settings, end: datetime, repeats: int
) -> list[tuple[str, float, float]]:
    universe = load_universe()
    top_assets = [asset["id"] for asset in universe["assets"][:10]]
    top_exchanges = [exchange["exchangeId"] for exchange in universe["exchanges"][:10]]
    results = [
        (
            "status (newest row of both views)",
            *timed(
                lambda: [queries.table_status(client, settings, entity) for entity in ENTITIES],
                repeats,
            ),
        )
    ]
    for label, span in RANGES.items():
        time_range = TimeRange(end - span, end)
        cases: dict[str, Callable[[], object]] = {
            "assets latest": partial(
                queries.latest, client, settings, entities.ASSETS, time_range, 500
            ),
            "assets series, 10 coins": partial(
                queries.series, client, settings, entities.ASSETS, top_assets, time_range, 240
            ),
            "exchanges latest": partial(
                queries.latest, client, settings, entities.EXCHANGES, time_range, 500
            ),
            "exchanges series, 10 exchanges": partial(
                queries.series, client, settings, entities.EXCHANGES, top_exchanges, time_range, 240
            ),
        }
        results += [(f"{name} ({label})", *timed(run, repeats)) for name, run in cases.items()]
    return results


def page_load_timings(repeats: int) -> list[tuple[str, float, float]]:
    """Navigation until the first view's charts are drawn, and a switch to the 7-day range."""
    from playwright.sync_api import sync_playwright

    url = f"http://127.0.0.1:{DASHBOARD_PORT}/"
    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for view in ("assets", "exchanges"):
                loads, switches = [], []
                for _ in range(repeats):
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    started = time.perf_counter()
                    page.goto(f"{url}#{view}")
                    page.wait_for_function("Number(document.body.dataset.loads || 0) >= 1")
                    loads.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    page.select_option("#range", "604800")
                    page.wait_for_function("Number(document.body.dataset.loads || 0) >= 2")
                    switches.append(time.perf_counter() - started)
                    page.close()
                for name, samples in (
                    (f"page load, {view} view (last hour, charts drawn)", loads),
                    (f"range switch to 7 days, {view} view (charts redrawn)", switches),
                ):
                    results.append((name, statistics.median(samples) * 1000, max(samples) * 1000))
        finally:
            browser.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=7.0, help="days of data to load")
    parser.add_argument(
        "--poll-seconds", type=float, default=60.0, help="seconds between synthetic polls"
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs of each query")
    arguments = parser.parse_args()

    shutil.rmtree(BENCH_STATE_DIR, ignore_errors=True)
    settings = settings_from(ENVIRONMENT)
    emulator = stack_process("bigquery", ENVIRONMENT, BENCH_STATE_DIR / "logs")
    dashboard = ManagedProcess(
        "dashboard", [sys.executable, "-m", "services.dashboard"], ENVIRONMENT, BENCH_STATE_DIR
    )
    emulator.start()
    try:
        wait_for_bigquery_emulator(settings, 60, emulator.is_running)
        client = create_bigquery_client(settings)
        ensure_warehouse(client, settings)
        ensure_views(client, settings)

        end = datetime.now(UTC).replace(microsecond=0)
        times = poll_times(end, arguments.days, arguments.poll_seconds)
        rng = np.random.default_rng(7)
        started = time.perf_counter()
        assets, exchanges = asset_table(times, rng), exchange_table(times, rng)
        load(client, settings, ASSETS, assets)
        load(client, settings, EXCHANGES, exchanges)
        print(
            f"loaded {assets.num_rows:,} asset rows and {exchanges.num_rows:,} exchange rows "
            f"({arguments.days:g} days, one poll every {arguments.poll_seconds:g} s) in "
            f"{time.perf_counter() - started:.0f} s"
        )

        timings = query_timings(client, settings, datetime.now(UTC), arguments.repeats)
        if CHROMIUM.exists():
            dashboard.start()
            wait_until(
                lambda: (
                    dashboard.is_running()
                    and http_answers(f"http://127.0.0.1:{DASHBOARD_PORT}/healthz")
                ),
                "the dashboard",
                30,
            )
            timings += page_load_timings(arguments.repeats)
        else:
            print(f"page load not measured: no Chromium at {CHROMIUM} (`make setup` installs it)")
    except StackError as error:
        print(f"coinstream: {error}", file=sys.stderr)
        return 2
    finally:
        if dashboard.process is not None:
            dashboard.stop()
        emulator.stop()

    width = max(len(name) for name, _, _ in timings)
    print(f"{'dashboard query or page':<{width}}  median ms  slowest ms")
    for name, median, slowest in timings:
        print(f"{name:<{width}}  {median:9.0f}  {slowest:10.0f}")
    slowest_query = max(
        (entry for entry in timings if not entry[0].startswith(("page", "range"))),
        key=lambda entry: entry[2],
    )
    print(f"slowest query: {slowest_query[0]}, {slowest_query[2]:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
