"""Backfilled asset history for the dashboard's tests: the ``asset_history`` table, and rows
loaded into it through the real client, as ``coinstream backfill`` would leave them."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from google.cloud import bigquery

from shared.schemas import ASSET_HISTORY
from shared.settings import Settings
from shared.warehouse.tables import table_definition
from tests.harness.warehouse_seed import load_rows


def create_history_table(client: bigquery.Client, settings: Settings) -> None:
    """The table exactly as the stream worker makes it (``shared.schemas.ASSET_HISTORY``);
    left as it is when the worker has made it already."""
    client.create_table(table_definition(settings, ASSET_HISTORY), exists_ok=True)


def history_row(
    asset_id: str, interval: str, at: datetime, price: float | None, supply: float | None
) -> dict[str, Any]:
    return {
        "id": asset_id,
        "interval": interval,
        "time": at.isoformat(),
        "price_usd": price,
        "circulating_supply": supply,
        "source_timestamp": at.isoformat(),
        "processing_timestamp": at.isoformat(),
    }


def walk_back(
    asset_id: str, price: float, supply: float, until: datetime, hours: int, seed: int = 7
) -> list[dict[str, Any]]:
    """Hourly history of ``hours`` hours ending at ``until``, a random walk that ends at
    ``price`` (as the simulator's history ends near its current price)."""
    generator = random.Random(f"{asset_id}-{seed}")
    rows = []
    for hour in range(hours):
        at = until - timedelta(hours=hour)
        rows.append(history_row(asset_id, "h1", at, price, supply * (1 - hour * 1e-5)))
        price *= 1 + generator.gauss(0, 0.01)
    return rows[::-1]


def load_history(
    client: bigquery.Client, settings: Settings, rows: Sequence[dict[str, Any]]
) -> None:
    create_history_table(client, settings)
    load_rows(client, settings, ASSET_HISTORY, rows)
