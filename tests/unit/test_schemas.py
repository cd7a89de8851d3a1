"""The one schema definition and what is derived from it."""

from __future__ import annotations

import json

import pytest

from shared.envelope import ENVELOPE_FIELDS, PollContext
from shared.schemas import ASSETS, EXCHANGES, TABLES, TERRAFORM_SCHEMA_DIR, json_schema_path

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("schema", TABLES, ids=lambda schema: schema.table)
def test_terraform_schema_files_match_the_definition(schema: object) -> None:
    from shared.schemas import TableSchema

    assert isinstance(schema, TableSchema)
    path = json_schema_path(TERRAFORM_SCHEMA_DIR, schema)
    assert path.read_text() == schema.json_schema_text(), (
        f"{path} has drifted from shared/schemas.py; run `make schemas` and commit the result"
    )


def test_money_and_supply_columns_are_float64_not_numeric() -> None:
    # NUMERIC keeps nine decimal places and would store a price of 1.2e-11 as 0.
    for name in ("price_usd", "market_cap_usd", "supply", "max_supply", "vwap_24hr"):
        assert ASSETS.column(name).type == "FLOAT64"
    assert EXCHANGES.column("volume_usd").type == "FLOAT64"


def test_envelope_columns_come_from_the_envelope_definition() -> None:
    stored = [field for field in ENVELOPE_FIELDS if field.column_type is not None]
    for table in (ASSETS, EXCHANGES):
        for field in stored:
            column = table.column(field.name)
            assert column.type == field.column_type
            assert column.description == field.description
            assert column.required == field.required
    assert ASSETS.column("source_timestamp").type == "TIMESTAMP"
    assert ASSETS.column("source_timestamp").required is True
    assert ASSETS.column("poll_id").type == "STRING"


def test_ingestors_write_every_envelope_field() -> None:
    context = PollContext("poll-1", "assets", "coincap-simulator", 1_700_000_000_000, 1)
    assert list(context.envelope()) == [field.name for field in ENVELOPE_FIELDS]


def test_bigquery_schema_modes_and_keys() -> None:
    fields = {field.name: field for field in EXCHANGES.bigquery_schema()}
    assert fields["exchange_id"].mode == "REQUIRED"
    assert fields["percent_total_volume"].field_type == "FLOAT64"
    assert EXCHANGES.clustering_columns == ["exchange_id"]
    assert ASSETS.partition_column == "processing_timestamp"
    assert ASSETS.dedup_columns == ("id", "source_timestamp")


def test_every_coincap_field_maps_to_one_snake_case_column() -> None:
    assert ASSETS.source_key_field == "id"
    assert EXCHANGES.source_key_field == "exchangeId"
    sources = {c.source_field: c.name for c in ASSETS.columns if c.source_field}
    assert sources["marketCapUsd"] == "market_cap_usd"
    assert sources["volumeUsd24Hr"] == "volume_usd_24hr"
    assert sources["changePercent24Hr"] == "change_percent_24hr"
    assert sources["vwap24Hr"] == "vwap_24hr"
    assert json.loads(ASSETS.json_schema_text())[0]["name"] == "id"
