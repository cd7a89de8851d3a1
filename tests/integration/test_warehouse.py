"""The warehouse against the real BigQuery client and the local emulator."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime

import pytest
from google.cloud import bigquery

from shared.schemas import ASSETS, EXCHANGES, TABLES
from shared.settings import Settings
from shared.warehouse import (
    WarehouseIncompatible,
    check_warehouse,
    create_bigquery_client,
    ensure_views,
    ensure_warehouse,
    evolve_warehouse,
    relation_id,
    table_definition,
    table_id,
)

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
        assert [field.name for field in table.schema] == [c.name for c in schema.stored_columns]


def test_ensure_warehouse_is_idempotent(client: bigquery.Client, stack_settings: Settings) -> None:
    again = ensure_warehouse(client, stack_settings)
    assert [table.table_id for table in again] == [schema.table for schema in TABLES]


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


def test_what_the_worker_creates_passes_the_check_terraform_owners_run(
    client: bigquery.Client, stack_settings: Settings
) -> None:
    ensure_views(client, stack_settings)
    check_warehouse(client, stack_settings)


def test_a_warehouse_unlike_the_code_is_described_in_one_line(stack_settings: Settings) -> None:
    settings = stack_settings.model_copy(
        update={"bigquery_dataset": f"compat_{uuid.uuid4().hex[:8]}"}
    )
    client = create_bigquery_client(settings)
    ensure_warehouse(client, settings)
    ensure_views(client, settings)
    # An exchanges table made by other hands: volume_usd as text, clustered on the name.
    other = table_definition(settings, EXCHANGES)
    other.schema = [
        bigquery.SchemaField(field.name, "STRING", field.mode)
        if field.name == "volume_usd"
        else field
        for field in other.schema
    ]
    other.clustering_fields = ["name"]
    client.delete_table(other.reference)
    client.create_table(other)
    # DROP VIEW: the emulator's tables.delete drops only tables.
    client.query(f"DROP VIEW `{relation_id(settings, 'assets_latest')}`").result(timeout=15)

    with pytest.raises(WarehouseIncompatible) as raised:
        check_warehouse(client, settings)
    assert str(raised.value) == (
        f"the BigQuery dataset {settings.warehouse_project}.{settings.bigquery_dataset} is not "
        "what this version of coinstream writes to: table exchanges: column volume_usd is "
        "STRING, the code writes FLOAT64; table exchanges: it is clustered on name, the code "
        "expects exchange_id; view assets_latest does not exist; run "
        "`terraform -chdir=terraform apply` with this version's terraform/ files to bring it up "
        "to date"
    )


def test_a_missing_dataset_is_named(stack_settings: Settings) -> None:
    settings = stack_settings.model_copy(update={"bigquery_dataset": "never_created"})
    with pytest.raises(WarehouseIncompatible, match=r"never_created is not what .*: it does not"):
        check_warehouse(create_bigquery_client(settings), settings)


def fresh_dataset(stack_settings: Settings) -> tuple[bigquery.Client, Settings]:
    settings = stack_settings.model_copy(
        update={"bigquery_dataset": f"evolve_{uuid.uuid4().hex[:8]}"}
    )
    client = create_bigquery_client(settings)
    ensure_warehouse(client, settings)
    return client, settings


def replace_table(client: bigquery.Client, table: bigquery.Table) -> None:
    client.delete_table(table.reference)
    client.create_table(table)


def test_a_new_nullable_column_is_added_to_an_existing_table(stack_settings: Settings) -> None:
    client, settings = fresh_dataset(stack_settings)
    # The assets table as an older version made it, before `explorer` and `vwap_24hr`, with a row.
    older = table_definition(settings, ASSETS)
    older.schema = [f for f in older.schema if f.name not in ("explorer", "vwap_24hr")]
    replace_table(client, older)
    now = datetime.now(UTC).isoformat()
    row = {"id": "old", "source_timestamp": now, "processing_timestamp": now}
    assert client.insert_rows_json(table_id(settings, ASSETS), [row]) == []

    assert evolve_warehouse(client, settings) == ["assets.vwap_24hr", "assets.explorer"]
    table = client.get_table(table_id(settings, ASSETS))
    assert {"explorer", "vwap_24hr"} <= {field.name for field in table.schema}
    ensure_views(client, settings)
    check_warehouse(client, settings)  # now what the code writes, column for column
    # The old row reads the new column as null; a new row can fill it.
    rows = client.query(f"SELECT id, explorer FROM `{table_id(settings, ASSETS)}`").result(
        timeout=15
    )
    assert [(r["id"], r["explorer"]) for r in rows] == [("old", None)]
    assert evolve_warehouse(client, settings) == []  # nothing more to add


def test_a_change_columns_cannot_mend_is_refused_in_one_line(stack_settings: Settings) -> None:
    client, settings = fresh_dataset(stack_settings)
    other = table_definition(settings, ASSETS)
    other.schema = [
        bigquery.SchemaField(field.name, "STRING", field.mode)
        if field.name == "price_usd"
        else field
        for field in other.schema
        if field.name != "explorer"
    ]
    replace_table(client, other)

    with pytest.raises(WarehouseIncompatible) as raised:
        evolve_warehouse(client, settings)
    assert str(raised.value) == (
        f"the BigQuery dataset {settings.warehouse_project}.{settings.bigquery_dataset} is not "
        "what this version of coinstream writes to: table assets: column price_usd is STRING, "
        "the code writes FLOAT64; the stream worker adds new NULLABLE columns by itself and "
        "changes nothing else: migrate or recreate these tables by hand "
        "(docs/warehouse.md#schema-changes)"
    )
