"""Both warehouse sinks as a sink-level test builds them: the MERGE sink, and the Storage
Write API sink reading its batch names from a checkpoint folder in Spark's own file format
(``metadata`` and ``offsets/N``, as a running query leaves them)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from services.stream_worker.arrow_batch import ARROW_TYPES
from services.stream_worker.batch_marker import CheckpointBatches
from services.stream_worker.sinks import BatchSink
from services.stream_worker.sinks.merge import MergeSink
from services.stream_worker.sinks.storage_write import StorageWriteSink
from services.stream_worker.sinks.storage_write_client import create_write_client
from shared.schemas import TableSchema
from shared.settings import Settings
from shared.warehouse import create_bigquery_client

SINKS = ("merge", "storage-write")


def arrow_rows(table: TableSchema, rows: list[dict[str, Any]]) -> pa.Table:
    """``rows`` as the worker hands them to a sink: the table's own columns, typed."""
    schema = pa.schema([(column.name, ARROW_TYPES[column.type]) for column in table.columns])
    return pa.Table.from_pylist(
        [{name: row.get(name) for name in schema.names} for row in rows], schema=schema
    )


class SparkCheckpointFolder:
    """A checkpoint folder with what Spark writes there: a query id and planned batches."""

    def __init__(self, path: Path, query_id: str | None = None) -> None:
        self.path = path
        (path / "offsets").mkdir(parents=True, exist_ok=True)
        (path / "metadata").write_text(json.dumps({"id": query_id or str(uuid.uuid4())}) + "\n")

    def plan(self, batch_id: int, at: datetime | None = None, end: int | None = None) -> None:
        """Write ``offsets/<batch_id>`` as Spark does before it runs the batch: reading up to
        offset ``end`` (by default the batch id) of the topic's partition 0."""
        millis = int((at or datetime.now(UTC)).timestamp() * 1000)
        metadata = {"batchWatermarkMs": 0, "batchTimestampMs": millis, "conf": {}}
        until = batch_id if end is None else end
        entry = f'v1\n{json.dumps(metadata)}\n{{"topic":{{"0":{until}}}}}'
        (self.path / "offsets" / str(batch_id)).write_text(entry)

    def read(self, relative: str) -> str | None:
        file = self.path / relative
        return file.read_text() if file.is_file() else None

    def batches(self) -> CheckpointBatches:
        return CheckpointBatches(self.read, str(self.path))


def build_sink(kind: str, settings: Settings, checkpoint: SparkCheckpointFolder) -> BatchSink:
    """A new sink of ``kind``, as a worker (re)started on ``checkpoint`` builds it."""
    client = create_bigquery_client(settings)
    if kind == "merge":
        return MergeSink(settings, client)
    return StorageWriteSink(settings, client, create_write_client(settings), checkpoint.batches())
