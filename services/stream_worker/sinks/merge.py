"""The MERGE sink (``merge``): a MERGE on the table's key, so a re-run batch adds nothing.

Spark's checkpoint makes the Kafka input exactly-once, but a batch that crashed half-way is run
again after a restart, and whatever it had already written would be written twice. So each
batch MERGEs its rows into the target on the table's merge key, inserting only rows that are
not there. A batch of up to ``INLINE_MERGE_MAX_ROWS`` rows (every steady micro-batch) sends
them in the MERGE's own ``@rows`` parameter: one warehouse call per table with rows. A bigger
one (a backlog) loads them into a staging table first (``WRITE_TRUNCATE``: loading twice
leaves one copy) and MERGEs from there. BigQuery's ``insertId`` is best-effort and is not
relied on.

A staging table is named after the worker's run (a fresh id each time the query starts) as well
as the batch, so two workers on one dataset, or a worker on a reset checkpoint, never load into
each other's staging tables. A crash between load and drop leaves one behind: it carries a
table expiration, and the sink's ``prepare`` (``drop_stale_staging_tables``) removes what
outlived it where expiration is not enforced (the emulator).

The MERGE looks for existing rows only in partitions processed since the oldest record of the
batch (its ``source_timestamp``; ``kafka_timestamp`` for the quarantine) minus
``stream_dedup_horizon_hours``: a row cannot have been processed before its record existed, so
this finds every copy, a replay of week-old records included, while a live batch scans only
the last couple of days on real BigQuery. A table partitioned on a key column looks from the
batch's oldest value of it.

A job that does not finish in time is cancelled, and waited for, before the error propagates:
otherwise the batch's rerun could MERGE while the first MERGE still runs, and both insert.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from google.cloud import bigquery
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_exponential

from services.stream_worker.batch_phases import phase
from services.stream_worker.sinks.event_time import as_utc, oldest_event
from shared.schemas import TableSchema
from shared.settings import WorkerSettings
from shared.warehouse import UNREACHABLE_ERRORS, bigquery_retry, dataset_id, relation_id, table_id

logger = logging.getLogger(__name__)

STAGING_TABLE_LIFETIME = timedelta(days=1)
STAGING_PREFIX = "_staging_"
INLINE_MERGE_MAX_ROWS = 500
"""Most rows a MERGE carries in its own ``@rows`` parameter; a bigger batch is loaded into a
staging table first. A steady micro-batch (165 assets, 40 exchanges) fits; 500 rows of the
widest table are some 8,500 values and a few hundred kB, inside BigQuery's limits on query
parameters and request size however they are counted."""
JOB_WAIT_FACTOR = 4
"""A load or MERGE job may take this many times ``bigquery_timeout_seconds``."""


JOB_WAIT_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *UNREACHABLE_ERRORS)
"""What waiting for a job raises when it does not finish in time (or cannot be asked)."""


class BigQueryJobAbandoned(Exception):
    """A warehouse job did not finish in time and was cancelled; the batch runs again."""


@dataclass(frozen=True)
class StagedRows:
    """Rows of one table of one batch, loaded into their staging table, not yet merged."""

    table: TableSchema
    staging: str
    rows: int
    since: datetime
    """The oldest partition value a copy of these rows can have (see ``merge_horizon``)."""


class MergeSink:
    """MERGEs one table's rows of one micro-batch, exactly once however often it is called."""

    def __init__(self, settings: WorkerSettings, client: bigquery.Client) -> None:
        self.settings = settings
        self.client = client

    def prepare(self) -> None:
        """Drop the staging tables crashed runs left behind (see ``drop_stale_staging_tables``)."""
        self.drop_stale_staging_tables()

    def drop_stale_staging_tables(
        self, older_than: timedelta = STAGING_TABLE_LIFETIME
    ) -> list[str]:
        """Drop staging tables created more than ``older_than`` ago; return their names.

        Real BigQuery expires them by itself; the emulator ignores table expiration, and on
        either a worker that crashed between load and drop must not leak one table per crash.
        """
        retry = bigquery_retry(self.settings)
        timeout = self.settings.bigquery_timeout_seconds
        cutoff = datetime.now(UTC) - older_than
        dropped = []
        for item in self.client.list_tables(
            dataset_id(self.settings), retry=retry, timeout=timeout
        ):
            if not item.table_id.startswith(STAGING_PREFIX):
                continue
            # No creation time (an emulator may not say): not provably stale, so kept.
            if item.created is None or item.created > cutoff:
                continue
            self.client.delete_table(
                item.reference, not_found_ok=True, retry=retry, timeout=timeout
            )
            dropped.append(item.table_id)
        if dropped:
            logger.info("dropped %d stale staging tables: %s", len(dropped), ", ".join(dropped))
        return dropped

    def staging_id(self, table: TableSchema, run_id: str, batch_id: int) -> str:
        """The staging table of ``table`` for batch ``batch_id`` of run ``run_id``."""
        name = f"{STAGING_PREFIX}{table.table}_{run_id}_batch_{batch_id}"
        return relation_id(self.settings, name)

    def write(self, table: TableSchema, rows: pa.Table, run_id: str, batch_id: int) -> int:
        """Add ``rows`` to ``table`` unless they are there already; return how many were sent.

        No rows, no call. Up to ``INLINE_MERGE_MAX_ROWS`` rows go in the MERGE itself, as a
        query parameter: one warehouse call instead of four (create, load, MERGE, drop the
        staging table). More go through a staging table of the batch.
        """
        if rows.num_rows == 0:
            return 0
        if rows.num_rows <= INLINE_MERGE_MAX_ROWS:
            self.merge_rows(table, rows)
            return int(rows.num_rows)
        staged = self.stage(table, rows, run_id, batch_id)
        self.merge(staged)
        with phase(f"{table.table}.delete_staging"):
            self.client.delete_table(
                staged.staging,
                not_found_ok=True,
                retry=bigquery_retry(self.settings),
                timeout=self.settings.bigquery_timeout_seconds,
            )
        return staged.rows

    def stage(self, table: TableSchema, rows: pa.Table, run_id: str, batch_id: int) -> StagedRows:
        """Load ``rows`` into the batch's staging table (replacing what a failed try left)."""
        staging = self.staging_id(table, run_id, batch_id)
        definition = bigquery.Table(staging, schema=table.bigquery_schema())
        definition.expires = datetime.now(UTC) + STAGING_TABLE_LIFETIME
        with phase(f"{table.table}.create_staging"):
            self.client.create_table(
                definition,
                exists_ok=True,
                retry=bigquery_retry(self.settings),
                timeout=self.settings.bigquery_timeout_seconds,
            )
        with phase(f"{table.table}.parquet"):
            buffer = io.BytesIO()
            pq.write_table(rows, buffer)
            buffer.seek(0)
        with phase(f"{table.table}.load"):
            self._load(table, staging, buffer)
        since = self.merge_horizon(table, rows)
        return StagedRows(table, staging, int(rows.num_rows), since)

    def _load(self, table: TableSchema, staging: str, buffer: io.BytesIO) -> None:
        job = self.client.load_table_from_file(
            buffer,
            staging,
            size=None,  # the emulator rejects the client's multipart upload with a size
            job_config=bigquery.LoadJobConfig(
                source_format=bigquery.SourceFormat.PARQUET,
                write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
                schema=table.bigquery_schema(),
            ),
        )
        self.wait_for_job(job, f"loading {staging}")

    def merge(self, staged: StagedRows) -> None:
        """Insert the staged rows whose key is not in the table yet."""
        table = staged.table
        with phase(f"{table.table}.merge"):
            self._run_merge(table, f"`{staged.staging}`", staged.since, [])

    def merge_rows(self, table: TableSchema, rows: pa.Table) -> None:
        """Insert the rows whose key is not in the table yet, sent in the MERGE statement's
        ``@rows`` parameter (an array of structs) rather than loaded first."""
        with phase(f"{table.table}.parameters"):
            parameter = rows_parameter(table, rows)
            since = self.merge_horizon(table, rows)
        fields = ", ".join(f"row.`{name}` AS `{name}`" for name in table.column_names)
        source = f"(SELECT {fields} FROM UNNEST(@rows) AS row)"
        with phase(f"{table.table}.merge"):
            self._run_merge(table, source, since, [parameter])

    def _run_merge(
        self,
        table: TableSchema,
        source: str,
        since: datetime,
        parameters: list[bigquery.ArrayQueryParameter],
    ) -> None:
        """MERGE ``source`` (a table or a subquery) into ``table``: rows whose key is not
        there since ``since`` are inserted, the rest left alone."""
        on = " AND ".join(f"T.`{column}` = S.`{column}`" for column in table.dedup_columns)
        columns = ", ".join(f"`{name}`" for name in table.column_names)
        values = ", ".join(f"S.`{name}`" for name in table.column_names)
        statement = f"""
            MERGE `{table_id(self.settings, table)}` T
            USING {source} S
            ON {on} AND T.`{table.partition_column}` >= @since
            WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})
        """
        job = self.client.query(
            statement,
            job_config=bigquery.QueryJobConfig(
                query_parameters=[
                    bigquery.ScalarQueryParameter("since", "TIMESTAMP", since),
                    *parameters,
                ]
            ),
            # No re-issue of a failed MERGE behind our back (for ten minutes by default):
            # the batch fails and runs again, after any job of it has ended.
            job_retry=None,
        )
        self.wait_for_job(job, f"the MERGE into {table.table}")

    def merge_horizon(self, table: TableSchema, rows: pa.Table) -> datetime:
        """The oldest value of the table's partition column a copy of ``rows`` can have.

        A table partitioned on a column of its key (``asset_history`` on ``time``) has each
        copy in the same partition: the batch's oldest value is exact. A table partitioned on
        processing time has a copy processed after its record came to be: the oldest event
        time, less the horizon for clock skew, and never later than now less the horizon.
        """
        if table.partition_column in table.dedup_columns:
            oldest = as_utc(pc.min(rows[table.partition_column]).as_py())
            if oldest is not None:
                return oldest
        now = datetime.now(UTC)
        event = oldest_event(rows)
        oldest = min(event, now) if event is not None else now
        return oldest - timedelta(hours=self.settings.stream_dedup_horizon_hours)

    def wait_for_job(self, job: bigquery.LoadJob | bigquery.QueryJob, what: str) -> None:
        """Wait for ``job``; if it does not finish in time, cancel it and wait until it ends.

        Raises ``BigQueryJobAbandoned`` after a cancelled job, and the job's own error when it
        failed by itself.
        """
        seconds = self.settings.bigquery_timeout_seconds * JOB_WAIT_FACTOR
        try:
            # ``timeout`` bounds the wait, but each poll is retried by ``retry``, whose default
            # deadline is ten minutes: bound that too.
            job.result(retry=bigquery_retry(self.settings).with_deadline(seconds), timeout=seconds)
        except JOB_WAIT_ERRORS as error:
            if job.state == "DONE":
                raise  # it ended by itself, with an error: nothing is left running
            self._cancel_and_wait(job, what)
            raise BigQueryJobAbandoned(
                f"{what} (job {job.job_id}) did not finish in {seconds:g} s; it was cancelled "
                "and has ended, so the batch runs again without overlapping it"
            ) from error

    def _cancel_and_wait(self, job: bigquery.LoadJob | bigquery.QueryJob, what: str) -> None:
        retry = bigquery_retry(self.settings)
        timeout = self.settings.bigquery_timeout_seconds
        logger.warning("%s (job %s) did not finish in time: cancelling it", what, job.job_id)
        job.cancel(retry=retry, timeout=timeout)

        def still_running() -> bool:
            job.reload(retry=retry, timeout=timeout)
            return bool(job.state != "DONE")

        Retrying(
            retry=retry_if_result(bool),
            wait=wait_exponential(multiplier=0.5, max=5),
            stop=stop_after_delay(timeout * JOB_WAIT_FACTOR),
            retry_error_callback=lambda state: True,
        )(still_running)
        if job.state != "DONE":
            raise BigQueryJobAbandoned(
                f"{what} (job {job.job_id}) was cancelled but is still {job.state}; the "
                "batch runs again only after the worker's restart pause"
            )
        logger.warning("%s (job %s) cancelled and ended", what, job.job_id)


def rows_parameter(table: TableSchema, rows: pa.Table) -> bigquery.ArrayQueryParameter:
    """``rows`` as the query parameter ``@rows``: an array of structs of the table's columns,
    each field typed as its column (so a null is a typed null)."""
    columns = table.columns
    structs = [
        bigquery.StructQueryParameter(
            None,
            *(
                bigquery.ScalarQueryParameter(column.name, column.type.value, row[column.name])
                for column in columns
            ),
        )
        for row in rows.select(table.column_names).to_pylist()
    ]
    return bigquery.ArrayQueryParameter("rows", "STRUCT", structs)
