"""Warehouse access: one BigQuery client factory for real BigQuery and the local emulator.

The emulator speaks BigQuery's REST API, so the same ``google-cloud-bigquery`` client serves both;
only the endpoint and credentials differ. Every call gets a short timeout and retry deadline,
because the client's default is to retry for ten minutes against a port nobody answers on.
"""

from __future__ import annotations

from google.api_core.client_options import ClientOptions
from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from shared.schemas import TABLES, TableSchema
from shared.settings import Settings


def bigquery_retry(settings: Settings) -> Retry:
    """The client's default retry policy, bounded by our deadline."""
    return bigquery.DEFAULT_RETRY.with_deadline(settings.bigquery_timeout_seconds)


def create_bigquery_client(settings: Settings) -> bigquery.Client:
    """A client for real BigQuery when ``gcp_project`` is set, else for the local emulator.

    Real BigQuery authenticates with Application Default Credentials
    (``gcloud auth application-default login`` or a service-account key file).
    """
    if not settings.uses_bigquery_emulator:
        return bigquery.Client(project=settings.gcp_project, location=settings.bigquery_location)
    return bigquery.Client(
        project=settings.bigquery_emulator_project,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=settings.bigquery_emulator_url),
    )


def table_id(settings: Settings, schema: TableSchema) -> str:
    """Fully qualified ``project.dataset.table`` name of a table."""
    return f"{settings.warehouse_project}.{settings.bigquery_dataset}.{schema.table}"


def table_definition(settings: Settings, schema: TableSchema) -> bigquery.Table:
    """A table partitioned by day on ``processing_timestamp`` and clustered on its key."""
    table = bigquery.Table(table_id(settings, schema), schema=schema.bigquery_schema())
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
    client: bigquery.Client, settings: Settings, tables: tuple[TableSchema, ...] = TABLES
) -> list[bigquery.Table]:
    """Create the dataset and tables if missing; existing ones are left as they are."""
    retry = bigquery_retry(settings)
    timeout = settings.bigquery_timeout_seconds
    dataset = bigquery.Dataset(f"{settings.warehouse_project}.{settings.bigquery_dataset}")
    dataset.location = settings.bigquery_location
    client.create_dataset(dataset, exists_ok=True, retry=retry, timeout=timeout)
    return [
        client.create_table(
            table_definition(settings, schema), exists_ok=True, retry=retry, timeout=timeout
        )
        for schema in tables
    ]
