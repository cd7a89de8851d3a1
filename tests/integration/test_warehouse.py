"""The warehouse against the real BigQuery client and the local emulator."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from google.cloud import bigquery

from shared.schemas import ASSETS, EXCHANGES
from shared.settings import Settings
from shared.warehouse import create_bigquery_client, ensure_warehouse, table_id

pytestmark = pytest.mark.integration

TINY_PRICE = "0.000000000012345678"
HUGE_MARKET_CAP = "1904557171625.0952172577833640"


def same_to_significant_digits(stored: float, expected: str, digits: int) -> bool:
    exact = float(expected)
    return math.isclose(stored, exact, rel_tol=10**-digits, abs_tol=0.0)


@pytest.fixture(scope="module")
def client(stack_settings: Settings) -> bigquery.Client:
    client = create_bigquery_client(stack_settings)
    ensure_warehouse(client, stack_settings)
    return client


def test_tables_are_partitioned_by_day_and_clustered_on_their_key(
    client: bigquery.Client, stack_settings: Settings
) -> None:
    for schema in (ASSETS, EXCHANGES):
        table = client.get_table(table_id(stack_settings, schema))
        assert table.time_partitioning is not None
        assert table.time_partitioning.type_ == bigquery.TimePartitioningType.DAY
        assert table.time_partitioning.field == "processing_timestamp"
        assert table.clustering_fields == [schema.key_column]
        assert [field.name for field in table.schema] == schema.column_names


def test_ensure_warehouse_is_idempotent(client: bigquery.Client, stack_settings: Settings) -> None:
    again = ensure_warehouse(client, stack_settings)
    assert [table.table_id for table in again] == ["assets", "exchanges", "quarantine"]


def test_tiny_prices_and_huge_market_caps_survive_to_15_significant_digits(
    client: bigquery.Client, stack_settings: Settings
) -> None:
    now = datetime.now(UTC).isoformat()
    row = {
        "id": "tiny-coin",
        "rank": 2000,
        "symbol": "TINY",
        "price_usd": TINY_PRICE,
        "market_cap_usd": HUGE_MARKET_CAP,
        "supply": "19788862.0000000000000000",
        "max_supply": None,
        "source_timestamp": now,
        "processing_timestamp": now,
    }
    errors = client.insert_rows_json(table_id(stack_settings, ASSETS), [row])
    assert errors == []

    result = client.query(
        f"SELECT price_usd, market_cap_usd, max_supply FROM `{table_id(stack_settings, ASSETS)}` "
        "WHERE id = @id",
        job_config=bigquery.QueryJobConfig(
            query_parameters=[bigquery.ScalarQueryParameter("id", "STRING", "tiny-coin")]
        ),
    ).result()
    rows = list(result)
    assert len(rows) == 1
    assert rows[0]["price_usd"] != 0
    assert same_to_significant_digits(rows[0]["price_usd"], TINY_PRICE, 15)
    assert same_to_significant_digits(rows[0]["market_cap_usd"], HUGE_MARKET_CAP, 15)
    assert rows[0]["max_supply"] is None
