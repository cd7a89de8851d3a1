"""The two ways the stream worker writes a micro-batch, behind one method, chosen by a setting.

``merge`` (``sink.WarehouseSink``): a MERGE on the key, carrying the rows (or, for a big batch,
from a staging table loaded first). ``storage-write``
(``storage_write_sink.StorageWriteSink``): an append through a Storage Write API pending stream,
committed atomically. docs/stream-worker.md#the-two-sinks compares them.
"""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa
from google.cloud import bigquery

from services.stream_worker.batch_marker import CheckpointBatches
from services.stream_worker.checkpoint import Checkpoint
from services.stream_worker.sink import WarehouseSink
from services.stream_worker.storage_write_client import create_write_client
from services.stream_worker.storage_write_sink import StorageWriteSink
from shared.schemas import TableSchema
from shared.settings import Settings


class BatchSink(Protocol):
    """Writes one table's rows of one micro-batch, exactly once however often it is called."""

    def write(self, table: TableSchema, rows: pa.Table, run_id: str, batch_id: int) -> int:
        """Write ``rows`` of batch ``batch_id`` (run ``run_id``) to ``table``; return how many
        were sent."""
        ...


def create_sink(settings: Settings, client: bigquery.Client, checkpoint: Checkpoint) -> BatchSink:
    """The sink ``stream_sink`` names, writing through ``client`` for the query of
    ``checkpoint``."""
    if settings.stream_sink == "storage-write":
        batches = CheckpointBatches(checkpoint.read_text, checkpoint.location)
        return StorageWriteSink(settings, client, create_write_client(settings), batches)
    return WarehouseSink(settings, client)
