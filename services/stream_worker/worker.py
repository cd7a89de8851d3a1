"""The stream worker's wiring: Kafka source -> transformations -> idempotent sink, on a trigger.

One streaming query reads both record topics with Spark's own Kafka source. Each micro-batch is
transformed, written exactly once and its offsets committed to the worker's consumer group
(``micro_batch``). A failing batch stops the query, and a query may fail to start; either way
the worker starts it again from its checkpoint after a pause that grows with failures in a row,
so the batch is run again and the stream keeps going. Before it touches the checkpoint it takes
the checkpoint's lease, so no second worker runs on it (``checkpoint_lease``); once, before the
first start, it makes sure of Kafka and the warehouse (``startup``) and lets the sink do its own
start-up work (``sinks``); before each start it removes what a killed worker left half-written
in the checkpoint (``checkpoint``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from services.stream_worker import batch_phases, metrics
from services.stream_worker.checkpoint import Checkpoint
from services.stream_worker.checkpoint_lease import LeaseKeeper, LeaseLost, checkpoint_lease
from services.stream_worker.interrupted_batch import (
    PY4J_CALLBACK_LOGGER,
    InterruptedBatchFilter,
)
from services.stream_worker.jars import worker_jars
from services.stream_worker.kafka_source import kafka_source_options
from services.stream_worker.micro_batch import BatchProcessor, describe_batches
from services.stream_worker.offsets import OffsetCommitter
from services.stream_worker.sinks import create_sink
from services.stream_worker.spark import build_spark_session
from services.stream_worker.startup import (
    prepare_dependencies,
    warn_if_checkpoint_bound_to_this_machine,
)
from shared.control_state import Desired, DesiredStateThread, restart_requested
from shared.log_summary import MinuteSummary
from shared.settings import WorkerSettings
from shared.warehouse import dataset_id

logger = logging.getLogger(__name__)

QUERY_NAME = "coinstream-stream-worker"
COMPONENT = "stream-worker"
"""The worker's name in the control service and the control topic."""
RESTART_PAUSE_SECONDS = 5.0
MAX_RESTART_PAUSE_SECONDS = 60.0
"""Failures in a row double the pause before the next start, up to this."""
GRACEFUL_STOP_SECONDS = 60.0


def first_line(error: BaseException) -> str:
    """What went wrong, in one line; for a JVM error, the Java exception rather than py4j's
    "An error occurred while calling o85.start"."""
    java_exception: Any = getattr(error, "java_exception", None)
    text = str(java_exception.toString()) if java_exception is not None else str(error)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(error).__name__


@dataclass
class WorkerStatus:
    """The worker's own state; ``/healthz`` reports a view of it (``models.WorkerHealth``)."""

    state: str = "STARTING"
    batches: int = 0
    last_batch_id: int | None = None
    last_batch_at: datetime | None = None
    last_batch_rows: dict[str, int] | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    batch_in_progress: int | None = None
    """The id of the micro-batch being written right now, if any."""


class StreamWorker:
    """Runs the streaming query until ``stop``; restarts it from its checkpoint after a failure."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.status = WorkerStatus()
        self._stopping = threading.Event()
        self._query_stopping = threading.Event()
        """Set just before the worker stops its query, cleared when it starts one: a batch that
        fails meanwhile was interrupted by the stop (``interrupted_batch``)."""
        self._spark: SparkSession | None = None
        self._query: StreamingQuery | None = None
        self._batches: BatchProcessor | None = None
        self._committer: OffsetCommitter | None = None
        self._checkpoint: Checkpoint | None = None
        self._run_id = "unstarted"
        """A fresh id each time the query starts; the sinks tell runs apart by it (``sinks``)."""
        self._failures_in_a_row = 0
        self._lease_lost: LeaseLost | None = None
        """Set when another worker may hold the checkpoint now: nothing more may be written."""
        self._batch_summary = MinuteSummary(logger, describe_batches)
        """The first batch's line at INFO, the rest at DEBUG, one INFO line a minute."""

    # --- the micro-batch -----------------------------------------------------------------------

    def process_batch(self, batch: DataFrame, batch_id: int) -> None:
        """Spark's ``foreachBatch``: the batch written exactly once (``micro_batch``), then
        noted in the worker's state, counted and logged."""
        assert self._batches is not None
        self.status.batch_in_progress = batch_id
        try:
            done = self._batches.process(batch, batch_id, self._run_id)
        except Exception:
            if self._query_stopping.is_set():
                logger.info(
                    "batch %d: interrupted by the stop; it runs again from the checkpoint at "
                    "the next start",
                    batch_id,
                )
            raise
        finally:
            self.status.batch_in_progress = None
        self._failures_in_a_row = 0
        spark_trigger = batch_phases.previous_trigger(
            self._query.lastProgress if self._query is not None else None, batch_id
        )
        self.status.batches += 1
        self.status.last_batch_id = batch_id
        self.status.last_batch_at = datetime.now(UTC)
        self.status.last_batch_rows = done.rows
        done.report(spark_trigger, self._batch_summary)

    def _ensure_may_write(self) -> None:
        """Raise ``LeaseLost`` once another worker may hold the checkpoint."""
        if self._lease_lost is not None:
            raise self._lease_lost

    # --- the query -----------------------------------------------------------------------------

    def _setup(self) -> SparkSession:
        """Once per process: Kafka and the warehouse ready, Spark up, the sink prepared.

        When Kafka or the warehouse does not answer at once (under ``make run`` they start
        beside the worker), Spark's session (its JVM, some seconds) starts while the worker
        waits for them: the first batch waits for the later of the two, not for their sum. A
        warehouse that can never do (``WarehouseIncompatible``) is found before any JVM starts.
        """
        warn_if_checkpoint_bound_to_this_machine(self.settings)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spark-start") as starter:
            spark_started: Future[SparkSession] | None = None

            def waiting(reason: str) -> None:
                nonlocal spark_started
                self._note_waiting(reason)
                if spark_started is None:
                    spark_started = starter.submit(self._start_spark)

            client = prepare_dependencies(self.settings, on_wait=waiting)
            if spark_started is None:
                # Started off the main thread either way: there pyspark leaves the worker's own
                # SIGINT handler (a clean stop) in place instead of its own.
                spark_started = starter.submit(self._start_spark)
            spark = spark_started.result()
        self.status.last_error = None
        self._committer = OffsetCommitter(self.settings)
        self._checkpoint = Checkpoint(spark, self.settings.checkpoint_location)
        sink = create_sink(self.settings, client, self._checkpoint)
        sink.prepare()
        self._batches = BatchProcessor(
            self.settings, spark, sink, self._committer, self._checkpoint, self._ensure_may_write
        )
        return spark

    def _start_spark(self) -> SparkSession:
        started = time.monotonic()
        spark = build_spark_session(self.settings, QUERY_NAME, worker_jars(self.settings))
        logger.info(
            "Spark %s up in %.1f s (master %s)",
            spark.version,
            time.monotonic() - started,
            self.settings.spark_master_url,
        )
        return spark

    def _note_waiting(self, reason: str) -> None:
        self.status.last_error = reason

    def _start_query(self, spark: SparkSession) -> StreamingQuery:
        settings = self.settings
        assert self._checkpoint is not None and self._batches is not None
        self._ensure_may_write()  # another worker's writes in flight look unfinished
        removed = self._checkpoint.remove_unfinished_writes()
        if removed:
            logger.warning(
                "removed the unfinished checkpoint writes a killed worker left (never state): %s",
                ", ".join(removed),
            )
        self._run_id = uuid.uuid4().hex[:12]
        self._query_stopping.clear()
        messages = spark.readStream.format("kafka").options(**kafka_source_options(settings)).load()
        query = (
            self._batches.rows_of(messages)
            .writeStream.queryName(QUERY_NAME)
            .foreachBatch(self.process_batch)
            .option("checkpointLocation", settings.checkpoint_location)
            .trigger(processingTime=f"{settings.stream_trigger_seconds} seconds")
            .start()
        )
        self.status.state = "RUNNING"
        logger.info(
            "streaming %s and %s into %s every %g s (checkpoint %s, run %s)",
            settings.topic_assets,
            settings.topic_exchanges,
            dataset_id(settings),
            settings.stream_trigger_seconds,
            settings.checkpoint_location,
            self._run_id,
        )
        return query

    def run(self) -> None:
        """Hold the checkpoint's lease and run the query until ``stop``.

        The lease comes first: before the worker waits for Kafka and the warehouse and before
        it touches the checkpoint, so a second worker refuses at once (``CheckpointHeld``, one
        line naming the holder), and leaves the first's files alone. It is released after a
        clean stop. A lease lost while running stops the query at once, without waiting for
        its batch, and ends ``run`` with ``LeaseLost``: another worker may be writing.
        """
        quiet_interruptions = InterruptedBatchFilter(self._query_stopping)
        logging.getLogger(PY4J_CALLBACK_LOGGER).addFilter(quiet_interruptions)
        try:
            self._run_with_lease()
        finally:
            logging.getLogger(PY4J_CALLBACK_LOGGER).removeFilter(quiet_interruptions)

    def _run_with_lease(self) -> None:
        lease = checkpoint_lease(self.settings)
        if lease is None:
            logger.warning(
                "the checkpoint %s is on a file system the worker takes no lease on; make sure "
                "no other stream worker runs on it (two would both write its batches)",
                self.settings.checkpoint_location,
            )
            self._run_query()
            return
        lease.acquire()
        logger.info("holding the lease on the checkpoint %s", lease.location)
        keeper = LeaseKeeper(lease, self._lose_lease)
        keeper.start()
        try:
            self._run_query()
        finally:
            keeper.stop()
            if self._lease_lost is None:
                lease.release()
        if self._lease_lost is not None:
            raise self._lease_lost

    def _lose_lease(self, error: LeaseLost) -> None:
        """Stop writing at once: from the lease's thread, the moment the lease is lost."""
        logger.error("%s; stopping the query at once, without waiting for its batch", error)
        self._lease_lost = error
        self._stopping.set()
        query = self._query
        if query is not None and query.isActive:
            self._stop_query(query)

    def _run_query(self) -> None:
        """Run until ``stop``, obeying the desired state the control service sets.

        RUNNING: the query runs; a failed query is started again from its checkpoint after a
        pause. PAUSED or STOPPED: the query is stopped after its batch in progress, and nothing
        is consumed until the desired state is RUNNING again. A restart request (a new
        ``restart_generation``) stops the query and starts it again.
        """
        control = DesiredStateThread(self.settings, client_id="stream-worker-control")
        control.start()  # it reads the desired state while Spark starts
        try:
            self._spark = self._setup()
        except BaseException:
            control.stop()
            raise
        while not control.wait_caught_up(5.0):
            if self._stopping.is_set():
                control.stop()
                self._shutdown()
                return
            logger.warning("waiting to read the desired state from %s", self.settings.topic_control)
        generation = control.get(COMPONENT).restart_generation
        try:
            while not self._stopping.is_set():
                desired = control.get(COMPONENT)
                if desired.state is not Desired.RUNNING:
                    if self.status.state != desired.state.value:
                        logger.info("desired state %s: consuming nothing", desired.state.value)
                    self.status.state = desired.state.value
                    self._stopping.wait(0.5)
                    continue
                generation = desired.restart_generation
                try:
                    self._query = self._start_query(self._spark)
                except Exception as error:  # any start error is retried, as a failed batch is
                    self._note_failure("the streaming query did not start", error)
                    continue
                stopped_on_request = False
                while not self._stopping.is_set() and self._query.isActive:
                    try:
                        self._query.awaitTermination(1)
                    except StreamingQueryException:
                        break  # it failed; query.exception() says why, below
                    progress = self._query.lastProgress
                    if progress:
                        metrics.INPUT_ROWS_PER_SECOND.set(progress.get("inputRowsPerSecond") or 0.0)
                    desired = control.get(COMPONENT)
                    if desired.state is not Desired.RUNNING or restart_requested(
                        generation, desired
                    ):
                        logger.info(
                            "desired state %s (restart generation %d): stopping the query",
                            desired.state.value,
                            desired.restart_generation,
                        )
                        self._stop_query_gracefully(self._query)
                        stopped_on_request = True
                if self._stopping.is_set() or stopped_on_request:
                    continue
                self._note_failure("streaming query failed", self._query.exception())
        finally:
            control.stop()
            self._shutdown()

    def _note_failure(self, what: str, error: BaseException | None) -> None:
        """Report a failed start or batch, then wait before the next try, longer each time."""
        self._failures_in_a_row += 1
        pause = min(
            RESTART_PAUSE_SECONDS * 2 ** (self._failures_in_a_row - 1), MAX_RESTART_PAUSE_SECONDS
        )
        metrics.BATCH_FAILURES.inc()
        self.status.state = "FAILED"
        self.status.last_error = first_line(error) if error else "query stopped"
        self.status.last_error_at = datetime.now(UTC)
        logger.error(
            "%s: %s; starting it again from the checkpoint in %g s (failure %d in a row)",
            what,
            self.status.last_error,
            pause,
            self._failures_in_a_row,
        )
        self._stopping.wait(pause)

    def _stop_query_gracefully(self, query: StreamingQuery) -> None:
        """Let the batch in progress finish (up to a limit), then stop the query.

        Under a steady input the next trigger starts as soon as one ends, so "wait until no
        trigger is active" could wait for ever; this waits for the batch that was running when
        asked. A batch that starts in between is interrupted, and runs again from the
        checkpoint on the next start, where the idempotent write makes that harmless.
        """
        running = self.status.batch_in_progress
        deadline = time.monotonic() + GRACEFUL_STOP_SECONDS
        while (
            running is not None
            and self.status.batch_in_progress == running
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        self._stop_query(query)

    def _stop_query(self, query: StreamingQuery) -> None:
        """Stop the query now, a batch in progress interrupted (``interrupted_batch``)."""
        self._query_stopping.set()
        query.stop()

    def stop(self) -> None:
        self._stopping.set()

    def _shutdown(self) -> None:
        """Let a batch in progress finish (up to a limit; not with the lease lost), then stop
        the query and Spark."""
        if self._query is not None and self._query.isActive:
            if self._lease_lost is not None:
                self._stop_query(self._query)
            else:
                self._stop_query_gracefully(self._query)
        self.status.state = "STOPPED"
        if self._committer is not None:
            self._committer.close()
        if self._spark is not None:
            self._spark.stop()
        logger.info("stream worker stopped")
