"""No value can fail the stream worker's batch: each hostile value, written straight to a topic
(anyone who can write a topic can write anything), goes through the worker's own batch path
(``BatchRows`` on a real local Spark, collected once, split by ``arrow_batch``, shaped by the
MERGE sink) beside healthy records of each table, and ends as a quarantine row with its reason,
while the healthy records become rows. Every case is a message of one batch: one Spark job for
the module."""

from __future__ import annotations

import functools

import pytest
from pyspark.sql import SparkSession

from services.stream_worker.sinks.merge import rows_parameter
from services.stream_worker.transforms import RAW_VALUE_MAX_CHARACTERS, REASON_MAX_CHARACTERS
from shared.schemas import ASSET_HISTORY, ASSETS, EXCHANGES, QUARANTINE, RECORD_TABLES
from tests.harness.records import (
    BITCOIN,
    HOSTILE,
    HOUR_MS,
    HUGE,
    KRAKEN,
    NOW_MS,
    POINT,
    WINDOW_HOURS,
    history,
    message,
)
from tests.harness.worker_batch import WorkerBatch, run_batch

INSIDE_WINDOW_MS = NOW_MS - int((WINDOW_HOURS - 1) * HOUR_MS)
HEALTHY: dict[str, tuple[str, bytes | None]] = {
    "healthy asset": ("a", message(BITCOIN)),
    "healthy exchange": ("e", message(KRAKEN)),
    "healthy point": ("h", history(POINT)),
    # The window holds a snapshot's time to now, either way, and only a snapshot's.
    "asset inside the window": (
        "a",
        message({**BITCOIN, "id": "inside"}, source_timestamp=str(INSIDE_WINDOW_MS)),
    ),
    "exchange an hour ahead": (
        "e",
        message({**KRAKEN, "exchangeId": "ahead"}, source_timestamp=str(NOW_MS + HOUR_MS)),
    ),
    "point of 2010": ("h", history({**POINT, "id": "old", "time": 1_262_304_000_000})),
    # Supply and max supply each finite, their quotient not.
    "huge ratio": ("a", message({"id": "hugecoin", "supply": "1e308", "maxSupply": "1e-308"})),
}
HOSTILE_MESSAGES = {
    f"hostile {number}": (topic, value) for number, (topic, value, _) in enumerate(HOSTILE)
}
MESSAGES = {**HEALTHY, **HOSTILE_MESSAGES, "huge": ("a", HUGE)}


@functools.cache
def _batch(spark: SparkSession) -> WorkerBatch:
    return run_batch(spark, MESSAGES)


@pytest.fixture
def batch(spark: SparkSession) -> WorkerBatch:
    """Every message above in one batch, run once for the module."""
    return _batch(spark)


def test_no_hostile_value_fails_the_batch_and_each_is_quarantined_with_its_reason(
    batch: WorkerBatch,
) -> None:
    assert batch.keys(ASSETS) == ["bitcoin", "inside", "hugecoin"]
    assert batch.keys(EXCHANGES) == ["kraken", "ahead"]
    assert batch.keys(ASSET_HISTORY) == ["bitcoin", "old"]
    reasons = batch.reasons()
    assert sorted(reasons) == sorted([*HOSTILE_MESSAGES, "huge"])
    for label, (_, _, reason) in zip(HOSTILE_MESSAGES, HOSTILE, strict=True):
        assert reasons[label].startswith(reason), (label, reasons[label])


def test_every_row_fits_the_merge_sinks_query_parameters(batch: WorkerBatch) -> None:
    """What the MERGE sink makes of the rows (where a value that is not UTF-8 would raise)."""
    for table in RECORD_TABLES:
        parameter = rows_parameter(table, batch.split.rows[table.table])
        assert len(parameter.to_api_repr()["parameterValue"]["arrayValues"]) == len(
            batch.rows(table)
        )
    quarantine = rows_parameter(QUARANTINE, batch.split.quarantine).to_api_repr()
    assert len(quarantine["parameterValue"]["arrayValues"]) == len(HOSTILE) + 1


def test_a_huge_value_is_quarantined_with_its_raw_value_and_reason_cut(
    batch: WorkerBatch,
) -> None:
    """Every field over its limit and a message of 130,000 characters: the quarantine row
    still fits a warehouse request."""
    row = batch.quarantined("huge")
    assert row["raw_value"] == HUGE.decode()[:RAW_VALUE_MAX_CHARACTERS]
    note = f"raw_value is the first {RAW_VALUE_MAX_CHARACTERS} of {len(HUGE)} characters"
    assert row["reason"].endswith(f"…; {note}")
    assert len(row["reason"]) == REASON_MAX_CHARACTERS + len(f"; {note}")
    assert row["reason"].startswith("id: '99999")


def test_a_snapshot_near_now_and_an_old_history_point_are_kept(batch: WorkerBatch) -> None:
    reasons = batch.reasons()
    for label in ["asset inside the window", "exchange an hour ahead", "point of 2010"]:
        assert label not in reasons, reasons[label]
    assert "inside" in batch.keys(ASSETS)
    assert "ahead" in batch.keys(EXCHANGES)
    assert "old" in batch.keys(ASSET_HISTORY)


def test_a_supply_ratio_past_a_double_is_null_not_infinity(batch: WorkerBatch) -> None:
    """The row is stored (both values are facts), its ratio null rather than the infinity no
    analyst can chart."""
    [row] = [row for row in batch.rows(ASSETS) if row["id"] == "hugecoin"]
    assert row["supply"] == 1e308
    assert row["supply_ratio"] is None
