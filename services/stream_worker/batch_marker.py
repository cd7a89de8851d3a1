"""Which micro-batch of which streaming query wrote a row, and when Spark planned that batch.

Both come from the query's checkpoint, which outlives every restart of the worker: Spark gives
a checkpoint a query id once (``metadata``) and numbers its batches in the offset log
(``offsets/N``), where each entry also records the batch's timestamp. A batch that runs again
after a crash keeps its number and its timestamp, so ``<query id>:<batch id>`` names the same
batch on every run, and a new checkpoint (a reset, a second worker) never reuses a name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

ReadCheckpointFile = Callable[[str], str | None]
"""The text of a file of the checkpoint by its relative path, None when absent
(``Checkpoint.read_text``)."""


class CheckpointMissing(Exception):
    """The checkpoint has no query id yet: the sink was asked to write before the query ran."""


def query_id_of(metadata: str) -> str:
    """The query id in the text of a checkpoint's ``metadata`` file (``{"id": "..."}``)."""
    return str(json.loads(metadata)["id"])


def batch_timestamp_of(offset_log_entry: str) -> datetime:
    """When Spark planned the batch of an ``offsets/N`` entry (its ``batchTimestampMs``).

    An entry is a version line, the batch's metadata as JSON, then one line per source.
    """
    lines = [line for line in offset_log_entry.splitlines() if line.strip()]
    milliseconds = int(json.loads(lines[1])["batchTimestampMs"])
    return datetime.fromtimestamp(milliseconds / 1000, UTC)


class CheckpointBatches:
    """The batch names and planning times of the query a checkpoint belongs to."""

    def __init__(self, read: ReadCheckpointFile, location: str) -> None:
        self._read = read
        self.location = location

    def query_id(self) -> str:
        """The checkpoint's query id; Spark writes it when the query first starts."""
        metadata = self._read("metadata")
        if metadata is None:
            raise CheckpointMissing(
                f"the checkpoint {self.location} has no metadata file, so its batches have no "
                "name yet; write only from a running streaming query on that checkpoint"
            )
        return query_id_of(metadata)

    def planned_at(self, batch_id: int) -> datetime | None:
        """When Spark planned batch ``batch_id``; None when its offset-log entry is gone."""
        entry = self._read(f"offsets/{batch_id}")
        return batch_timestamp_of(entry) if entry is not None else None


def batch_marker(query_id: str, batch_id: int) -> str:
    """The name a batch's rows carry: ``<query id>:<batch id>``."""
    return f"{query_id}:{batch_id}"
