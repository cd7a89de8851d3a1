"""A warehouse the dashboard can read without a pipeline: the dataset, tables and views made as
the stream worker makes them, and rows loaded through the real BigQuery client, shaped as the
worker writes them.

The dashboard's tests need rows, not the processes that make them: seeding costs a load job
where the pipeline costs a Spark driver start and a wait for its first batches. ``worker_row``
makes a row the way ``services.stream_worker.transforms`` does for a valid CoinCap record
(every column of the table, CoinCap's field renamed and typed, ``supply_ratio`` derived, the
envelope's columns and the worker's ``processing_timestamp``); ``test_warehouse_seed`` holds it
to what the worker's batch path makes of the same records. ``SimulatedPolls`` polls the market
the CoinCap simulator serves (the same code, seeded), so the rows have its 165 assets and 40
exchanges, ranks, and volume shares that sum to 100.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud import bigquery

from services.coincap_simulator.market import SimulatedMarket, load_universe
from shared.schemas import ASSETS, EXCHANGES, ColumnType, TableSchema
from shared.settings import Settings
from shared.warehouse import create_bigquery_client, ensure_views, ensure_warehouse, table_id

FETCH_DELAY = timedelta(milliseconds=40)
"""How long after CoinCap's snapshot a seeded poll's ingestor received it."""
PROCESS_DELAY = timedelta(seconds=1)
"""How long after the fetch a seeded row was processed by the worker."""


def prepared_warehouse(settings: Settings) -> bigquery.Client:
    """The dataset, its tables and the dashboard's views, as the worker makes them at start;
    returns the client that reached them."""
    client = create_bigquery_client(settings)
    ensure_warehouse(client, settings)
    ensure_views(client, settings)
    return client


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {value!r} to a seeded row; give it as JSON or a datetime")


def load_rows(
    client: bigquery.Client,
    settings: Settings,
    table: TableSchema,
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Append ``rows`` (column -> value; timestamps as datetimes or ISO text) to ``table`` with
    one load job, as newline-delimited JSON."""
    body = io.BytesIO("\n".join(json.dumps(row, default=_json_value) for row in rows).encode())
    client.load_table_from_file(
        body,
        table_id(settings, table),
        size=None,
        job_config=bigquery.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON"),
    ).result(timeout=60)


def _typed(value: Any, column_type: ColumnType) -> Any:
    """A valid CoinCap value as the worker types it (decimal text to FLOAT64, epoch
    milliseconds to TIMESTAMP, ...); the seeds carry no value the worker would quarantine."""
    if value is None:
        return None
    if column_type is ColumnType.FLOAT64:
        return float(value)
    if column_type is ColumnType.INT64:
        return int(value)
    if column_type is ColumnType.BOOL:
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if column_type is ColumnType.TIMESTAMP:
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    return str(value)


def worker_row(
    table: TableSchema,
    record: Mapping[str, Any],
    *,
    source_timestamp: datetime,
    processed_at: datetime,
    fetched_at: datetime | None = None,
    poll_id: str = "seed",
) -> dict[str, Any]:
    """The row the worker writes for ``record`` (CoinCap's camelCase fields, as the ingestors
    publish it) arriving in an envelope with these times: every column of ``table``, by name.
    A field the record lacks is null, as in the worker."""
    envelope: dict[str, Any] = {
        "source_timestamp": source_timestamp,
        "fetched_at": fetched_at or source_timestamp + FETCH_DELAY,
        "poll_id": poll_id,
        "processing_timestamp": processed_at,
    }
    row: dict[str, Any] = {}
    for column in table.columns:
        if column.source_field is not None:
            row[column.name] = _typed(record.get(column.source_field), column.type)
        elif column.name in envelope:
            row[column.name] = envelope[column.name]
        elif column.name == "supply_ratio":
            supply, max_supply = row["supply"], row["max_supply"]
            row[column.name] = supply / max_supply if supply is not None and max_supply else None
        else:
            raise ValueError(f"no seeded value for {table.table}.{column.name}; add one here")
    return row


@dataclass(frozen=True)
class Poll:
    """One poll of both endpoints: the rows the worker writes for it, by table."""

    assets: list[dict[str, Any]]
    exchanges: list[dict[str, Any]]


class SimulatedPolls:
    """The simulator's market, polled at the times a test picks.

    The market is the one ``python -m services.coincap_simulator`` serves (seeded, so every run
    sees the same walk), moving once a second from ``first_poll``; polls must come in time order,
    as the market only moves forward.
    """

    def __init__(self, first_poll: datetime, seed: int = 7) -> None:
        self.market = SimulatedMarket(
            load_universe(), seed=seed, tick_seconds=1.0, started_at=first_poll.timestamp()
        )

    def poll(self, at: datetime) -> Poll:
        """Both endpoints fetched at ``at``; the rows were processed ``PROCESS_DELAY`` later."""
        self.market.advance_to(at.timestamp())
        snapshot = datetime.fromtimestamp(self.market.timestamp_ms / 1000, UTC)
        poll_id = uuid.uuid4().hex

        def row(table: TableSchema, record: Mapping[str, Any]) -> dict[str, Any]:
            return worker_row(
                table,
                record,
                source_timestamp=snapshot,
                fetched_at=at,
                processed_at=at + PROCESS_DELAY,
                poll_id=poll_id,
            )

        return Poll(
            assets=[row(ASSETS, record) for record in self.market.assets],
            exchanges=[row(EXCHANGES, record) for record in self.market.exchanges],
        )

    def load(
        self, client: bigquery.Client, settings: Settings, times: Sequence[datetime]
    ) -> list[Poll]:
        """A poll at each of ``times`` (oldest first), loaded: one load job per table."""
        polls = [self.poll(at) for at in times]
        load_rows(client, settings, ASSETS, [row for poll in polls for row in poll.assets])
        load_rows(client, settings, EXCHANGES, [row for poll in polls for row in poll.exchanges])
        return polls
