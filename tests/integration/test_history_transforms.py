"""History records from the backfill's topic: typed into asset_history rows in a real local
Spark, one row per (id, interval, time), and quarantined when a key field is missing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from services.stream_worker.arrow_batch import quarantine_rows, valid_rows
from services.stream_worker.transforms import parse_envelopes, rows_for_topic, table_rows
from shared.schemas import ASSET_HISTORY

pytestmark = pytest.mark.integration

POINT_MS = 1_795_816_800_000
POINT = {
    "priceUsd": "96243.8957644504882220",
    "time": POINT_MS,
    "circulatingSupply": "19788862.0000000000000000",
    "date": "2026-11-27T21:20:00.000Z",
    "id": "bitcoin",
    "interval": "h1",
}


def history_message(record: dict[str, Any]) -> bytes:
    """As the backfill sends it: the point's time is the source timestamp."""
    document = {
        "schema_version": 1,
        "source": "coincap-simulator",
        "endpoint": "history",
        "poll_id": "backfill:bitcoin:h1:0",
        "source_timestamp": record.get("time", POINT_MS),
        "fetched_at": POINT_MS + 3_600_000,
        "record": record,
    }
    return json.dumps(document).encode()


def messages(spark: SparkSession, records: list[dict[str, Any]]) -> DataFrame:
    now = datetime(2026, 11, 28, tzinfo=UTC)
    rows = [(None, history_message(r), "h", 0, offset, now) for offset, r in enumerate(records)]
    return spark.createDataFrame(
        rows,
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp",
    )


def test_history_points_become_typed_rows_once_per_id_interval_and_time(
    spark: SparkSession,
) -> None:
    other_interval = {**POINT, "interval": "d1"}
    parsed = parse_envelopes(messages(spark, [POINT, POINT, other_interval]))
    typed = table_rows(rows_for_topic(parsed, "h"), ASSET_HISTORY).toArrow()
    rows = valid_rows(typed, ASSET_HISTORY)
    result = sorted(rows.to_pylist(), key=lambda row: row["interval"])
    assert [row["interval"] for row in result] == ["d1", "h1"]
    hourly = result[1]
    assert list(hourly) == ASSET_HISTORY.column_names
    assert hourly["id"] == "bitcoin"
    assert hourly["time"].timestamp() == POINT_MS / 1000
    assert hourly["source_timestamp"] == hourly["time"]
    assert hourly["price_usd"] == pytest.approx(96243.89576445049, rel=1e-15)
    assert hourly["circulating_supply"] == pytest.approx(19788862.0)


def test_a_point_without_its_time_or_interval_is_quarantined(spark: SparkSession) -> None:
    no_time = {key: value for key, value in POINT.items() if key != "time"}
    no_interval = {**POINT, "interval": ""}
    bad_price = {**POINT, "priceUsd": "n/a"}
    parsed = parse_envelopes(messages(spark, [no_time, no_interval, bad_price]))
    rows = table_rows(rows_for_topic(parsed, "h"), ASSET_HISTORY).toArrow()
    assert valid_rows(rows, ASSET_HISTORY).num_rows == 0
    reasons = {row["offset"]: row["reason"] for row in quarantine_rows(rows).to_pylist()}
    assert reasons == {
        0: "missing required field 'time'",
        1: "missing required field 'interval'",
        2: "priceUsd: 'n/a' is not a valid FLOAT64",
    }
