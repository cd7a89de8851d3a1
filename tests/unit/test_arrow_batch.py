"""The collected micro-batch split in Arrow: each table's rows once per key, and the quarantine."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa

from services.stream_worker.arrow_batch import QUARANTINE_SCHEMA, quarantine_rows, valid_rows
from services.stream_worker.sinks.merge import INLINE_MERGE_MAX_ROWS, rows_parameter
from services.stream_worker.transforms import (
    COORDINATES,
    RAW_VALUE_MAX_CHARACTERS,
    REASON_MAX_CHARACTERS,
)
from shared.schemas import EXCHANGES, QUARANTINE

SOURCE = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def exchange_rows(rows: list[dict[str, object]]) -> pa.Table:
    """Rows shaped as ``arrow_batch.table_rows_of`` makes them for the exchanges table."""
    names = [*EXCHANGES.column_names, "quarantine_reason", *COORDINATES]
    full = [
        {
            **dict.fromkeys(names),
            "source_timestamp": SOURCE,
            "processing_timestamp": SOURCE,
            "topic": "e",
            "partition": 0,
            "kafka_timestamp": SOURCE,
            "raw_value": "{}",
            **row,
        }
        for row in rows
    ]
    return pa.Table.from_pylist(full)


def test_a_record_twice_in_a_batch_is_one_row_the_first() -> None:
    rows = exchange_rows(
        [
            {"exchange_id": "kraken", "rank": 1, "offset": 0},
            {"exchange_id": "binance", "rank": 2, "offset": 1},
            {"exchange_id": "kraken", "rank": 3, "offset": 2},
        ]
    )
    valid = valid_rows(rows, EXCHANGES)
    assert [(row["exchange_id"], row["rank"]) for row in valid.to_pylist()] == [
        ("kraken", 1),
        ("binance", 2),
    ]
    assert valid.column_names == EXCHANGES.column_names


def test_copies_next_to_each_other_leave_every_other_record() -> None:
    rows = exchange_rows(
        [
            {"exchange_id": "kraken", "offset": 0},
            {"exchange_id": "kraken", "offset": 1},
            {"exchange_id": "binance", "offset": 2},
            {"exchange_id": "kraken", "offset": 3},
            {"exchange_id": "coinbase", "offset": 4},
        ]
    )
    kept = valid_rows(rows, EXCHANGES).column("exchange_id").to_pylist()
    assert kept == ["kraken", "binance", "coinbase"]


def test_rows_with_a_reason_are_not_valid_and_go_to_the_quarantine_shaped_as_stored() -> None:
    rows = exchange_rows(
        [
            {"exchange_id": "kraken", "offset": 0},
            {"exchange_id": "bad", "offset": 1, "quarantine_reason": "rank: 'x' is not valid"},
        ]
    )
    assert valid_rows(rows, EXCHANGES).column("exchange_id").to_pylist() == ["kraken"]
    quarantined = quarantine_rows(rows)
    assert quarantined.schema == QUARANTINE_SCHEMA
    assert quarantined.column_names == QUARANTINE.column_names
    assert quarantined.to_pylist()[0]["reason"] == "rank: 'x' is not valid"
    assert quarantined.to_pylist()[0]["offset"] == 1


def test_an_empty_table_stays_empty() -> None:
    empty = exchange_rows([{"exchange_id": "x", "offset": 0}]).slice(0, 0)
    assert valid_rows(empty, EXCHANGES).num_rows == 0
    assert quarantine_rows(empty).num_rows == 0


def test_the_largest_quarantine_rows_fit_one_merge_request() -> None:
    """``RAW_VALUE_MAX_CHARACTERS`` and ``REASON_MAX_CHARACTERS`` against the request the MERGE
    sink sends: as many rows as it sends inline, each as large as the worker makes them, in
    characters that JSON escapes the longest (beyond U+FFFF: two ``\\uXXXX``), stay under
    BigQuery's 10 MB a request."""
    widest = "\U0001f600"
    note = f"; raw_value is the first {RAW_VALUE_MAX_CHARACTERS} of 2147483647 characters"
    row = {
        "topic": "t" * 249,  # Kafka's longest topic name
        "partition": 2**31 - 1,
        "offset": 2**63 - 1,
        "kafka_timestamp": SOURCE,
        "raw_value": widest * RAW_VALUE_MAX_CHARACTERS,
        "reason": widest * REASON_MAX_CHARACTERS + note,
        "processing_timestamp": SOURCE,
    }
    rows = pa.Table.from_pylist([row] * INLINE_MERGE_MAX_ROWS, schema=QUARANTINE_SCHEMA)
    # As google-cloud-bigquery sends a job: the resource as JSON, non-ASCII escaped.
    request = json.dumps(rows_parameter(QUARANTINE, rows).to_api_repr()).encode()
    assert len(request) < 10_000_000, len(request)
