"""The stream worker quarantines what the ingestors refuse as absurd: each value the simulator's
``absurd_values`` knob serves, through the real transforms in a local Spark, gets a quarantine
reason naming the field (so it becomes a quarantine row), never a row of its table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from pyspark.sql import SparkSession

from services.coincap_simulator.faults import ABSURD_VALUES
from services.stream_worker.transforms import parse_envelopes, rows_for_topic, table_rows
from shared.coincap.models import RecordKind, validation_error
from shared.schemas import ASSETS, EXCHANGES, TableSchema
from tests.integration.test_transforms import BITCOIN, KRAKEN, envelope, kafka_messages

pytestmark = pytest.mark.integration

CASES = [
    ("assets", ASSETS, BITCOIN, "id", ABSURD_VALUES["assets"]),
    ("exchanges", EXCHANGES, KRAKEN, "exchangeId", ABSURD_VALUES["exchanges"]),
]


def quarantine_reasons(
    spark: SparkSession, table: TableSchema, records: Sequence[dict[str, Any]]
) -> dict[str, str | None]:
    """Each record's ``quarantine_reason`` from the worker's transforms, by its key."""
    messages = kafka_messages(spark, [("t", envelope(record)) for record in records])
    rows = table_rows(rows_for_topic(parse_envelopes(messages), "t"), table).collect()
    return {row[table.key_column]: row["quarantine_reason"] for row in rows}


@pytest.mark.parametrize(("kind", "table", "sound", "key", "absurd"), CASES)
def test_every_absurd_value_is_quarantined_with_its_field(
    spark: SparkSession,
    kind: RecordKind,
    table: TableSchema,
    sound: dict[str, object],
    key: str,
    absurd: tuple[tuple[str, str], ...],
) -> None:
    records = [
        {**sound, key: f"absurd-{number}", field: value}
        for number, (field, value) in enumerate(absurd)
    ]
    reasons = quarantine_reasons(spark, table, [*records, {**sound, key: "sound"}])

    assert reasons.pop("sound") is None
    for number, (field, value) in enumerate(absurd):
        reason = reasons[f"absurd-{number}"]
        assert reason is not None and reason.startswith(f"{field}: '{value}' "), reason
    # The ingestors refuse the same records, so a replay or another producer meets one rule.
    assert all(validation_error(kind, record) is not None for record in records)


def test_a_value_cast_to_infinity_or_nan_is_quarantined(spark: SparkSession) -> None:
    texts = ["1e400", "-1e400", "NaN", "Infinity", "12.5"]
    records = [{**BITCOIN, "id": text, "vwap24Hr": text} for text in texts]
    reasons = quarantine_reasons(spark, ASSETS, records)
    assert reasons.pop("12.5") is None
    for text, reason in reasons.items():
        assert reason is not None and f"vwap24Hr: '{text}' is not a finite FLOAT64" in reason
