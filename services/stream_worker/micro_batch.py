"""One micro-batch, from Spark's DataFrame to the warehouse and the consumer group.

The batch is read, typed and collected in one Spark job (``transforms.BatchRows``, applied to
the stream once when the query starts) and split into tables in Arrow (``arrow_batch``); each
table's rows go through the sink, exactly once however often the batch runs (``sinks``); then
its offsets are committed to the worker's consumer group (``offsets``) so that lag is visible.
Offsets Kafka deleted before they were read become quarantine rows (``data_loss``). Each phase
is timed (``batch_phases``) into the batch's log line and the phase histogram.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from services.stream_worker import batch_phases, metrics
from services.stream_worker.arrow_batch import split_batch
from services.stream_worker.checkpoint import Checkpoint
from services.stream_worker.data_loss import LostRange, lost_ranges, with_lost_ranges
from services.stream_worker.faults import FaultPoint, kill_worker
from services.stream_worker.offsets import OffsetCommitter, next_offsets
from services.stream_worker.sinks import BatchSink
from services.stream_worker.transforms import BatchRows
from shared.log_summary import MinuteSummary, SummaryWindow
from shared.schemas import ASSET_HISTORY, ASSETS, EXCHANGES, QUARANTINE, RECORD_TABLES, TableSchema
from shared.settings import WorkerSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WrittenBatch:
    """What one micro-batch wrote, and what it took, for the worker's state, metrics and log."""

    batch_id: int
    rows: dict[str, int]
    """Rows sent per table, the quarantine included."""
    lost: list[LostRange]
    seconds: float
    phases: batch_phases.BatchPhases

    def report(self, previous_trigger_ms: dict[str, int], summary: MinuteSummary) -> None:
        """Count the batch in the metrics and log its line (with Spark's timing of the trigger
        before it, ``batch_phases.previous_trigger``) at the level ``summary`` gives it: the
        first batch at INFO, the rest at DEBUG, added up in a line a minute."""
        for gap in self.lost:
            metrics.OFFSETS_LOST.labels(gap.topic).inc(gap.count)
            logger.warning(
                "batch %d: %s (%d records); a quarantine row records it",
                self.batch_id,
                gap.reason,
                gap.count,
                extra={"batch_id": self.batch_id, "topic": gap.topic, "lost": gap.count},
            )
        metrics.BATCH_DURATION.observe(self.seconds)
        self.phases.observe()
        for table_name, count in self.rows.items():
            if table_name == QUARANTINE.table:
                metrics.ROWS_QUARANTINED.inc(count)
            else:
                metrics.ROWS_WRITTEN.labels(table_name).inc(count)
        metrics.LAST_BATCH.set(time.time())
        logger.log(
            summary.line_level(),
            "batch %d: %s in %.2f s",
            self.batch_id,
            ", ".join(f"{count} {name}" for name, count in self.rows.items()),
            self.seconds,
            extra={
                "batch_id": self.batch_id,
                "rows": self.rows,
                "seconds": round(self.seconds, 3),
                "phases": self.phases.rounded(),
                "previous_trigger_ms": previous_trigger_ms,
            },
        )
        summary.add(self.rows, self.seconds)


def describe_batches(window: SummaryWindow) -> str:
    """``58 batches in the last 60 s: 5800 assets, 1160 exchanges; median 0.61 s, ...``."""
    rows = ", ".join(f"{count} {table}" for table, count in window.totals.items() if count)
    return (
        f"{window.events} batch(es) in the last {window.seconds:.0f} s: {rows or 'no rows'}; "
        f"{window.durations_text()}"
    )


class BatchProcessor:
    """Transforms, writes and commits the micro-batches of one worker, one after another."""

    def __init__(
        self,
        settings: WorkerSettings,
        spark: SparkSession,
        sink: BatchSink,
        committer: OffsetCommitter,
        checkpoint: Checkpoint,
        ensure_may_write: Callable[[], None],
    ) -> None:
        """``ensure_may_write`` raises when the worker may no longer write (its lease lost)."""
        self.settings = settings
        self.spark = spark
        self.sink = sink
        self.committer = committer
        self.checkpoint = checkpoint
        self.ensure_may_write = ensure_may_write
        self._batch_rows = BatchRows(self._record_tables(), settings.snapshot_time_window_hours)

    def rows_of(self, messages: DataFrame) -> DataFrame:
        """The Kafka source's stream as the rows ``process`` writes (``BatchRows``).

        Applied once, to the streaming DataFrame when the query starts, so each micro-batch
        arrives with its query defined and analysed. Defined per batch instead, the three
        selects and their planning cost a steady batch 0.32 s and 0.14 s of Py4J calls and
        analysis before its job began: ``python -m bench.batch_profile --batches 12 --warmup
        2``, back to back on a quiet 2-core machine, median batch 1.163 s -> 0.677 s, Spark's
        ``triggerExecution`` 1.354 s -> 1.008 s (Spark now plans each batch in its own
        ``queryPlanning``, 0.16 s).

        Its partitions are coalesced to one per core Spark has (``defaultParallelism``): the
        Kafka source makes a task per topic partition, six to nine a steady batch, each
        scheduled, started and reporting back on its own while two cores take them in waves.
        The same profile, two runs each: ``spark.collect.batch`` 0.425 / 0.445 s as is, 0.359 /
        0.395 s coalesced to two, 0.413 s coalesced to one (a backlog batch then reads on one
        core only).
        """
        return self._batch_rows.of_messages(messages).coalesce(
            self.spark.sparkContext.defaultParallelism
        )

    def process(self, rows: DataFrame, batch_id: int, run_id: str) -> WrittenBatch:
        """Write batch ``batch_id`` of run ``run_id`` (its ``rows_of`` rows) exactly once, then
        commit its offsets; the batch's report is for the caller to make once it has noted it."""
        started = time.monotonic()
        with batch_phases.recording() as phases:
            collected = batch_phases.collect_arrow(rows, "batch")
            with batch_phases.phase("arrow.split"):
                split = split_batch(collected, list(RECORD_TABLES))
            lost = self._lost_ranges(batch_id, split.coordinates)
            self.ensure_may_write()  # a successor may be writing: this batch is theirs
            written: dict[str, int] = {}
            for table in RECORD_TABLES:
                written[table.table] = self.sink.write(
                    table, split.rows[table.table], run_id, batch_id
                )
            written[QUARANTINE.table] = self.sink.write(
                QUARANTINE, with_lost_ranges(split.quarantine, lost), run_id, batch_id
            )
            self._fault_point("after-merge", written)
            with batch_phases.phase("offset_commit"):
                self.committer.commit(next_offsets(split.coordinates))
            self._fault_point("after-commit", written)
        return WrittenBatch(batch_id, written, lost, time.monotonic() - started, phases)

    def _record_tables(self) -> list[tuple[TableSchema, str]]:
        """Each record table, with the topic its rows come from."""
        topics = {
            ASSETS.table: self.settings.topic_assets,
            EXCHANGES.table: self.settings.topic_exchanges,
            ASSET_HISTORY.table: self.settings.topic_history,
        }
        return [(table, topics[table.table]) for table in RECORD_TABLES]

    def _lost_ranges(self, batch_id: int, coordinates: pa.Table) -> list[LostRange]:
        """Offsets Spark planned into this batch that Kafka had deleted (see ``data_loss``)."""
        with batch_phases.phase("checkpoint.planned_offsets"):
            planned = self.checkpoint.planned_offsets(batch_id)
        if planned is None:
            return []
        start, end = planned
        return lost_ranges(start, end, coordinates)

    def _fault_point(self, point: FaultPoint, written: dict[str, int]) -> None:
        """Die here if the settings ask for it (fault injection; see ``faults``)."""
        if self.settings.worker_fault_point == point and sum(written.values()) > 0:
            kill_worker(self.spark, point)
