"""The one definition of the asset and exchange tables; every other schema is derived from it.

The BigQuery table schema, the stream worker's typed columns and the JSON schema files that
Terraform reads (``terraform/schemas/*.json``) all come from ``ASSETS``, ``EXCHANGES`` and
``ASSET_HISTORY`` below,
and a test fails when a generated file drifts from them (``make schemas`` rewrites the files).
The columns every record table shares come from the message envelope's one definition
(``shared.envelope``).

Why FLOAT64 for money and supply: CoinCap prices go far below 1e-9 and market caps above 1e12.
BigQuery ``NUMERIC`` keeps nine decimal places, so a price of 0.000000000012345678 becomes 0.
``BIGNUMERIC`` would keep both, but the local emulator cannot create it (its DECIMAL width stops
at 38). ``FLOAT64`` keeps about 15 to 17 significant digits at any magnitude, which is more than
CoinCap's own figures mean, and behaves the same in the emulator and in BigQuery.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from shared.envelope import ENVELOPE_FIELDS

if TYPE_CHECKING:
    from google.cloud import bigquery


TERRAFORM_SCHEMA_DIR = Path(__file__).resolve().parent.parent / "terraform" / "schemas"

# --- Domains: what a value from outside may be -------------------------------------------------
# Every value that reaches a table comes from outside (CoinCap, or anyone who can write a topic),
# so each column declares its domain here, once, and both ends check it: the ingestors
# dead-letter a record outside it (``shared.coincap.models``), the stream worker quarantines the
# row with expressions that cannot throw (``services.stream_worker.transforms``).

TIMESTAMP_MIN_MS = -62_135_596_800_000
"""0001-01-01T00:00:00Z in epoch milliseconds: BigQuery's earliest TIMESTAMP."""
TIMESTAMP_MAX_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z in epoch milliseconds: BigQuery's latest TIMESTAMP (to the
millisecond, the finest CoinCap sends). Beyond it Spark's ``timestamp_millis`` overflows a long
and fails the whole batch."""

DEFAULT_MAX_TEXT_LENGTH = 1024
"""Characters a text column holds unless it says otherwise: far more than any CoinCap name or
URL, far less than a value that could fill a Kafka message or a BigQuery request."""

MAX_RECORD_NESTING_DEPTH = 32
"""How deeply a record's JSON may nest (the record object itself is level 1). CoinCap's deepest
field (``tokens``, a map of lists) is level 3; a record far deeper is refused at ingest rather
than risk a JSON encoder or parser's recursion limit anywhere downstream."""


class ColumnType(StrEnum):
    """Column types, named as BigQuery names them."""

    STRING = "STRING"
    INT64 = "INT64"
    FLOAT64 = "FLOAT64"
    BOOL = "BOOL"
    TIMESTAMP = "TIMESTAMP"


@dataclass(frozen=True)
class Column:
    """One warehouse column, and where its value comes from."""

    name: str
    type: ColumnType
    description: str
    required: bool = False
    source_field: str | None = None
    """The CoinCap field this column is read from; None for envelope and derived columns."""
    minimum: int | None = None
    """The smallest value that means something (0 for a supply or a price, 1 for a rank). A
    smaller one (a negative supply, rank 0) is absurd: the ingestors dead-letter the record and
    the worker quarantines the row, with the reason, rather than store it."""
    max_length: int | None = None
    """STRING only: the most characters a value may have (``text_length_limit``). Every text
    must also be valid Unicode: a lone surrogate (``"\\ud800"``) is outside every domain."""

    @property
    def text_length_limit(self) -> int:
        """The most characters a STRING value of this column may have."""
        return self.max_length if self.max_length is not None else DEFAULT_MAX_TEXT_LENGTH

    @property
    def timestamp_range_ms(self) -> tuple[int, int]:
        """TIMESTAMP only: the epoch milliseconds a value may be, inclusive: BigQuery's range.
        A snapshot time is further held to a window around now (``TableSchema``)."""
        return TIMESTAMP_MIN_MS, TIMESTAMP_MAX_MS


@dataclass(frozen=True)
class TableSchema:
    """A warehouse table: its columns, its key, and how BigQuery lays it out."""

    table: str
    key_column: str
    columns: tuple[Column, ...]
    description: str
    partition_column: str = "processing_timestamp"
    merge_key_columns: tuple[str, ...] = ()
    """What makes a row the same row; a re-run micro-batch adds nothing whose key is there.
    Empty means (key column, ``source_timestamp``)."""
    cluster_columns: tuple[str, ...] = ()
    """What BigQuery clusters the table on; empty means the key column alone."""
    source_timestamp_is_snapshot: bool = True
    """``source_timestamp`` is when CoinCap made the snapshot, so it must lie within
    ``COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS`` of the time it is checked (a page timestamp of
    1e16 is a broken server, not a fact). False for history points, whose time is the past."""

    @property
    def source_key_field(self) -> str:
        """The CoinCap field that identifies a record (``id`` or ``exchangeId``)."""
        field = self.column(self.key_column).source_field
        assert field is not None
        return field

    @property
    def clustering_columns(self) -> list[str]:
        return list(self.cluster_columns) or [self.key_column]

    @property
    def dedup_columns(self) -> tuple[str, ...]:
        """A record is the same record when its key and its source timestamp are equal."""
        return self.merge_key_columns or (self.key_column, "source_timestamp")

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"table {self.table} has no column {name!r}")

    @property
    def stored_columns(self) -> tuple[Column, ...]:
        """The warehouse table's columns: the rows' own (``columns``), then the sinks' own."""
        return (*self.columns, STREAM_BATCH)

    def json_schema(self, columns: tuple[Column, ...] | None = None) -> list[dict[str, str]]:
        """The schema as BigQuery's JSON schema format, the one Terraform's ``schema`` reads:
        every stored column, unless ``columns`` names others."""
        return [
            {
                "name": column.name,
                "type": column.type.value,
                "mode": "REQUIRED" if column.required else "NULLABLE",
                "description": column.description,
            }
            for column in (self.stored_columns if columns is None else columns)
        ]

    def json_schema_text(self) -> str:
        return json.dumps(self.json_schema(), indent=2) + "\n"

    def bigquery_schema(self) -> list[bigquery.SchemaField]:
        """The columns of the rows the worker makes (``columns``): a staging table's schema."""
        from google.cloud import bigquery

        return [
            bigquery.SchemaField.from_api_repr(field) for field in self.json_schema(self.columns)
        ]

    def stored_bigquery_schema(self) -> list[bigquery.SchemaField]:
        """Every column of the warehouse table (``stored_columns``)."""
        from google.cloud import bigquery

        return [bigquery.SchemaField.from_api_repr(field) for field in self.json_schema()]


STREAM_BATCH = Column(
    "stream_batch",
    ColumnType.STRING,
    "The stream worker batch that appended the row through the Storage Write API: the Spark "
    "query id of its checkpoint and the batch id, as <query id>:<batch id>; checked before a "
    "batch that runs again commits. Null for rows the MERGE sink wrote.",
)
"""Bookkeeping of the Storage Write API sink, stored with every row it appends (see
``services.stream_worker.storage_write_sink``); not a column of the rows the worker makes."""

# Columns every record table shares: the envelope fields the ingestors add (derived from their
# one definition in ``shared.envelope``), and the worker's own stamp.
_ENVELOPE_COLUMNS = (
    *(
        Column(field.name, ColumnType(field.column_type), field.description, field.required)
        for field in ENVELOPE_FIELDS
        if field.column_type is not None
    ),
    Column(
        "processing_timestamp",
        ColumnType.TIMESTAMP,
        "When the stream worker processed the record; assets and exchanges are partitioned on it "
        "by day.",
        required=True,
    ),
)

ASSETS = TableSchema(
    table="assets",
    key_column="id",
    description="CoinCap /assets snapshots, one row per asset per poll.",
    columns=(
        Column(
            "id", ColumnType.STRING, "CoinCap asset id, e.g. bitcoin.", True, "id", max_length=200
        ),
        Column("rank", ColumnType.INT64, "Rank by market cap.", source_field="rank", minimum=1),
        Column(
            "symbol",
            ColumnType.STRING,
            "Ticker symbol, e.g. BTC.",
            source_field="symbol",
            max_length=200,
        ),
        Column("name", ColumnType.STRING, "Asset name.", source_field="name", max_length=200),
        Column(
            "supply", ColumnType.FLOAT64, "Circulating supply.", source_field="supply", minimum=0
        ),
        Column(
            "max_supply",
            ColumnType.FLOAT64,
            "Maximum supply; null when unbounded.",
            source_field="maxSupply",
            minimum=0,
        ),
        Column(
            "market_cap_usd",
            ColumnType.FLOAT64,
            "Supply times price, in USD.",
            source_field="marketCapUsd",
            minimum=0,
        ),
        Column(
            "volume_usd_24hr",
            ColumnType.FLOAT64,
            "Trading volume over 24 hours, in USD.",
            source_field="volumeUsd24Hr",
            minimum=0,
        ),
        Column(
            "price_usd", ColumnType.FLOAT64, "Price in USD.", source_field="priceUsd", minimum=0
        ),
        Column(
            "change_percent_24hr",
            ColumnType.FLOAT64,
            "Price change over 24 hours, in percent.",
            source_field="changePercent24Hr",
        ),
        Column(
            "vwap_24hr",
            ColumnType.FLOAT64,
            "Volume-weighted average price over 24 hours.",
            source_field="vwap24Hr",
            minimum=0,
        ),
        Column(
            "explorer",
            ColumnType.STRING,
            "Block explorer URL.",
            source_field="explorer",
            max_length=2048,
        ),
        Column(
            "supply_ratio",
            ColumnType.FLOAT64,
            "supply / max_supply; null when max_supply is null.",
        ),
        *_ENVELOPE_COLUMNS,
    ),
)

EXCHANGES = TableSchema(
    table="exchanges",
    key_column="exchange_id",
    description="CoinCap /exchanges snapshots, one row per exchange per poll.",
    columns=(
        Column(
            "exchange_id",
            ColumnType.STRING,
            "CoinCap exchange id, e.g. kraken.",
            True,
            "exchangeId",
            max_length=200,
        ),
        Column("name", ColumnType.STRING, "Exchange name.", source_field="name", max_length=200),
        Column("rank", ColumnType.INT64, "Rank by volume.", source_field="rank", minimum=1),
        Column(
            "percent_total_volume",
            ColumnType.FLOAT64,
            "Share of the total volume of all exchanges, in percent.",
            source_field="percentTotalVolume",
            minimum=0,
        ),
        Column(
            "volume_usd",
            ColumnType.FLOAT64,
            "Trading volume over 24 hours, in USD.",
            source_field="volumeUsd",
            minimum=0,
        ),
        Column(
            "trading_pairs",
            ColumnType.INT64,
            "Number of trading pairs.",
            source_field="tradingPairs",
            minimum=0,
        ),
        Column(
            "socket", ColumnType.BOOL, "Whether it has a WebSocket feed.", source_field="socket"
        ),
        Column(
            "exchange_url",
            ColumnType.STRING,
            "Website URL.",
            source_field="exchangeUrl",
            max_length=2048,
        ),
        Column(
            "updated",
            ColumnType.TIMESTAMP,
            "When CoinCap last updated the exchange.",
            source_field="updated",
        ),
        *_ENVELOPE_COLUMNS,
    ),
)

ASSET_HISTORY = TableSchema(
    table="asset_history",
    key_column="id",
    description="CoinCap /assets/{id}/history points from `coinstream backfill`, one row per "
    "asset, interval and point in time.",
    # Partitioned by day on the point's own time, so a chart of one asset over a range reads
    # only that range's days, and clustered on (id, interval) so it reads only that asset's
    # blocks. Day rather than month: the sink's MERGE looks back from the batch's oldest point
    # by ``time`` and prunes to the days it touches, every other table is daily (one expiration
    # rule, one Terraform block), and all of CoinCap's history (2013 on, under 5,000 days) fits
    # within BigQuery's 10,000 partitions a table.
    partition_column="time",
    cluster_columns=("id", "interval"),
    merge_key_columns=("id", "interval", "time"),
    source_timestamp_is_snapshot=False,
    columns=(
        Column(
            "id", ColumnType.STRING, "CoinCap asset id, e.g. bitcoin.", True, "id", max_length=200
        ),
        Column(
            "interval",
            ColumnType.STRING,
            "CoinCap history interval of the point: m1, m5, m15, m30, h1, h2, h6, h12 or d1.",
            True,
            "interval",
            max_length=8,
        ),
        Column(
            "time",
            ColumnType.TIMESTAMP,
            "The point's time; the table is partitioned on it by day.",
            True,
            "time",
        ),
        Column("price_usd", ColumnType.FLOAT64, "Price in USD.", source_field="priceUsd"),
        Column(
            "circulating_supply",
            ColumnType.FLOAT64,
            "Circulating supply at that time.",
            source_field="circulatingSupply",
        ),
        *_ENVELOPE_COLUMNS,
    ),
)

QUARANTINE = TableSchema(
    table="quarantine",
    key_column="topic",
    description="Kafka messages the stream worker could not turn into rows, with the reason.",
    merge_key_columns=("topic", "partition", "offset"),
    columns=(
        Column("topic", ColumnType.STRING, "Kafka topic the message came from.", required=True),
        Column("partition", ColumnType.INT64, "Kafka partition.", required=True),
        Column("offset", ColumnType.INT64, "Offset within the partition.", required=True),
        Column("kafka_timestamp", ColumnType.TIMESTAMP, "Kafka's timestamp of the message."),
        Column("raw_value", ColumnType.STRING, "The message value as received."),
        Column("reason", ColumnType.STRING, "Why it was quarantined.", required=True),
        Column(
            "processing_timestamp",
            ColumnType.TIMESTAMP,
            "When the stream worker quarantined it; the table is partitioned on it by day.",
            required=True,
        ),
    ),
)

RECORD_TABLES: tuple[TableSchema, ...] = (ASSETS, EXCHANGES, ASSET_HISTORY)
TABLES: tuple[TableSchema, ...] = (ASSETS, EXCHANGES, ASSET_HISTORY, QUARANTINE)


def json_schema_path(directory: Path, schema: TableSchema) -> Path:
    return directory / f"{schema.table}.json"


def write_json_schemas(directory: Path) -> list[Path]:
    """Write the JSON schema files Terraform reads; ``make schemas`` calls this."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for schema in TABLES:
        path = json_schema_path(directory, schema)
        path.write_text(schema.json_schema_text())
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_json_schemas(TERRAFORM_SCHEMA_DIR):
        print(f"wrote {written_path}")
