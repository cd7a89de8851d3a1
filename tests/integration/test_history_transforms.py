"""History records from the backfill's topic, through the worker's batch path on a local Spark:
typed into asset_history rows, one row per (id, interval, time), and quarantined when a key
field is missing. Every case is a message of one batch: one Spark job for the module."""

from __future__ import annotations

import functools

import pytest
from pyspark.sql import SparkSession

from shared.schemas import ASSET_HISTORY
from tests.harness.records import history, message
from tests.harness.worker_batch import WorkerBatch, run_batch

POINT_MS = 1_795_816_800_000
HOURLY = {
    "priceUsd": "96243.8957644504882220",
    "time": POINT_MS,
    "circulatingSupply": "19788862.0000000000000000",
    "date": "2026-11-27T21:20:00.000Z",
    "id": "bitcoin",
    "interval": "h1",
}
NO_TIME = {key: value for key, value in HOURLY.items() if key != "time"}
MESSAGES: dict[str, tuple[str, bytes | None]] = {
    "hourly": ("h", history(HOURLY)),
    "hourly again": ("h", history(HOURLY)),
    "daily": ("h", history({**HOURLY, "interval": "d1"})),
    "no time": ("h", message(NO_TIME, source_timestamp=str(POINT_MS), endpoint='"history"')),
    "no interval": ("h", history({**HOURLY, "interval": ""})),
    "bad price": ("h", history({**HOURLY, "priceUsd": "n/a"})),
}


@functools.cache
def _batch(spark: SparkSession) -> WorkerBatch:
    return run_batch(spark, MESSAGES)


@pytest.fixture
def batch(spark: SparkSession) -> WorkerBatch:
    """Every message above in one batch, run once for the module."""
    return _batch(spark)


def test_history_points_become_typed_rows_once_per_id_interval_and_time(
    batch: WorkerBatch,
) -> None:
    result = sorted(batch.rows(ASSET_HISTORY), key=lambda row: row["interval"])
    assert [row["interval"] for row in result] == ["d1", "h1"]
    hourly = result[1]
    assert list(hourly) == ASSET_HISTORY.column_names
    assert hourly["id"] == "bitcoin"
    assert hourly["time"].timestamp() == POINT_MS / 1000
    assert hourly["source_timestamp"] == hourly["time"]
    assert hourly["price_usd"] == pytest.approx(96243.89576445049, rel=1e-15)
    assert hourly["circulating_supply"] == pytest.approx(19788862.0)


def test_a_point_without_its_time_or_interval_is_quarantined(batch: WorkerBatch) -> None:
    assert batch.reasons() == {
        "no time": "missing required field 'time'",
        "no interval": "missing required field 'interval'",
        "bad price": "priceUsd: 'n/a' is not a valid FLOAT64",
    }
