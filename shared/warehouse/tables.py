"""Where the warehouse's relations live (``project.dataset.name``), and creating the tables.

Tables are partitioned by day on ``processing_timestamp`` and clustered on their key, so reads
bounded by time (freshness, the dashboard's ranges) scan only the days they ask for.
"""

from __future__ import annotations

from google.cloud import bigquery

from shared.schemas import TABLES, TableSchema
from shared.settings import WarehouseSettings
from shared.warehouse.client import bigquery_retry


def dataset_id(settings: WarehouseSettings) -> str:
    """``project.dataset`` of the dataset every table and view lives in."""
    return f"{settings.warehouse_project}.{settings.bigquery_dataset}"


def relation_id(settings: WarehouseSettings, name: str) -> str:
    """Fully qualified ``project.dataset.name`` of a table or view in the dataset."""
    return f"{dataset_id(settings)}.{name}"


def table_id(settings: WarehouseSettings, schema: TableSchema) -> str:
    """Fully qualified ``project.dataset.table`` name of a table."""
    return relation_id(settings, schema.table)


def table_definition(settings: WarehouseSettings, schema: TableSchema) -> bigquery.Table:
    """A table partitioned by day on ``processing_timestamp`` and clustered on its key."""
    table = bigquery.Table(table_id(settings, schema), schema=schema.stored_bigquery_schema())
    table.description = schema.description
    expiration_ms = (
        settings.table_partition_expiration_days * 24 * 3600 * 1000
        if settings.table_partition_expiration_days
        else None
    )
    table.time_partitioning = bigquery.TimePartitioning(
        type_=bigquery.TimePartitioningType.DAY,
        field=schema.partition_column,
        expiration_ms=expiration_ms,
    )
    table.clustering_fields = schema.clustering_columns
    return table


def ensure_warehouse(
    client: bigquery.Client, settings: WarehouseSettings, tables: tuple[TableSchema, ...] = TABLES
) -> list[bigquery.Table]:
    """Create the dataset and tables if missing; existing ones are left as they are."""
    retry = bigquery_retry(settings)
    timeout = settings.bigquery_timeout_seconds
    dataset = bigquery.Dataset(dataset_id(settings))
    dataset.location = settings.bigquery_location
    client.create_dataset(dataset, exists_ok=True, retry=retry, timeout=timeout)
    return [
        client.create_table(
            table_definition(settings, schema), exists_ok=True, retry=retry, timeout=timeout
        )
        for schema in tables
    ]
