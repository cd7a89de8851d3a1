"""The dashboard's tests read seeded rows (``tests.harness.warehouse_seed``) instead of running
the pipeline; this holds the seeds to what the stream worker's batch path really makes of the
same CoinCap records, so a dashboard test passing on seeds means it passes on the worker's rows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import SparkSession

from shared.schemas import ASSETS, EXCHANGES, TableSchema
from tests.harness.records import message
from tests.harness.warehouse_seed import SimulatedPolls
from tests.harness.worker_batch import TOPICS, run_batch


def milliseconds(at: datetime) -> str:
    return str(round(at.timestamp() * 1000))


def utc(value: Any) -> Any:
    """Timestamps compared as instants, whichever way Arrow hands them over."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def test_seeded_rows_are_the_rows_the_worker_makes_of_the_simulators_records(
    spark: SparkSession,
) -> None:
    fetched = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    polls = SimulatedPolls(fetched - timedelta(minutes=5))
    poll = polls.poll(fetched)
    records = {ASSETS: polls.market.assets, EXCHANGES: polls.market.exchanges}
    seeded = {ASSETS: poll.assets, EXCHANGES: poll.exchanges}

    messages: dict[str, tuple[str, bytes | None]] = {}
    for table, table_records in records.items():
        [first] = {row["source_timestamp"] for row in seeded[table]}
        envelope = {
            "endpoint": json.dumps(table.table),
            "source_timestamp": milliseconds(first),
            "fetched_at": milliseconds(fetched),
            "poll_id": json.dumps(seeded[table][0]["poll_id"]),
        }
        key_field = table.column(table.key_column).source_field
        assert key_field is not None, f"{table.table}'s key comes from no CoinCap field"
        for record in table_records:
            messages[f"{table.table}:{record[key_field]}"] = (
                TOPICS[table.table],
                message(record, **envelope),
            )
    batch = run_batch(spark, messages)
    assert batch.split.quarantine.num_rows == 0, batch.reasons()

    def by_key(table: TableSchema, rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
        # The worker stamps processing_timestamp itself, at the batch's time.
        return {
            row[table.key_column]: {
                name: utc(value) for name, value in row.items() if name != "processing_timestamp"
            }
            for row in rows
        }

    for table in (ASSETS, EXCHANGES):
        worker_rows = batch.rows(table)
        assert [set(row) for row in worker_rows[:1]] == [set(table.column_names)], table.table
        assert by_key(table, seeded[table]) == by_key(table, worker_rows), table.table
