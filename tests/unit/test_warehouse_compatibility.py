"""The check the stream worker runs where Terraform owns the tables, on table definitions alone.

``bigquery.Table`` objects are built here as BigQuery's API would answer them; no warehouse is
asked. tests/integration/test_warehouse.py runs the same check against the emulator.
"""

from __future__ import annotations

import pytest
from google.cloud import bigquery

from shared.schemas import ASSETS, EXCHANGES, QUARANTINE
from shared.settings import Settings
from shared.warehouse import table_definition
from shared.warehouse.compatibility import (
    WORKER_ADVICE,
    addable_columns,
    incompatibility_message,
    standard_type,
    table_differences,
)

SETTINGS = Settings(_env_file=None, gcp_project="my-project")


def as_the_api_answers(table: bigquery.Table) -> bigquery.Table:
    """The table as ``get_table`` returns it: legacy type names (FLOAT, INTEGER, BOOLEAN)."""
    legacy = {"FLOAT64": "FLOAT", "INT64": "INTEGER", "BOOL": "BOOLEAN"}
    answered = bigquery.Table.from_api_repr(table.to_api_repr())
    answered.schema = [
        bigquery.SchemaField(field.name, legacy.get(field.field_type, field.field_type), field.mode)
        for field in table.schema
    ]
    return answered


def with_column(table: bigquery.Table, name: str, field_type: str, mode: str) -> bigquery.Table:
    changed = as_the_api_answers(table)
    others = [field for field in changed.schema if field.name != name]
    changed.schema = [*others, bigquery.SchemaField(name, field_type, mode)]
    return changed


@pytest.mark.parametrize("schema", [ASSETS, EXCHANGES, QUARANTINE], ids=lambda s: s.table)
def test_the_table_terraform_makes_from_the_same_definition_is_compatible(schema: object) -> None:
    from shared.schemas import TableSchema

    assert isinstance(schema, TableSchema)
    expected = table_definition(SETTINGS, schema)
    assert table_differences(expected, as_the_api_answers(expected)) == []


def test_legacy_and_standard_type_names_are_the_same_type() -> None:
    assert standard_type("FLOAT") == standard_type("FLOAT64") == "FLOAT64"
    assert standard_type("INTEGER") == "INT64"
    assert standard_type("BOOLEAN") == "BOOL"
    assert standard_type("timestamp") == "TIMESTAMP"


def test_a_column_of_another_type_is_named_with_both_types() -> None:
    expected = table_definition(SETTINGS, ASSETS)
    actual = with_column(expected, "price_usd", "STRING", "NULLABLE")
    assert table_differences(expected, actual) == [
        "column price_usd is STRING, the code writes FLOAT64"
    ]


def test_a_missing_column_and_a_mode_that_differs_are_named() -> None:
    expected = table_definition(SETTINGS, EXCHANGES)
    actual = as_the_api_answers(expected)
    actual.schema = [
        bigquery.SchemaField(field.name, field.field_type, "NULLABLE")
        if field.name == "exchange_id"
        else field
        for field in actual.schema
        if field.name != "volume_usd"
    ]
    assert table_differences(expected, actual) == [
        "column exchange_id is NULLABLE, the code needs REQUIRED",
        "column volume_usd is missing",
    ]


def test_an_unknown_nullable_column_is_tolerated_but_not_a_required_one() -> None:
    expected = table_definition(SETTINGS, ASSETS)
    added = as_the_api_answers(expected)
    added.schema = [*added.schema, bigquery.SchemaField("note", "STRING", "NULLABLE")]
    assert table_differences(expected, added) == []
    added.schema = [*added.schema, bigquery.SchemaField("owner", "STRING", "REQUIRED")]
    assert table_differences(expected, added) == [
        "column owner is REQUIRED but the code does not write it"
    ]


def test_partitioning_that_differs_is_named() -> None:
    expected = table_definition(SETTINGS, ASSETS)
    by_source_time = as_the_api_answers(expected)
    by_source_time.time_partitioning = bigquery.TimePartitioning(
        type_=bigquery.TimePartitioningType.DAY, field="source_timestamp"
    )
    assert table_differences(expected, by_source_time) == [
        "it is partitioned by DAY on source_timestamp, "
        "the code expects partitioned by DAY on processing_timestamp"
    ]
    hourly = as_the_api_answers(expected)
    hourly.time_partitioning = bigquery.TimePartitioning(
        type_=bigquery.TimePartitioningType.HOUR, field="processing_timestamp"
    )
    assert table_differences(expected, hourly) == [
        "it is partitioned by HOUR on processing_timestamp, "
        "the code expects partitioned by DAY on processing_timestamp"
    ]
    unpartitioned = as_the_api_answers(expected)
    unpartitioned.time_partitioning = None
    assert table_differences(expected, unpartitioned) == [
        "it is not partitioned by time, the code expects partitioned by DAY on processing_timestamp"
    ]


def test_partition_expiration_is_not_the_codes_business() -> None:
    expected = table_definition(SETTINGS, ASSETS)
    expiring = as_the_api_answers(expected)
    expiring.time_partitioning = bigquery.TimePartitioning(
        type_=bigquery.TimePartitioningType.DAY,
        field="processing_timestamp",
        expiration_ms=30 * 86_400_000,
    )
    assert table_differences(expected, expiring) == []


def test_clustering_that_differs_is_named() -> None:
    expected = table_definition(SETTINGS, ASSETS)
    actual = as_the_api_answers(expected)
    actual.clustering_fields = ["symbol", "id"]
    assert table_differences(expected, actual) == [
        "it is clustered on symbol, id, the code expects id"
    ]
    actual.clustering_fields = None
    assert table_differences(expected, actual) == [
        "it is clustered on nothing, the code expects id"
    ]


def test_the_message_is_one_line_naming_each_difference_and_the_command() -> None:
    message = incompatibility_message(
        SETTINGS, ["table assets: column price_usd is missing", "view assets_latest does not exist"]
    )
    assert "\n" not in message
    assert message == (
        "the BigQuery dataset my-project.coinstream is not what this version of coinstream "
        "writes to: table assets: column price_usd is missing; view assets_latest does not "
        "exist; run `terraform -chdir=terraform apply` with this version's terraform/ files to "
        "bring it up to date"
    )


def test_one_owner_of_the_schema_per_environment() -> None:
    assert Settings(_env_file=None).worker_owns_warehouse_schema is True
    assert SETTINGS.worker_owns_warehouse_schema is False
    assert Settings(
        _env_file=None, gcp_project="my-project", warehouse_schema_owner="worker"
    ).worker_owns_warehouse_schema
    assert not Settings(
        _env_file=None, warehouse_schema_owner="terraform"
    ).worker_owns_warehouse_schema


def test_only_a_missing_nullable_column_can_be_added() -> None:
    expected = table_definition(SETTINGS, ASSETS)
    older = as_the_api_answers(expected)
    older.schema = [
        field for field in older.schema if field.name not in ("explorer", "processing_timestamp")
    ]
    assert [field.name for field in addable_columns(expected, older)] == ["explorer"]
    assert addable_columns(expected, as_the_api_answers(expected)) == []


def test_where_the_worker_owns_the_tables_the_message_says_what_it_will_not_do() -> None:
    message = incompatibility_message(
        SETTINGS,
        ["table assets: column price_usd is STRING, the code writes FLOAT64"],
        WORKER_ADVICE,
    )
    assert "\n" not in message
    assert message.endswith(
        "the stream worker adds new NULLABLE columns by itself and changes nothing else: migrate "
        "or recreate these tables by hand (docs/warehouse.md#schema-changes)"
    )
