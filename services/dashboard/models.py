"""What the dashboard's JSON API answers, as pydantic models (and so as its OpenAPI schemas).

Series are columnar (one list per measure, aligned on ``t``) because that is the shape a chart
plots, and it keeps a refresh of ten series of a few hundred points small.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class Problem(BaseModel):
    """An error answer: what is wrong and what to do about it."""

    detail: str


class TableStatus(BaseModel):
    """How current one table's rows are, read through its ``*_timeseries`` view."""

    view: str = Field(description="The view read, `project.dataset.view`.")
    exists: bool = Field(description="False until the stream worker has created the views.")
    newest_snapshot: datetime | None = Field(
        description="CoinCap's timestamp of the newest row (its `source_timestamp`)."
    )
    newest_processed: datetime | None = Field(
        description="When the stream worker wrote the newest row (`processing_timestamp`); "
        "changes with every micro-batch that brings rows."
    )


class DashboardStatus(BaseModel):
    """Where the data comes from and how fresh it is; the page polls this to know when to
    redraw."""

    simulated: bool = Field(
        description="True when the ingestors poll the bundled CoinCap simulator (no API key "
        "set), so every number is made up."
    )
    data_source: str = Field(description="Where the numbers come from, in words.")
    warehouse: str = Field(description="The BigQuery emulator's URL, or the BigQuery project.")
    dataset: str = Field(description="`project.dataset` the views live in.")
    refresh_seconds: float = Field(
        description="How often the page checks for new rows: the stream worker's trigger "
        "interval (COINSTREAM_STREAM_TRIGGER_SECONDS)."
    )
    checked_at: datetime
    assets: TableStatus
    exchanges: TableStatus
    has_data: bool = Field(description="True when either table has at least one row.")
    message: str | None = Field(description="Why there is nothing to show, when there is not.")


class AssetSnapshot(BaseModel):
    """An asset's newest row in the time range."""

    id: str
    symbol: str | None
    name: str | None
    rank: int | None
    price_usd: float | None
    change_percent_24hr: float | None
    market_cap_usd: float | None
    volume_usd_24hr: float | None
    supply: float | None
    max_supply: float | None
    supply_percent_of_max: float | None = Field(
        description="supply / max_supply in percent; null when the asset has no max supply."
    )
    snapshot_at: datetime


class AssetsLatest(BaseModel):
    since: datetime
    until: datetime
    assets: list[AssetSnapshot]


class AssetSeries(BaseModel):
    """One asset over time; every list is aligned on ``t``."""

    id: str
    symbol: str | None
    name: str | None
    t: list[int] = Field(description="Snapshot times, epoch milliseconds, ascending.")
    price_usd: list[float | None]
    market_cap_usd: list[float | None]
    supply: list[float | None]
    max_supply: list[float | None]
    supply_percent_of_max: list[float | None]
    rank: list[int | None]


class AssetsSeries(BaseModel):
    since: datetime
    until: datetime
    bucket_seconds: int = Field(
        description="Each point is the last snapshot of a bucket this long, so that a long "
        "range returns at most `points` points per asset."
    )
    series: list[AssetSeries]


class ExchangeSnapshot(BaseModel):
    """An exchange's newest row in the time range."""

    exchange_id: str
    name: str | None
    rank: int | None
    percent_total_volume: float | None
    volume_usd: float | None
    trading_pairs: int | None
    snapshot_at: datetime


class ExchangesLatest(BaseModel):
    since: datetime
    until: datetime
    exchanges: list[ExchangeSnapshot]


class ExchangeSeries(BaseModel):
    """One exchange over time; every list is aligned on ``t``."""

    exchange_id: str
    name: str | None
    t: list[int] = Field(description="Snapshot times, epoch milliseconds, ascending.")
    percent_total_volume: list[float | None]
    volume_usd: list[float | None]
    rank: list[int | None]


class ExchangesSeries(BaseModel):
    since: datetime
    until: datetime
    bucket_seconds: int
    series: list[ExchangeSeries]
