"""A warehouse table's schema: its columns, its key, its layout in BigQuery, and the JSON and
BigQuery schema forms derived from it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.schemas.columns import Column, ColumnType

if TYPE_CHECKING:
    from google.cloud import bigquery


STREAM_BATCH = Column(
    "stream_batch",
    ColumnType.STRING,
    "The stream worker batch that appended the row through the Storage Write API: the Spark "
    "query id of its checkpoint and the batch id, as <query id>:<batch id>; checked before a "
    "batch that runs again commits. Null for rows the MERGE sink wrote.",
)
"""Bookkeeping of the Storage Write API sink, stored with every row it appends (see
``services.stream_worker.sinks.storage_write``); not a column of the rows the worker makes."""


@dataclass(frozen=True)
class TableSchema:
    """A warehouse table: its columns, its key, and how BigQuery lays it out."""

    table: str
    key_column: str
    columns: tuple[Column, ...]
    description: str
    partition_column: str = "processing_timestamp"
    merge_key_columns: tuple[str, ...] = ()
    """What makes a row the same row; a re-run micro-batch adds nothing whose key is there.
    Empty means (key column, ``source_timestamp``)."""
    cluster_columns: tuple[str, ...] = ()
    """What BigQuery clusters the table on; empty means the key column alone."""
    source_timestamp_is_snapshot: bool = True
    """``source_timestamp`` is when CoinCap made the snapshot, so it must lie within
    ``COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS`` of the time it is checked (a page timestamp of
    1e16 is a broken server, not a fact). False for history points, whose time is the past."""

    @property
    def clustering_columns(self) -> list[str]:
        return list(self.cluster_columns) or [self.key_column]

    @property
    def dedup_columns(self) -> tuple[str, ...]:
        """A record is the same record when its key and its source timestamp are equal."""
        return self.merge_key_columns or (self.key_column, "source_timestamp")

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"table {self.table} has no column {name!r}")

    @property
    def stored_columns(self) -> tuple[Column, ...]:
        """The warehouse table's columns: the rows' own (``columns``), then the sinks' own."""
        return (*self.columns, STREAM_BATCH)

    def json_schema(self, columns: tuple[Column, ...] | None = None) -> list[dict[str, str]]:
        """The schema as BigQuery's JSON schema format, the one Terraform's ``schema`` reads:
        every stored column, unless ``columns`` names others."""
        return [
            {
                "name": column.name,
                "type": column.type.value,
                "mode": "REQUIRED" if column.required else "NULLABLE",
                "description": column.description,
            }
            for column in (self.stored_columns if columns is None else columns)
        ]

    def json_schema_text(self) -> str:
        return json.dumps(self.json_schema(), indent=2) + "\n"

    def bigquery_schema(self) -> list[bigquery.SchemaField]:
        """The columns of the rows the worker makes (``columns``): a staging table's schema."""
        from google.cloud import bigquery

        return [
            bigquery.SchemaField.from_api_repr(field) for field in self.json_schema(self.columns)
        ]

    def stored_bigquery_schema(self) -> list[bigquery.SchemaField]:
        """Every column of the warehouse table (``stored_columns``)."""
        from google.cloud import bigquery

        return [bigquery.SchemaField.from_api_repr(field) for field in self.json_schema()]
