"""Records Kafka deleted before the worker read them: found, counted and written down.

A worker stopped or paused longer than the topics' retention comes back to offsets that no
longer exist. With ``stream_fail_on_data_loss`` off (the default) Spark skips them with only a
warning in its own log; this module finds each skipped range by comparing what Spark planned to
read (the checkpoint's offset log) with what the batch held, so the worker can count it in
``coinstream_stream_offsets_lost_total``, log it and store one quarantine row per range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from services.stream_worker.checkpoint import PartitionOffsets


@dataclass(frozen=True)
class LostRange:
    """Offsets ``first`` to ``last`` of a partition, planned into a batch but never read."""

    topic: str
    partition: int
    first: int
    last: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    @property
    def reason(self) -> str:
        """What the quarantine row and the log line say."""
        return (
            f"offsets {self.first}-{self.last} of {self.topic}/{self.partition} "
            "lost to retention before they were read"
        )


def lost_ranges(
    start: PartitionOffsets, end: PartitionOffsets, coordinates: pa.Table
) -> list[LostRange]:
    """The offsets between ``start`` and ``end`` that the batch did not contain, as ranges.

    The record topics are neither compacted nor written in transactions, so their offsets have
    no holes of their own: an offset Spark planned to read and did not is a record Kafka
    deleted first (with ``failOnDataLoss`` off Spark skips it with only a warning). A partition
    with no start (new since the last batch) is read from its earliest offset and not judged.
    """
    seen: dict[tuple[str, int], list[int]] = {}
    for topic, partition, offset in zip(
        coordinates["topic"].to_pylist(),
        coordinates["partition"].to_pylist(),
        coordinates["offset"].to_pylist(),
        strict=True,
    ):
        seen.setdefault((topic, partition), []).append(offset)
    ranges = []
    for (topic, partition), stop in sorted(end.items()):
        expected = start.get((topic, partition))
        if expected is None:
            continue
        for offset in [*sorted(set(seen.get((topic, partition), []))), stop]:
            if offset > expected:
                ranges.append(LostRange(topic, partition, expected, min(offset, stop) - 1))
            expected = max(expected, offset + 1)
    return [lost for lost in ranges if lost.count > 0]


def with_lost_ranges(quarantined: pa.Table, lost: list[LostRange]) -> pa.Table:
    """The batch's quarantine rows, plus one row per lost range, keyed by its first offset.

    The quarantine table's key is (topic, partition, offset), so a batch that runs again
    writes the same rows, which its MERGE leaves as they are.
    """
    if not lost:
        return quarantined
    schema = pa.schema([field.with_nullable(True) for field in quarantined.schema])
    now = datetime.now(UTC)
    rows = [
        {
            "topic": gap.topic,
            "partition": gap.partition,
            "offset": gap.first,
            "kafka_timestamp": None,
            "raw_value": None,
            "reason": gap.reason,
            "processing_timestamp": now,
        }
        for gap in lost
    ]
    return pa.concat_tables([quarantined.cast(schema), pa.Table.from_pylist(rows, schema=schema)])
