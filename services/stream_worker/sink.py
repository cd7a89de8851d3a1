"""The idempotent micro-batch write: staging load, then MERGE, so a re-run batch adds nothing.

Spark's checkpoint makes the Kafka input exactly-once, but a batch that crashed half-way is run
again after a restart, and whatever it had already written would be written twice. So each batch
loads its rows into a staging table named after the batch (``WRITE_TRUNCATE``: loading twice
leaves one copy), then MERGEs into the target on the table's merge key, inserting only rows that
are not there. BigQuery's ``insertId`` is best-effort and is not relied on.

The MERGE looks for existing rows only in partitions newer than ``stream_dedup_horizon_hours``
(by ``processing_timestamp``), so it does not scan the whole table on real BigQuery; a replay of
data older than that horizon could duplicate rows, which docs/stream-worker.md says.
"""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
from google.cloud import bigquery

from shared.schemas import TableSchema
from shared.settings import Settings
from shared.warehouse import bigquery_retry, relation_id, table_id

logger = logging.getLogger(__name__)

STAGING_TABLE_LIFETIME = timedelta(days=1)


class WarehouseSink:
    """Writes one table's rows of one micro-batch, exactly once however often it is called."""

    def __init__(self, settings: Settings, client: bigquery.Client) -> None:
        self.settings = settings
        self.client = client

    def _staging_id(self, table: TableSchema, batch_id: int) -> str:
        return relation_id(self.settings, f"_staging_{table.table}_batch_{batch_id}")

    def write(self, table: TableSchema, rows: pa.Table, batch_id: int) -> int:
        """Add ``rows`` to ``table`` unless they are there already; return how many were sent."""
        if rows.num_rows == 0:
            return 0
        staging = self._staging_id(table, batch_id)
        self._load_staging(table, rows, staging)
        self._merge(table, staging)
        self.client.delete_table(
            staging,
            not_found_ok=True,
            retry=bigquery_retry(self.settings),
            timeout=self.settings.bigquery_timeout_seconds,
        )
        return int(rows.num_rows)

    def _load_staging(self, table: TableSchema, rows: pa.Table, staging: str) -> None:
        definition = bigquery.Table(staging, schema=table.bigquery_schema())
        # A crash between load and MERGE leaves the staging table behind; it expires by itself.
        definition.expires = datetime.now(UTC) + STAGING_TABLE_LIFETIME
        self.client.create_table(
            definition,
            exists_ok=True,
            retry=bigquery_retry(self.settings),
            timeout=self.settings.bigquery_timeout_seconds,
        )
        buffer = io.BytesIO()
        pq.write_table(rows, buffer)
        buffer.seek(0)
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
        job.result(timeout=self.settings.bigquery_timeout_seconds * 4)

    def _merge(self, table: TableSchema, staging: str) -> None:
        target = table_id(self.settings, table)
        on = " AND ".join(f"T.`{column}` = S.`{column}`" for column in table.dedup_columns)
        columns = ", ".join(f"`{name}`" for name in table.column_names)
        values = ", ".join(f"S.`{name}`" for name in table.column_names)
        statement = f"""
            MERGE `{target}` T
            USING `{staging}` S
            ON {on}
               AND T.`{table.partition_column}` >= TIMESTAMP_SUB(
                   CURRENT_TIMESTAMP(), INTERVAL @horizon_hours HOUR)
            WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})
        """
        job = self.client.query(
            statement,
            job_config=bigquery.QueryJobConfig(
                query_parameters=[
                    bigquery.ScalarQueryParameter(
                        "horizon_hours", "INT64", self.settings.stream_dedup_horizon_hours
                    )
                ]
            ),
        )
        job.result(timeout=self.settings.bigquery_timeout_seconds * 4)
