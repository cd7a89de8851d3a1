"""Which micro-batch of which streaming query wrote a row, which offsets it read, and when Spark
planned that batch.

All three come from the query's checkpoint, which outlives every restart of the worker: Spark
gives a checkpoint a query id once (``metadata``) and numbers its batches in the offset log
(``offsets/N``), where each entry records the offsets the batch reads up to and its timestamp;
the batch starts where the one before it ended (``offsets/N-1``; ``sources/0/0`` for batch 0).
A batch that runs again after a crash keeps its number, range and timestamp, so
``<query id>:<batch id>:<range>`` names the same batch on every run, and a new checkpoint (a
reset, a second worker) never reuses a name.

The range is in the name because the batch id alone does not pin the data: a checkpoint
restored from an older copy (a bucket's earlier object versions) numbers its next batches again
from where that copy ended, over offsets the first batches of those numbers never read. With
``<query id>:<batch id>`` alone, the rerun check would take such a batch for the one already
stored and skip its new records.

Rows stored before the range was part of the name carry ``<query id>:<batch id>``
(``BatchMarker.offset_range`` None). Such a marker names no range, so it never matches a
batch's marker: the worst it can cost is one batch stored twice right after an upgrade (a
batch the old version committed and a kill kept Spark from committing), a copy every view and
dashboard query reads once, where matching it could skip a restored checkpoint's new records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from services.stream_worker.checkpoint import PartitionOffsets, kafka_offsets

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
        self._offset_range: tuple[int, str] | None = None
        """The last batch's range: the sink asks once per table of a batch."""

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

    def offset_range(self, batch_id: int) -> str:
        """The digest of the offsets batch ``batch_id`` reads from and up to (``range_digest``).

        Spark writes ``offsets/N`` before it runs batch N, so the end is there while the batch
        runs; a start Spark no longer keeps leaves the digest to the end alone.
        """
        if self._offset_range is not None and self._offset_range[0] == batch_id:
            return self._offset_range[1]
        end = self._read(f"offsets/{batch_id}")
        if end is None:
            raise CheckpointMissing(
                f"the checkpoint {self.location} has no offsets/{batch_id}, so batch {batch_id} "
                "has no offset range; write only from a running streaming query on that "
                "checkpoint, which writes it before it runs the batch"
            )
        start = self._read(f"offsets/{batch_id - 1}" if batch_id else "sources/0/0")
        digest = range_digest(kafka_offsets(start) if start else None, kafka_offsets(end))
        self._offset_range = (batch_id, digest)
        return digest


def range_digest(start: PartitionOffsets | None, end: PartitionOffsets) -> str:
    """Sixteen hex digits that change with any partition's start or end offset."""

    def listed(offsets: PartitionOffsets) -> list[list[str | int]]:
        return sorted([topic, partition, offset] for (topic, partition), offset in offsets.items())

    canonical = json.dumps(
        [listed(start) if start is not None else None, listed(end)], separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def batch_marker(query_id: str, batch_id: int, offset_range: str) -> str:
    """The name a batch's rows carry: ``<query id>:<batch id>:<offset range digest>``."""
    return f"{query_id}:{batch_id}:{offset_range}"


@dataclass(frozen=True)
class BatchMarker:
    """A ``stream_batch`` value read back: either form (see the module's docstring)."""

    query_id: str
    batch_id: int
    offset_range: str | None
    """None for a marker written before markers named their range."""

    @classmethod
    def parse(cls, marker: str) -> BatchMarker:
        parts = marker.split(":")
        if len(parts) not in (2, 3) or not parts[1].isdigit():
            raise ValueError(
                f"{marker!r} is not a batch marker (<query id>:<batch id>[:<offset range>])"
            )
        return cls(parts[0], int(parts[1]), parts[2] if len(parts) == 3 else None)

    def same_batch_as(self, other: BatchMarker) -> bool:
        """True only for the same query, batch and offset range: a marker without a range
        names no range, so it is never the same batch as any marker (the module says why)."""
        return self.offset_range is not None and self == other
