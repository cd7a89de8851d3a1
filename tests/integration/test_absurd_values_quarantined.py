"""The stream worker quarantines what the ingestors refuse as absurd: each value the simulator's
``absurd_values`` knob serves, through the worker's batch path on a local Spark (``BatchRows``,
split by ``arrow_batch``), becomes a quarantine row whose reason names the field, never a row of
its table. Every case is a message of one batch: one Spark job for the module."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from pyspark.sql import SparkSession

from services.coincap_simulator.faults import ABSURD_VALUES
from shared.coincap.models import RecordKind, validation_error
from shared.schemas import ASSETS, EXCHANGES, TableSchema
from tests.harness.records import BITCOIN, KRAKEN, message
from tests.harness.worker_batch import TOPICS, WorkerBatch, run_batch

CASES: list[tuple[RecordKind, TableSchema, dict[str, Any], str]] = [
    ("assets", ASSETS, BITCOIN, "id"),
    ("exchanges", EXCHANGES, KRAKEN, "exchangeId"),
]
NON_FINITE = ["1e400", "-1e400", "NaN", "Infinity"]


def absurd_records(kind: RecordKind, sound: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The sound record with one absurd value each, keyed ``absurd-<n>`` (unless the absurd
    value is the key itself)."""
    return [
        {**sound, key: f"absurd-{number}", field: value}
        for number, (field, value) in enumerate(ABSURD_VALUES[kind])
    ]


def _messages() -> dict[str, tuple[str, bytes | None]]:
    messages: dict[str, tuple[str, bytes | None]] = {}
    for kind, table, sound, key in CASES:
        topic = TOPICS[table.table]
        for number, record in enumerate(absurd_records(kind, sound, key)):
            messages[f"{kind} absurd-{number}"] = (topic, message(record))
        messages[f"{kind} sound"] = (topic, message({**sound, key: "sound"}))
    for text in [*NON_FINITE, "12.5"]:
        messages[f"vwap24Hr {text}"] = ("a", message({**BITCOIN, "id": text, "vwap24Hr": text}))
    return messages


@functools.cache
def _batch(spark: SparkSession) -> WorkerBatch:
    return run_batch(spark, _messages())


@pytest.fixture
def batch(spark: SparkSession) -> WorkerBatch:
    """Every case of this module in one batch, run once."""
    return _batch(spark)


@pytest.mark.parametrize(("kind", "table", "sound", "key"), CASES)
def test_every_absurd_value_is_quarantined_with_its_field(
    batch: WorkerBatch, kind: RecordKind, table: TableSchema, sound: dict[str, Any], key: str
) -> None:
    reasons = batch.reasons()
    assert f"{kind} sound" not in reasons
    assert "sound" in batch.keys(table)
    records = absurd_records(kind, sound, key)
    for number, (field, value) in enumerate(ABSURD_VALUES[kind]):
        reason = reasons.get(f"{kind} absurd-{number}")
        assert reason is not None and reason.startswith(f"{field}: '{value}' "), reason
        assert records[number][key] not in batch.keys(table)
    # The ingestors refuse the same records, so a replay or another producer meets one rule.
    assert all(validation_error(kind, record) is not None for record in records)


def test_a_value_cast_to_infinity_or_nan_is_quarantined(batch: WorkerBatch) -> None:
    reasons = batch.reasons()
    assert "vwap24Hr 12.5" not in reasons
    assert "12.5" in batch.keys(ASSETS)
    for text in NON_FINITE:
        reason = reasons[f"vwap24Hr {text}"]
        assert f"vwap24Hr: '{text}' is not a finite FLOAT64" in reason
