"""No value can fail the stream worker's batch: each hostile value, written straight to a topic
(anyone who can write a topic can write anything), goes through the worker's own batch path
(``BatchRows`` on a real local Spark, collected once, split by ``arrow_batch``, shaped by the
MERGE sink) beside a healthy record of the same table, and ends as a quarantine row with its
reason, while the healthy records become rows."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from pyspark.sql import SparkSession

from services.stream_worker.arrow_batch import SplitBatch, split_batch
from services.stream_worker.sink import rows_parameter
from services.stream_worker.transforms import (
    RAW_VALUE_MAX_CHARACTERS,
    REASON_MAX_CHARACTERS,
    BatchRows,
)
from shared.schemas import ASSET_HISTORY, ASSETS, EXCHANGES, QUARANTINE, RECORD_TABLES
from tests.integration.test_transforms import BITCOIN, KRAKEN, WINDOW_HOURS, kafka_messages

pytestmark = pytest.mark.integration

TOPICS = {ASSETS.table: "a", EXCHANGES.table: "e", ASSET_HISTORY.table: "h"}
HOUR_MS = 3_600_000
POINT = {
    "id": "bitcoin",
    "interval": "h1",
    "time": 1_385_856_000_000,  # 2013-12-01: history is the past, and exempt from the window
    "priceUsd": "1130.52",
    "circulatingSupply": "12040000",
}


def message(record: Any, **envelope: str) -> bytes:
    """An envelope as the ingestors write it, now, around ``record``; ``envelope`` replaces a
    field with JSON text as given (``source_timestamp="1e16"``), and ``record`` may be JSON
    text too."""
    now = int(time.time() * 1000)
    fields = {
        "schema_version": "1",
        "source": '"coincap-simulator"',
        "endpoint": '"assets"',
        "poll_id": '"p1"',
        "source_timestamp": str(now),
        "fetched_at": str(now + 40),
        **envelope,
        "record": record if isinstance(record, str) else json.dumps(record),
    }
    return ("{" + ",".join(f'"{name}":{text}' for name, text in fields.items()) + "}").encode()


def history(point: dict[str, Any], time_text: str | None = None) -> bytes:
    """A backfill's message: the point's time is its source timestamp."""
    point_time = time_text or str(point["time"])
    record = json.dumps(point).replace(f'"time": {point["time"]}', f'"time": {point_time}')
    return message(record, source_timestamp=point_time, endpoint='"history"')


def run_batch(spark: SparkSession, messages: list[tuple[str, bytes | None]]) -> SplitBatch:
    """The worker's path from the Kafka source's rows to what the sinks receive, and the MERGE
    sink's query parameters made of it (where a value that is not UTF-8 would raise)."""
    tables = [(table, TOPICS[table.table]) for table in RECORD_TABLES]
    collected = BatchRows(tables, WINDOW_HOURS).of_messages(kafka_messages(spark, messages))
    split = split_batch(collected.toArrow(), list(RECORD_TABLES))
    for table, rows in [
        *((table, split.rows[table.table]) for table in RECORD_TABLES),
        (QUARANTINE, split.quarantine),
    ]:
        if rows.num_rows:  # as the sink, which sends no rows at all
            rows_parameter(table, rows)
    return split


def reasons_by_offset(split: SplitBatch) -> dict[int, str]:
    return {row["offset"]: row["reason"] for row in split.quarantine.to_pylist()}


def stored_keys(split: SplitBatch) -> dict[str, list[Any]]:
    return {
        table.table: split.rows[table.table].column(table.key_column).to_pylist()
        for table in RECORD_TABLES
    }


NOW_MS = int(time.time() * 1000)
OUTSIDE_WINDOW_MS = NOW_MS - int((WINDOW_HOURS + 1) * HOUR_MS)
LONG_NAME = "n" * 5000
HOSTILE: list[tuple[str, bytes | None, str]] = [
    # (topic, value, the reason's start)
    (
        "e",
        message({**KRAKEN, "updated": 9999999999999999}),
        "updated: '9999999999999999' is outside BigQuery's TIMESTAMP range",
    ),
    (
        "a",
        message(BITCOIN, source_timestamp="9999999999999999"),
        "source_timestamp: '9999999999999999' is outside BigQuery's TIMESTAMP range",
    ),
    (
        "a",
        message(BITCOIN, source_timestamp="-9223372036854775808"),
        "source_timestamp: '-9223372036854775808' is outside BigQuery's TIMESTAMP range",
    ),
    (
        "a",
        message(BITCOIN, source_timestamp="1e16"),
        "source_timestamp: '1.0E16' is not a valid TIMESTAMP",
    ),
    (
        "a",
        message(BITCOIN, source_timestamp="99999999999999999999999"),
        "source_timestamp: '99999999999999999999999' is not a valid TIMESTAMP",
    ),
    (
        "a",
        message(BITCOIN, source_timestamp='"soon"'),
        "source_timestamp: 'soon' is not a valid TIMESTAMP",
    ),
    (
        "a",
        message(BITCOIN, fetched_at="9999999999999999"),
        "fetched_at: '9999999999999999' is outside BigQuery's TIMESTAMP range",
    ),
    ("a", message(BITCOIN, fetched_at="1e16"), "fetched_at: '1.0E16' is not a valid TIMESTAMP"),
    (
        "e",
        message(KRAKEN, source_timestamp=str(OUTSIDE_WINDOW_MS)),
        f"source_timestamp: '{OUTSIDE_WINDOW_MS}' is more than {WINDOW_HOURS:g} hours from the "
        "processing time (COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS)",
    ),
    (
        "h",
        history(POINT, "9999999999999999"),
        "time: '9999999999999999' is outside BigQuery's TIMESTAMP range",
    ),
    (
        "a",
        message({**BITCOIN, "name": LONG_NAME}),
        f"name: '{LONG_NAME[:40]}…' is 5000 characters long, over its limit of 200",
    ),
    (
        "a",
        message(BITCOIN, poll_id=json.dumps("p" * 1025)),
        f"poll_id: '{'p' * 40}…' is 1025 characters long, over its limit of 1024",
    ),
    (
        "a",
        message({**BITCOIN, "name": "Bit\ud800coin"}),
        "value has an unpaired surrogate escape (such as \\ud800): not Unicode text",
    ),
    ("a", message(BITCOIN).replace(b"Bitcoin", b"Bit\xff\xfecoin"), "value is not valid UTF-8"),
    ("a", b"\xff\xfe not JSON either", "value is not valid UTF-8"),
    (
        "a",
        message(json.dumps(BITCOIN)[:-1] + ', "tokens": ' + "[" * 5000 + "]" * 5000 + "}"),
        "value is not valid JSON",
    ),
    (
        "a",
        message(json.dumps(BITCOIN).replace('"96243.8957644504882220"', "1" + "0" * 1200)),
        "value is not valid JSON",
    ),
    (
        "a",
        message(json.dumps(BITCOIN).replace('"96243.8957644504882220"', "1e400")),
        "priceUsd: '\"Infinity\"' is not a valid FLOAT64",
    ),
    (
        "e",
        message(json.dumps(KRAKEN).replace('"rank": 4', '"rank": 99999999999999999999999')),
        "rank: '99999999999999999999999' is not a valid INT64",
    ),
]


def test_no_hostile_value_fails_the_batch_and_each_is_quarantined_with_its_reason(
    spark: SparkSession,
) -> None:
    healthy = [
        ("a", message(BITCOIN)),
        ("e", message(KRAKEN)),
        ("h", history(POINT)),
    ]
    split = run_batch(spark, [*healthy, *((topic, value) for topic, value, _ in HOSTILE)])

    assert stored_keys(split) == {
        "assets": ["bitcoin"],
        "exchanges": ["kraken"],
        "asset_history": ["bitcoin"],
    }
    reasons = reasons_by_offset(split)
    assert sorted(reasons) == list(range(len(healthy), len(healthy) + len(HOSTILE)))
    for offset, (_, _, reason) in enumerate(HOSTILE, start=len(healthy)):
        assert reasons[offset].startswith(reason), (offset, reasons[offset])


def test_a_huge_value_is_quarantined_with_its_raw_value_and_reason_cut(
    spark: SparkSession,
) -> None:
    """Every field over its limit and a message of 100,000 characters: the quarantine row
    still fits a warehouse request."""
    huge = {name: "9" * 5000 for name in BITCOIN}
    value = message(huge, poll_id=json.dumps("p" * 70_000))
    split = run_batch(spark, [("a", value), ("a", message(BITCOIN))])

    assert stored_keys(split)["assets"] == ["bitcoin"]
    [row] = split.quarantine.to_pylist()
    assert row["raw_value"] == value.decode()[:RAW_VALUE_MAX_CHARACTERS]
    note = f"raw_value is the first {RAW_VALUE_MAX_CHARACTERS} of {len(value)} characters"
    assert row["reason"].endswith(f"…; {note}")
    assert len(row["reason"]) == REASON_MAX_CHARACTERS + len(f"; {note}")
    assert row["reason"].startswith("id: '99999")


def test_a_snapshot_near_now_and_an_old_history_point_are_kept(spark: SparkSession) -> None:
    """The window holds a snapshot's time to now, either way, and only a snapshot's."""
    inside = NOW_MS - int((WINDOW_HOURS - 1) * HOUR_MS)
    split = run_batch(
        spark,
        [
            ("a", message(BITCOIN, source_timestamp=str(inside))),
            ("e", message(KRAKEN, source_timestamp=str(NOW_MS + HOUR_MS))),
            ("h", history({**POINT, "time": 1_262_304_000_000})),  # 2010
        ],
    )
    assert split.quarantine.num_rows == 0, split.quarantine.to_pylist()
    assert stored_keys(split) == {
        "assets": ["bitcoin"],
        "exchanges": ["kraken"],
        "asset_history": ["bitcoin"],
    }


def test_a_supply_ratio_past_a_double_is_null_not_infinity(spark: SparkSession) -> None:
    """Supply and max supply each finite, their quotient not: the row is stored (both values
    are facts), its ratio null rather than the infinity no analyst can chart."""
    huge_ratio = {"id": "hugecoin", "supply": "1e308", "maxSupply": "1e-308"}
    split = run_batch(spark, [("a", message(huge_ratio))])
    rows = split.rows[ASSETS.table].to_pylist()
    assert [row["id"] for row in rows] == ["hugecoin"], split.quarantine.to_pylist()
    assert rows[0]["supply"] == 1e308
    assert rows[0]["supply_ratio"] is None
