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

from shared.schemas import ASSETS, EXCHANGES, TABLES, TableSchema
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


def view_definitions(settings: Settings) -> dict[str, str]:
    """The views dashboards read, by name: newest row per key, and time series.

    ``*_latest`` hold one row per asset or exchange, its newest snapshot; ``*_timeseries``
    hold the columns a chart plots, one row per snapshot. Both read through the tables, so
    they stay current without refreshes; dashboards bound them by time range and row count.
    """
    assets = table_id(settings, ASSETS)
    exchanges = table_id(settings, EXCHANGES)
    return {
        "assets_latest": f"""
            SELECT * FROM `{assets}`
            QUALIFY ROW_NUMBER() OVER (PARTITION BY id ORDER BY source_timestamp DESC) = 1""",
        "exchanges_latest": f"""
            SELECT * FROM `{exchanges}`
            QUALIFY ROW_NUMBER() OVER (
                PARTITION BY exchange_id ORDER BY source_timestamp DESC) = 1""",
        "assets_timeseries": f"""
            SELECT source_timestamp AS ts, id, symbol, name, rank, price_usd, market_cap_usd,
                   supply, max_supply, supply_ratio, volume_usd_24hr, change_percent_24hr,
                   processing_timestamp
            FROM `{assets}`""",
        "exchanges_timeseries": f"""
            SELECT source_timestamp AS ts, exchange_id, name, rank, percent_total_volume,
                   volume_usd, trading_pairs, processing_timestamp
            FROM `{exchanges}`""",
        # For Looker Studio, which queries a data source on every chart render: one row per
        # key per hour (the hour's last snapshot) over the last 90 days, so a report
        # reads a bounded, small result with a DATE and a TIMESTAMP dimension ready to chart.
        "assets_hourly": f"""
            SELECT TIMESTAMP_TRUNC(source_timestamp, HOUR) AS hour,
                   DATE(source_timestamp) AS day, id, symbol, name, rank, price_usd,
                   market_cap_usd, supply, max_supply,
                   supply_ratio * 100 AS supply_percent_of_max, volume_usd_24hr,
                   change_percent_24hr, source_timestamp AS snapshot_ts
            FROM `{assets}`
            WHERE processing_timestamp >= TIMESTAMP_SUB(
                CURRENT_TIMESTAMP(), INTERVAL 90 DAY)
            QUALIFY ROW_NUMBER() OVER (
                PARTITION BY id, TIMESTAMP_TRUNC(source_timestamp, HOUR)
                ORDER BY source_timestamp DESC) = 1""",
        "exchanges_hourly": f"""
            SELECT TIMESTAMP_TRUNC(source_timestamp, HOUR) AS hour,
                   DATE(source_timestamp) AS day, exchange_id, name, rank,
                   percent_total_volume, volume_usd, trading_pairs,
                   source_timestamp AS snapshot_ts
            FROM `{exchanges}`
            WHERE processing_timestamp >= TIMESTAMP_SUB(
                CURRENT_TIMESTAMP(), INTERVAL 90 DAY)
            QUALIFY ROW_NUMBER() OVER (
                PARTITION BY exchange_id, TIMESTAMP_TRUNC(source_timestamp, HOUR)
                ORDER BY source_timestamp DESC) = 1""",
    }


def ensure_views(client: bigquery.Client, settings: Settings) -> None:
    """Create or replace the dashboard views (cheap: a view is only its SQL)."""
    dataset = f"{settings.warehouse_project}.{settings.bigquery_dataset}"
    for name, sql in view_definitions(settings).items():
        client.query(
            f"CREATE OR REPLACE VIEW `{dataset}.{name}` AS {sql}",
            retry=bigquery_retry(settings),
            timeout=settings.bigquery_timeout_seconds,
        ).result(timeout=settings.bigquery_timeout_seconds)
