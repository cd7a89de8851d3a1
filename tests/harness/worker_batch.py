"""The stream worker's batch path run in the test's process, on the in-process Spark: Kafka source
rows in, what the sinks receive out, through the code the worker runs (``transforms.BatchRows``
collected once, then ``arrow_batch.split_batch``), so a test checks exactly what reaches a sink.

One call is one Spark job. Tests that check one family of cases give every case to one batch,
each message under a label, and read each case's outcome by its label.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pyspark.sql import SparkSession

from services.stream_worker.arrow_batch import SplitBatch, split_batch
from services.stream_worker.transforms import BatchRows
from shared.schemas import ASSET_HISTORY, ASSETS, EXCHANGES, RECORD_TABLES, TableSchema
from tests.harness.records import WINDOW_HOURS, kafka_messages

TOPICS = {ASSETS.table: "a", EXCHANGES.table: "e", ASSET_HISTORY.table: "h"}
"""Each record table's topic, by the short names ``tests.harness.records.HOSTILE`` uses."""


@dataclass(frozen=True)
class WorkerBatch:
    """One batch as the worker would have handled it."""

    labels: tuple[str, ...]
    """Each message's label, by its offset."""
    collected: pa.Table
    """``BatchRows``' rows as the worker collects them."""
    split: SplitBatch
    """What the sinks receive: each table's valid rows, once per key, and the quarantine."""

    def reasons(self) -> dict[str, str]:
        """Each quarantined message's reason, by its label."""
        quarantine = self.split.quarantine
        return dict(
            zip(
                (self.labels[offset] for offset in quarantine["offset"].to_pylist()),
                quarantine["reason"].to_pylist(),
                strict=True,
            )
        )

    def quarantined(self, label: str) -> dict[str, Any]:
        """The quarantine row of the message ``label``, as the sink receives it."""
        offset = self.labels.index(label)
        rows: list[dict[str, Any]] = self.split.quarantine.to_pylist()
        [row] = [row for row in rows if row["offset"] == offset]
        return row

    def rows(self, table: TableSchema) -> list[dict[str, Any]]:
        """The rows the sink receives for ``table``."""
        rows: list[dict[str, Any]] = self.split.rows[table.table].to_pylist()
        return rows

    def keys(self, table: TableSchema) -> list[Any]:
        """The key (``id``, ``exchange_id``) of each row the sink receives for ``table``."""
        keys: list[Any] = self.split.rows[table.table].column(table.key_column).to_pylist()
        return keys


@functools.cache
def _batch_rows(spark: SparkSession, snapshot_time_window_hours: float) -> BatchRows:
    """Made once per session and window, and kept, as the worker keeps its own: building the
    expressions is hundreds of calls into Spark's JVM."""
    return BatchRows(
        [(table, TOPICS[table.table]) for table in RECORD_TABLES], snapshot_time_window_hours
    )


def run_batch(
    spark: SparkSession,
    messages: Mapping[str, tuple[str, bytes | None]],
    snapshot_time_window_hours: float = WINDOW_HOURS,
) -> WorkerBatch:
    """``messages`` (label -> topic, value; the offsets follow their order) through the
    worker's batch path, with each record table reading its topic in ``TOPICS``."""
    frame = kafka_messages(spark, list(messages.values()))
    collected = _batch_rows(spark, snapshot_time_window_hours).of_messages(frame).toArrow()
    return WorkerBatch(
        labels=tuple(messages),
        collected=collected,
        split=split_batch(collected, list(RECORD_TABLES)),
    )
