"""The views dashboards and Looker Studio read: newest row per key, time series, hourly rows.

A view is only its SQL. Where the stream worker owns the warehouse (the emulator) it creates or
replaces them at every start, cheaply; on GCP Terraform creates them from the SQL files
``make schemas`` writes from these same definitions (``view_files``). Either way
they stay current without refreshes.
"""

from __future__ import annotations

from google.cloud import bigquery

from shared.schemas import ASSETS, EXCHANGES
from shared.settings import WarehouseSettings
from shared.warehouse.client import bigquery_retry
from shared.warehouse.tables import dataset_id, relation_id


def view_definitions(settings: WarehouseSettings) -> dict[str, str]:
    """The views dashboards read, by name, on the dataset ``settings`` name."""
    return view_queries(dataset_id(settings))


def view_queries(dataset: str) -> dict[str, str]:
    """The views dashboards read, by name, reading the tables of ``dataset`` (``project.dataset``).

    ``*_latest`` hold one row per asset or exchange, its newest snapshot; ``*_timeseries``
    hold the columns a chart plots, one row per snapshot. Both read through the tables, so
    they stay current without refreshes; dashboards bound them by time range and row count.
    """
    assets = f"{dataset}.{ASSETS.table}"
    exchanges = f"{dataset}.{EXCHANGES.table}"
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


def ensure_views(client: bigquery.Client, settings: WarehouseSettings) -> None:
    """Create or replace the dashboard views (cheap: a view is only its SQL)."""
    for name, sql in view_definitions(settings).items():
        client.query(
            f"CREATE OR REPLACE VIEW `{relation_id(settings, name)}` AS {sql}",
            retry=bigquery_retry(settings),
            timeout=settings.bigquery_timeout_seconds,
        ).result(timeout=settings.bigquery_timeout_seconds)
