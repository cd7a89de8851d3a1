"""The one schema definition and what is derived from it: the Terraform schema and view files."""

from __future__ import annotations

import json
import re
import textwrap

import pytest

from shared.envelope import ENVELOPE_FIELDS, PollContext
from shared.schemas import ASSETS, EXCHANGES, TABLES, TERRAFORM_SCHEMA_DIR, json_schema_path
from shared.settings import Settings
from shared.warehouse import view_definitions
from shared.warehouse.view_files import (
    TERRAFORM_VIEW_DIR,
    view_file_path,
    view_file_text,
    view_names,
)


@pytest.mark.parametrize("schema", TABLES, ids=lambda schema: schema.table)
def test_terraform_schema_files_match_the_definition(schema: object) -> None:
    from shared.schemas import TableSchema

    assert isinstance(schema, TableSchema)
    path = json_schema_path(TERRAFORM_SCHEMA_DIR, schema)
    assert path.read_text() == schema.json_schema_text(), (
        f"{path} has drifted from shared/schemas/tables.py; run `make schemas` and commit it"
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
    assert ASSETS.column(ASSETS.key_column).source_field == "id"
    assert EXCHANGES.column(EXCHANGES.key_column).source_field == "exchangeId"
    sources = {c.source_field: c.name for c in ASSETS.columns if c.source_field}
    assert sources["marketCapUsd"] == "market_cap_usd"
    assert sources["volumeUsd24Hr"] == "volume_usd_24hr"
    assert sources["changePercent24Hr"] == "change_percent_24hr"
    assert sources["vwap24Hr"] == "vwap_24hr"
    assert json.loads(ASSETS.json_schema_text())[0]["name"] == "id"


@pytest.mark.parametrize("name", view_names())
def test_terraform_view_files_match_the_view_definitions(name: str) -> None:
    path = view_file_path(TERRAFORM_VIEW_DIR, name)
    assert path.is_file() and path.read_text() == view_file_text(name), (
        f"{path} has drifted from shared/warehouse/views.py; run `make schemas` and commit it"
    )


def test_no_terraform_view_file_is_left_from_a_view_that_is_gone() -> None:
    assert sorted(path.stem for path in TERRAFORM_VIEW_DIR.glob("*.sql")) == sorted(view_names())


def test_view_files_leave_the_dataset_to_terraform() -> None:
    # The view the worker creates on the emulator is the file with the dataset filled in.
    settings = Settings(_env_file=None)
    for name, query in view_definitions(settings).items():
        rendered = view_file_text(name).replace("${project}", settings.warehouse_project)
        rendered = rendered.replace("${dataset}", settings.bigquery_dataset)
        assert rendered.splitlines()[1:] == textwrap.dedent(query).strip().splitlines()
        # templatefile reads every ${...} and %{...} as its own: only the two names may appear.
        text = view_file_text(name)
        assert "%{" not in text
        assert set(re.findall(r"\$\{([^}]*)\}", text)) == {"project", "dataset"}
        assert text.count("${") == len(re.findall(r"\$\{([^}]*)\}", text))
