"""The asset, exchange, history and quarantine tables: each column, its source and its domain.

Why FLOAT64 for money and supply: CoinCap prices go far below 1e-9 and market caps above 1e12.
BigQuery ``NUMERIC`` keeps nine decimal places, so a price of 0.000000000012345678 becomes 0.
``BIGNUMERIC`` would keep both, but the local emulator cannot create it (its DECIMAL width stops
at 38). ``FLOAT64`` keeps about 15 to 17 significant digits at any magnitude, which is more than
CoinCap's own figures mean, and behaves the same in the emulator and in BigQuery.
"""

from __future__ import annotations

from shared.envelope import ENVELOPE_FIELDS
from shared.schemas.columns import Column, ColumnType
from shared.schemas.table_schema import TableSchema

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
