"""The Spark checkpoint as the worker reads and repairs it, on any file system Spark uses.

Spark writes every checkpoint file (``offsets/N``, ``commits/N``, ``sources/0/0``, ``metadata``)
to a temporary file beside it, ``.N.<uuid>.tmp`` with its checksum ``..N.<uuid>.tmp.crc``, and
renames it into place: a committed file is whole or absent. A process killed before the rename
leaves the temporary file behind. Spark never reads one back as state, but at batch 0 it refuses
an ``offsets`` folder that is not empty (``STATE_STORE_CHECKPOINT_LOCATION_NOT_EMPTY``), so a
kill during the very first offset-log write stopped every later start. Temporary files are
provably not committed state, so the worker removes them before it starts its query: it is the
only writer of its checkpoint, since it holds the checkpoint's lease (``checkpoint_lease``)
from before this until it stops.

The offset log also says which Kafka offsets each batch was planned to read, which is how the
worker counts records that retention deleted before they were read (``data_loss.lost_ranges``).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
UNFINISHED_WRITE = re.compile(rf"^(\.[^/]+\.{_UUID}\.tmp|\.\.[^/]+\.{_UUID}\.tmp\.crc)$")
"""The name of a temporary file Spark's checkpoint manager renames into place once written."""

PartitionOffsets = dict[tuple[str, int], int]
"""Kafka offsets by (topic, partition)."""


def is_unfinished_write(name: str) -> bool:
    """True for the name of a checkpoint file Spark had not finished writing."""
    return UNFINISHED_WRITE.match(name) is not None


def kafka_offsets(log_entry: str) -> PartitionOffsets:
    """The Kafka source's offsets in an offset-log or initial-offsets entry.

    An ``offsets/N`` entry is a version line, a metadata line, then one line per source (the
    worker has one); ``sources/0/0`` is a version line and the offsets, after a NUL byte Spark
    keeps for old readers. Either way the offsets are the last line, as
    ``{"topic": {"partition": offset}}``.
    """
    lines = [line for line in log_entry.replace("\x00", "").splitlines() if line.strip()]
    offsets: dict[str, dict[str, int]] = json.loads(lines[-1])
    return {
        (topic, int(partition)): int(offset)
        for topic, by_partition in offsets.items()
        for partition, offset in by_partition.items()
    }


class Checkpoint:
    """One checkpoint location, through Hadoop's file system (a local path, gs://, hdfs://)."""

    def __init__(self, spark: SparkSession, location: str) -> None:
        # Hadoop's FileSystem has no Python API; the session's JVM has it.
        jvm: Any = spark._jvm
        self._jvm = jvm
        self._root: Any = jvm.org.apache.hadoop.fs.Path(location)
        self._fs: Any = self._root.getFileSystem(spark._jsc.hadoopConfiguration())
        self.location = location

    def remove_unfinished_writes(self) -> list[str]:
        """Delete the temporary files of writes a killed process left; return their paths.

        Call it only while holding the checkpoint's lease and running no query on it: another
        worker's files in flight look the same. On a checksummed file system (a local path)
        Hadoop lists no ``.crc`` files and deletes each with its file.
        """
        if not self._fs.exists(self._root):
            return []
        removed = []
        files = self._fs.listFiles(self._root, True)
        while files.hasNext():
            path = files.next().getPath()
            if is_unfinished_write(path.getName()):
                self._fs.delete(path, False)
                removed.append(str(path))
        return sorted(removed)

    def read_text(self, relative: str) -> str | None:
        """A checkpoint file's text; None when it does not exist."""
        path = self._jvm.org.apache.hadoop.fs.Path(self._root, relative)
        if not self._fs.exists(path):
            return None
        stream = self._fs.open(path)
        try:
            return str(self._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
        finally:
            stream.close()

    def planned_offsets(self, batch_id: int) -> tuple[PartitionOffsets, PartitionOffsets] | None:
        """Where batch ``batch_id`` starts and ends reading, per partition, as Spark planned it.

        Spark writes ``offsets/N`` (the end) before it runs batch N; the start is the end of
        batch N-1, or the initial offsets for batch 0. None when either is not there.
        """
        end = self.read_text(f"offsets/{batch_id}")
        start = self.read_text(f"offsets/{batch_id - 1}" if batch_id else "sources/0/0")
        if end is None or start is None:
            return None
        return kafka_offsets(start), kafka_offsets(end)
