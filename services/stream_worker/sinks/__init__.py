"""The two ways the stream worker writes a micro-batch, behind one protocol, chosen by a setting.

``merge`` (``merge.MergeSink``): a MERGE on the key, carrying the rows (or, for a big batch,
from a staging table loaded first). ``storage-write`` (``storage_write.StorageWriteSink``): an
append through a Storage Write API pending stream, committed atomically. Each does its own
start-up work in ``prepare``, so the worker knows nothing of either.
docs/stream-worker.md#the-two-sinks compares them.
"""

from __future__ import annotations

from google.cloud import bigquery

from services.stream_worker.batch_marker import CheckpointBatches
from services.stream_worker.checkpoint import Checkpoint
from services.stream_worker.sinks.merge import MergeSink
from services.stream_worker.sinks.protocol import BatchSink
from services.stream_worker.sinks.storage_write import StorageWriteSink
from services.stream_worker.sinks.storage_write_client import create_write_client
from shared.settings import WorkerSettings

__all__ = ["BatchSink", "create_sink"]


def create_sink(
    settings: WorkerSettings, client: bigquery.Client, checkpoint: Checkpoint
) -> BatchSink:
    """The sink ``stream_sink`` names, writing through ``client`` for the query of
    ``checkpoint``."""
    if settings.stream_sink == "storage-write":
        batches = CheckpointBatches(checkpoint.read_text, checkpoint.location)
        return StorageWriteSink(settings, client, create_write_client(settings), batches)
    return MergeSink(settings, client)
