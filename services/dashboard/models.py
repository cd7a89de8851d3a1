"""What the dashboard's JSON API answers, as pydantic models (and so as its OpenAPI schemas).

The status models are written out; each entity's four models (a latest row, the latest answer,
a series, the series answer) are derived from its ``Entity`` description, under the per-entity
names the OpenAPI document shows (``AssetSnapshot``, ``ExchangesSeries``, ...).

Series are columnar (one list per measure, aligned on ``t``) because that is the shape a chart
plots, and it keeps a refresh of ten series of a few hundred points small.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from types import GenericAlias
from typing import Any

from pydantic import BaseModel, Field, create_model

from services.dashboard.entities import Entity, LatestField
from shared.schemas import ColumnType


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
    backfill_command: str = Field(
        description="The command that fills the charts with history from before the first "
        "snapshot; the page suggests it where a range reaches back further than the snapshots."
    )


@dataclass(frozen=True)
class EntityModels:
    """The response models of one entity's routes."""

    snapshot: type[BaseModel]
    """One latest row: key, latest fields, ``snapshot_at``."""
    latest: type[BaseModel]
    """``/api/<entity>/latest``: the range and the rows."""
    series: type[BaseModel]
    """One key over time: key, labels, ``t``, one list per series field."""
    series_answer: type[BaseModel]
    """``/api/<entity>/series``: the range, the bucket length and the series."""
    history: type[BaseModel] | None
    """``/api/<entity>/{key}/history``: one key's backfilled history before its snapshots;
    None for an entity without history."""


PYTHON_TYPES: dict[ColumnType, type] = {
    ColumnType.STRING: str,
    ColumnType.INT64: int,
    ColumnType.FLOAT64: float,
    ColumnType.BOOL: bool,
    ColumnType.TIMESTAMP: datetime,
}


def _value_type(entity: Entity, field: LatestField) -> Any:
    python_type = PYTHON_TYPES[entity.field_type(field)]
    return python_type | None if entity.nullable(field) else python_type


def _definition(annotation: Any, description: str | None = None) -> tuple[Any, Any]:
    """A required ``create_model`` field, described when there is something to say."""
    return annotation, Field(description=description) if description else ...


def _model(name: str, doc: str | None, fields: dict[str, Any]) -> type[BaseModel]:
    return create_model(name, __doc__=doc, **fields)


@functools.cache
def entity_models(entity: Entity) -> EntityModels:
    """The models of ``entity``, made once per process (OpenAPI names each class once)."""
    singular, plural = entity.noun.title(), entity.name.title()

    def value(name: str) -> Any:
        return _value_type(entity, entity.field(name))

    snapshot = _model(
        f"{singular}Snapshot",
        f"An {entity.noun}'s newest row in the time range.",
        {
            entity.key: _definition(str),
            **{
                field.name: _definition(_value_type(entity, field), field.description)
                for field in entity.latest
            },
            "snapshot_at": _definition(datetime),
        },
    )
    series = _model(
        f"{singular}Series",
        f"One {entity.noun} over time; every list is aligned on ``t``.",
        {
            entity.key: _definition(str),
            **{name: _definition(value(name)) for name in entity.labels},
            "t": _definition(
                GenericAlias(list, (int,)), "Snapshot times, epoch milliseconds, ascending."
            ),
            **{name: _definition(GenericAlias(list, (value(name),))) for name in entity.series},
        },
    )
    latest = _model(
        f"{plural}Latest",
        None,
        {
            "since": _definition(datetime),
            "until": _definition(datetime),
            entity.name: _definition(GenericAlias(list, (snapshot,))),
        },
    )
    series_answer = _model(
        f"{plural}Series",
        None,
        {
            "since": _definition(datetime),
            "until": _definition(datetime),
            "bucket_seconds": _definition(
                int,
                "Each point is the last snapshot of a bucket this long, so that a long range "
                f"returns at most `points` points per {entity.noun}.",
            ),
            "series": _definition(GenericAlias(list, (series,))),
        },
    )
    return EntityModels(snapshot, latest, series, series_answer, _history_model(entity))


def _history_model(entity: Entity) -> type[BaseModel] | None:
    if entity.history is None:
        return None
    return _model(
        f"{entity.noun.title()}History",
        f"One {entity.noun}'s backfilled history, before its first snapshot in the range; "
        "every list is aligned on ``t``.",
        {
            entity.key: _definition(str),
            "since": _definition(datetime),
            "until": _definition(datetime),
            "bucket_seconds": _definition(
                int,
                "Each point is the last of a bucket this long, so that a range returns about "
                "`points` points.",
            ),
            "live_since": _definition(
                datetime | None,
                "Time of the first snapshot in the range, where live data begins: history is "
                "only answered before it. Null when no snapshot is in the range.",
            ),
            "t": _definition(
                GenericAlias(list, (int,)), "Point times, epoch milliseconds, ascending."
            ),
            "interval": _definition(
                GenericAlias(list, (str,)),
                "The CoinCap interval each point was fetched at (m1 ... d1).",
            ),
            **{
                field.name: _definition(
                    GenericAlias(list, (PYTHON_TYPES[field.type] | None,)), field.description
                )
                for field in entity.history.fields
            },
        },
    )
