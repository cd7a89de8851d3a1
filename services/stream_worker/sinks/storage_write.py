"""The Storage Write API sink (``storage-write``): each table's rows through a pending stream,
committed atomically, so a half-written batch is never visible and a rerun adds nothing.

Per table and batch: create a PENDING stream, append the rows (Arrow, from offset 0, in
requests under the API's 10 MB), finalize it, then ``BatchCommitWriteStreams``. Until that
commit nothing of the stream is visible; the commit makes all of it visible at once, and a
stream is committed at most once. A batch commit takes only streams of one table, so the
tables of one micro-batch are committed one after another, and a worker killed between two
commits leaves some tables of the batch written and others not.

**Why a rerun is a no-op.** Spark runs the batch again after such a crash (or after a crash
between the last commit and Spark's own checkpoint commit), with the same records, the same
batch id and the same offset range. Every row the sink appends carries its batch's marker,
``<query id>:<batch id>:<offset range>`` (``stream_batch``; the query id is the checkpoint's,
which survives restarts and differs for a new checkpoint, and the range is a digest of the
offsets the checkpoint's offset log says the batch reads: ``batch_marker``). Before committing a
table's rows the sink asks whether the table already holds that marker; if it does, that
table's share of the batch was committed by an earlier run and is skipped. A commit is the one
step that makes rows visible, so "the marker is there" and "this table's rows are there" are
the same fact, whatever point the worker was killed at: before the commit nothing is there and
the rerun writes it all; after it, the rerun skips it. A commit whose answer was lost fails the
batch the same way; its rerun starts after the worker's restart pause (5 s or more) and a new
start of the query, while a commit is one call that BigQuery completes or refuses at once, so
the check never races it. A batch of a checkpoint restored from an older copy can carry an old
batch id over other offsets: its marker differs, so its records are written, never skipped. A
marker written before markers named their range (``<query id>:<batch id>``) never matches
(``batch_marker`` says why).

**Why the check is cheap.** Spark runs batches one after another and commits each to its
checkpoint before planning the next, so only the *first* batch a run executes can be a rerun.
The sink checks only then (once per table per start of the query); every later batch of the
run appends without reading anything. The check itself reads one column of the partitions the
earlier attempt can have written: for a table partitioned on a column of the rows themselves
(``asset_history`` on ``time``) exactly the batch's range of it; for a table partitioned on
``processing_timestamp`` the partitions from the moment Spark planned the batch (its
``batchTimestampMs`` in the offset log: the earlier attempt stamped its rows after that, on
the same driver's clock) onward, which is the current day's partition, or two around
midnight. Without that entry it falls back to the MERGE sink's look-back.

**A record published twice** (an ingestor resending after an outage) arrives at another offset,
in another batch, so no batch marker matches it: this sink stores both copies. Storing it once
would mean looking up every batch's keys in the table (the MERGE's scan, which this sink exists
to avoid), so duplicates are resolved where rows are read: every view and dashboard query picks
one row per key and snapshot (docs/warehouse.md#two-sinks-one-guarantee).

Runs must not overlap on one checkpoint: the worker holds the checkpoint's lease while it
runs (``checkpoint_lease``). The ``run_id`` the worker passes is fresh each time it starts the
query, which is how the sink knows a run's first batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry, if_exception_type
from google.cloud import bigquery
from google.cloud.bigquery_storage_v1 import BigQueryWriteClient, types

from services.stream_worker.arrow_batch import ARROW_TYPES
from services.stream_worker.batch_marker import BatchMarker, CheckpointBatches, batch_marker
from services.stream_worker.batch_phases import phase
from services.stream_worker.sinks.event_time import oldest_event
from services.stream_worker.sinks.storage_write_client import table_path
from shared.schemas import STREAM_BATCH, TableSchema
from shared.settings import WorkerSettings
from shared.warehouse import UNREACHABLE_ERRORS, run_query, table_id

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 8 * 1024 * 1024
"""Rows per append request stay under this; the API takes at most 10 MB per request."""
PLANNED_AT_SLACK = timedelta(minutes=1)
"""Margin below the batch's planning time for rounding; it never moves the check a partition."""

TRANSIENT_ERRORS = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.DeadlineExceeded,
    api_exceptions.InternalServerError,
)


class StorageWriteFailed(Exception):
    """The Storage Write API refused an append or a commit; the batch fails and runs again."""


def arrow_schema(table: TableSchema) -> pa.Schema:
    """The Arrow schema of the rows the sink appends: every stored column, marker included."""
    return pa.schema(
        [
            pa.field(column.name, ARROW_TYPES[column.type], nullable=not column.required)
            for column in table.stored_columns
        ]
    )


def marked_rows(table: TableSchema, rows: pa.Table, marker: str) -> pa.Table:
    """``rows`` as the table stores them: its columns in order and types, and the marker."""
    schema = arrow_schema(table)
    columns = [
        pa.array([marker] * rows.num_rows, pa.string())
        if field.name == STREAM_BATCH.name
        else rows[field.name].cast(field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def append_requests(
    stream: str, rows: pa.Table, max_bytes: int = MAX_REQUEST_BYTES
) -> Iterator[types.AppendRowsRequest]:
    """The append requests of ``rows``, each under ``max_bytes``, at consecutive offsets from 0.

    The first request names the stream and carries the writer schema; the rest only rows.
    """
    bytes_per_row = max(1, rows.nbytes // max(rows.num_rows, 1))
    offset = 0
    for batch in rows.combine_chunks().to_batches(max_chunksize=max(1, max_bytes // bytes_per_row)):
        request = types.AppendRowsRequest(
            write_stream=stream,
            offset=offset,
            arrow_rows=types.AppendRowsRequest.ArrowData(
                rows=types.ArrowRecordBatch(
                    serialized_record_batch=batch.serialize().to_pybytes(),
                    row_count=batch.num_rows,
                )
            ),
        )
        if offset == 0:
            request.arrow_rows.writer_schema = types.ArrowSchema(
                serialized_schema=rows.schema.serialize().to_pybytes()
            )
        yield request
        offset += batch.num_rows


@dataclass
class _Run:
    """The run (one start of the query) the sink is writing for."""

    run_id: str
    first_batch: int
    query_id: str


class StorageWriteSink:
    """Appends one table's rows of one micro-batch, exactly once however often it is called."""

    def __init__(
        self,
        settings: WorkerSettings,
        client: bigquery.Client,
        write_client: BigQueryWriteClient,
        batches: CheckpointBatches,
    ) -> None:
        self.settings = settings
        self.client = client
        self.write_client = write_client
        self.batches = batches
        self.max_request_bytes = MAX_REQUEST_BYTES
        self._run: _Run | None = None

    def prepare(self) -> None:
        """Nothing to do at start: a stream a crash left uncommitted was never visible and
        holds nothing to clean up, and whether a batch is a rerun is asked at the first batch
        of each run (``write``), since only that one can be."""

    def write(self, table: TableSchema, rows: pa.Table, run_id: str, batch_id: int) -> int:
        """Append ``rows`` to ``table`` unless this batch committed them already; return how
        many were sent."""
        run = self._run_of(run_id, batch_id)
        if rows.num_rows == 0:
            return 0
        with phase("checkpoint.offset_range"):
            marker = batch_marker(run.query_id, batch_id, self.batches.offset_range(batch_id))
        if batch_id == run.first_batch and self.committed_already(table, rows, marker, batch_id):
            logger.info(
                "batch %d: %s already holds its %d rows (marker %s): not written again",
                batch_id,
                table.table,
                rows.num_rows,
                marker,
            )
            return int(rows.num_rows)
        stream = self.append(table, marked_rows(table, rows, marker))
        self.commit(table, stream)
        return int(rows.num_rows)

    def _run_of(self, run_id: str, batch_id: int) -> _Run:
        """The current run; a new ``run_id`` starts one whose first batch is ``batch_id``."""
        if self._run is None or self._run.run_id != run_id:
            self._run = _Run(run_id, batch_id, self.batches.query_id())
        return self._run

    def committed_already(
        self, table: TableSchema, rows: pa.Table, marker: str, batch_id: int
    ) -> bool:
        """Whether ``table`` holds rows of the batch named ``marker`` (see the module doc).

        It also looks for the batch's marker without a range, only to say so: such rows were
        written before markers named their range, and the batch is written all the same.
        """
        expected = BatchMarker.parse(marker)
        legacy = f"{expected.query_id}:{expected.batch_id}"
        since, until = self.check_range(table, rows, batch_id)
        bounds = f"`{table.partition_column}` >= @since"
        parameters = [
            bigquery.ScalarQueryParameter("marker", "STRING", marker),
            bigquery.ScalarQueryParameter("legacy", "STRING", legacy),
            bigquery.ScalarQueryParameter("since", "TIMESTAMP", since),
        ]
        if until is not None:
            bounds += f" AND `{table.partition_column}` <= @until"
            parameters.append(bigquery.ScalarQueryParameter("until", "TIMESTAMP", until))
        sql = (
            f"SELECT DISTINCT `{STREAM_BATCH.name}` AS marker "
            f"FROM `{table_id(self.settings, table)}` "
            f"WHERE {bounds} AND `{STREAM_BATCH.name}` IN (@marker, @legacy)"
        )
        with phase(f"{table.table}.rerun_check"):
            found = [
                BatchMarker.parse(row["marker"])
                for row in run_query(self.client, self.settings, sql, parameters) or []
            ]
        if any(stored.same_batch_as(expected) for stored in found):
            return True
        if found:
            logger.warning(
                "batch %d: %s holds rows marked %s, written before markers named their offset "
                "range, so whether they are this batch's records cannot be told: the batch is "
                "written (at worst a second copy, which every view reads once)",
                batch_id,
                table.table,
                legacy,
            )
        return False

    def check_range(
        self, table: TableSchema, rows: pa.Table, batch_id: int
    ) -> tuple[datetime, datetime | None]:
        """The partition-column range an earlier attempt of this batch wrote ``table`` in."""
        if table.partition_column in rows.column_names and (
            table.partition_column in table.dedup_columns
        ):
            column = rows[table.partition_column]
            oldest, newest = pc.min(column).as_py(), pc.max(column).as_py()
            if isinstance(oldest, datetime) and isinstance(newest, datetime):
                return oldest, newest
        planned = self.batches.planned_at(batch_id)
        if planned is not None:
            return planned - PLANNED_AT_SLACK, None
        event = oldest_event(rows)
        horizon = timedelta(hours=self.settings.stream_dedup_horizon_hours)
        return (event or datetime.now(UTC)) - horizon, None

    def append(self, table: TableSchema, rows: pa.Table) -> str:
        """Write ``rows`` to a new pending stream of ``table`` and finalize it; return its name.

        Nothing of it is visible until ``commit``.
        """
        timeout = self.settings.bigquery_timeout_seconds
        try:
            with phase(f"{table.table}.create_stream"):
                stream = self.write_client.create_write_stream(
                    parent=table_path(self.settings, table),
                    write_stream=types.WriteStream(type_=types.WriteStream.Type.PENDING),
                    retry=self._retry(),
                    timeout=timeout,
                )
            with phase(f"{table.table}.append"):
                responses = list(
                    self.write_client.append_rows(
                        append_requests(stream.name, rows, self.max_request_bytes),
                        metadata=(("x-goog-request-params", f"write_stream={stream.name}"),),
                        timeout=timeout,
                    )
                )
            for response in responses:
                if response.error.code or response.row_errors:
                    detail = response.error.message or str(list(response.row_errors)[:3])
                    raise StorageWriteFailed(
                        f"the Storage Write API refused rows for {table.table}: {detail}; the "
                        "batch runs again"
                    )
            with phase(f"{table.table}.finalize"):
                self.write_client.finalize_write_stream(
                    name=stream.name, retry=self._retry(), timeout=timeout
                )
        except UNREACHABLE_ERRORS as error:
            raise StorageWriteFailed(
                f"appending to {table.table} through the Storage Write API failed: {error}; "
                "nothing of it was committed, and the batch runs again"
            ) from error
        return str(stream.name)

    def commit(self, table: TableSchema, stream: str) -> None:
        """Make the finalized ``stream`` visible in ``table``, all at once.

        A commit that failed in transit may still have happened; either way the batch fails,
        and its rerun (the first batch of the next run) finds out from the marker.
        """
        timeout = self.settings.bigquery_timeout_seconds
        try:
            with phase(f"{table.table}.commit"):
                response = self.write_client.batch_commit_write_streams(
                    request=types.BatchCommitWriteStreamsRequest(
                        parent=table_path(self.settings, table), write_streams=[stream]
                    ),
                    retry=self._retry(),
                    timeout=timeout,
                )
        except UNREACHABLE_ERRORS as error:
            raise StorageWriteFailed(
                f"committing {table.table}'s rows failed: {error}; the batch runs again, and "
                "finds them if the commit happened after all"
            ) from error
        if response.stream_errors:
            raise StorageWriteFailed(
                f"committing {table.table}'s rows was refused: "
                f"{response.stream_errors[0].error_message}; the batch runs again"
            )

    def _retry(self) -> Retry:
        """Retry transient errors of a unary call, within our deadline (not the client's ten
        minutes)."""
        return Retry(
            predicate=if_exception_type(*TRANSIENT_ERRORS),
            deadline=self.settings.bigquery_timeout_seconds,
        )
