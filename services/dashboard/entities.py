"""What the dashboard shows of each entity (assets, exchanges), described once.

An ``Entity`` names the view it is read through, its key, its labels, and the fields of its
latest table and of its series. The SQL (``queries``), the response models (``models``) and the
routes (``routes.entities``) are all derived from it, as the stream worker's tables are from
``shared.schemas``; a field's type is its column's there unless the field is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared import schemas
from shared.schemas import ColumnType, TableSchema


@dataclass(frozen=True)
class LatestField:
    """One field of an entity's latest table: a column of its view, or an expression over it."""

    name: str
    expression: str | None = None
    """SQL over the view's columns for a computed field; None when the field is the column."""
    type: ColumnType | None = None
    """A computed field's type; a column's type is the one its table declares."""
    description: str | None = None


@dataclass(frozen=True)
class HistoryField:
    """One measured column of an entity's history table."""

    name: str
    description: str
    type: ColumnType = ColumnType.FLOAT64


@dataclass(frozen=True)
class History:
    """Where an entity's backfilled history is (``coinstream backfill`` writes it).

    A chart draws it where the snapshots do not reach: before the first snapshot in the range.
    One row per key, ``interval`` and ``time``; the table is partitioned on ``time`` and
    clustered on the key, so a range of one key reads only its own days.
    """

    table: str
    time_column: str
    interval_column: str
    """CoinCap's interval the row was fetched at (m1 ... d1)."""
    fields: tuple[HistoryField, ...]


@dataclass(frozen=True)
class Entity:
    """An entity the dashboard charts: where its rows are, and which fields it answers with.

    Every latest row is the key, then ``latest`` in order, then ``snapshot_at`` (the snapshot's
    time); every series is the key, ``labels``, ``t`` (epoch milliseconds), then one list per
    name in ``series``. Rows are ordered by ``rank``, which every entity has.
    """

    name: str
    """Plural: the URL segment (``/api/<name>/...``), the OpenAPI tag and the latest answer's
    list of rows."""
    noun: str
    table: TableSchema
    view: str
    """The ``*_timeseries`` view rows are read through (``ts`` is the snapshot's time)."""
    labels: tuple[str, ...]
    """Fields that name a key on a chart; a series carries their newest values."""
    latest: tuple[LatestField, ...]
    series: tuple[str, ...]
    """Names of ``latest`` fields plotted over time."""
    latest_description: str
    series_in_words: str
    history: History | None = None
    """Backfilled history, for entities that have one."""

    def __post_init__(self) -> None:
        for name in (*self.labels, *self.series):
            self.field(name)  # a label or series must be a latest field: fail at import

    @property
    def key(self) -> str:
        return self.table.key_column

    def field(self, name: str) -> LatestField:
        for field in self.latest:
            if field.name == name:
                return field
        raise KeyError(f"the dashboard's {self.name} have no field {name!r}")

    def field_type(self, field: LatestField) -> ColumnType:
        return field.type or self.table.column(field.name).type

    def nullable(self, field: LatestField) -> bool:
        """Computed fields may be null; a column only when its table allows it."""
        return field.expression is not None or not self.table.column(field.name).required


ASSETS = Entity(
    name="assets",
    noun="asset",
    table=schemas.ASSETS,
    view="assets_timeseries",
    labels=("symbol", "name"),
    latest=(
        LatestField("symbol"),
        LatestField("name"),
        LatestField("rank"),
        LatestField("price_usd"),
        LatestField("change_percent_24hr"),
        LatestField("market_cap_usd"),
        LatestField("volume_usd_24hr"),
        LatestField("supply"),
        LatestField("max_supply"),
        LatestField(
            "supply_percent_of_max",
            expression="supply_ratio * 100",
            type=ColumnType.FLOAT64,
            description="supply / max_supply in percent; null when the asset has no max supply.",
        ),
    ),
    series=(
        "price_usd",
        "market_cap_usd",
        "supply",
        "max_supply",
        "supply_percent_of_max",
        "rank",
    ),
    latest_description="Rank, price, 24 h change, market cap, supply, max supply and share of "
    "max supply, read through the `assets_timeseries` view. Empty when the warehouse has no "
    "rows in the range.",
    series_in_words="Price, market cap, supply and rank",
    history=History(
        table="asset_history",
        time_column="time",
        interval_column="interval",
        fields=(
            HistoryField("price_usd", "Price in USD."),
            HistoryField("circulating_supply", "Circulating supply."),
        ),
    ),
)

EXCHANGES = Entity(
    name="exchanges",
    noun="exchange",
    table=schemas.EXCHANGES,
    view="exchanges_timeseries",
    labels=("name",),
    latest=(
        LatestField("name"),
        LatestField("rank"),
        LatestField("percent_total_volume"),
        LatestField("volume_usd"),
        LatestField("trading_pairs"),
    ),
    series=("percent_total_volume", "volume_usd", "rank"),
    latest_description="Rank, share of total volume, USD volume and trading pairs, read "
    "through the `exchanges_timeseries` view; the shares of one snapshot add up to about 100.",
    series_in_words="Share of total volume, USD volume and rank",
)

ENTITIES: tuple[Entity, ...] = (ASSETS, EXCHANGES)
