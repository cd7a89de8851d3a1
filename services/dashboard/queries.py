"""The dashboard's warehouse queries: bounded reads of each entity's ``*_timeseries`` view.

Every query is bounded three ways, so it stays fast on months of data: by time (``ts`` within
the range, and ``processing_timestamp`` from its start, which lets BigQuery prune the day
partitions outside it), by resolution (a series keeps one snapshot per bucket, sized so a range
gives at most ``points`` points), and by row count (``LIMIT``). Every value the user chose goes
in as a query parameter; only our own view and column names (from ``entities``) are part of the
SQL text.

The functions are synchronous, like the BigQuery client; the routes run them in a thread pool.
Each is timed in ``coinstream_dashboard_query_duration_seconds``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud import bigquery
from pydantic import BaseModel

from services.dashboard.entities import Entity, LatestField
from services.dashboard.metrics import timed_query
from services.dashboard.models import TableStatus, entity_models
from shared.settings import WarehouseSettings
from shared.warehouse import QueryParameter, newest_row, relation_id, run_query

STATUS_DEADLINE_SECONDS = 5.0
"""The status check answers within seconds even when the warehouse is down, so the page can
say so promptly; data queries get the full ``bigquery_timeout_seconds``."""

STATUS_HORIZON = timedelta(days=30)
"""How far back the status check looks for the newest row, after the last day: older data is
reported as none, so a stopped pipeline never makes every status poll scan the whole table."""


@dataclass(frozen=True)
class TimeRange:
    """A closed range of snapshot times."""

    since: datetime
    until: datetime

    def bucket_seconds(self, points: int) -> int:
        """The bucket length that gives at most about ``points`` points over the range."""
        span = max((self.until - self.since).total_seconds(), 1.0)
        return max(1, math.ceil(span / max(points, 1)))


def table_status(
    client: bigquery.Client, settings: WarehouseSettings, entity: Entity
) -> TableStatus:
    """The newest row of the entity's view, looking back at most STATUS_HORIZON."""
    view = relation_id(settings, entity.view)
    with timed_query(f"{entity.name}_status"):
        newest = newest_row(
            client,
            settings,
            view,
            horizon=STATUS_HORIZON,
            snapshot_column="ts",
            deadline=min(STATUS_DEADLINE_SECONDS, settings.bigquery_timeout_seconds),
        )
    return TableStatus(
        view=view,
        exists=newest is not None,
        newest_snapshot=newest.snapshot if newest else None,
        newest_processed=newest.processed if newest else None,
    )


def _range_parameters(time_range: TimeRange) -> list[QueryParameter]:
    return [
        bigquery.ScalarQueryParameter("since", "TIMESTAMP", time_range.since),
        bigquery.ScalarQueryParameter("until", "TIMESTAMP", time_range.until),
    ]


# ``processing_timestamp >= @since`` adds nothing to ``ts >= @since`` (a row is processed after
# CoinCap stamps it) except that it lets BigQuery skip the partitions before the range.
_IN_RANGE = "processing_timestamp >= @since AND ts >= @since AND ts <= @until"


def _select(field: LatestField) -> str:
    return f"{field.expression} AS {field.name}" if field.expression else field.name


def latest(
    client: bigquery.Client,
    settings: WarehouseSettings,
    entity: Entity,
    time_range: TimeRange,
    limit: int,
) -> list[BaseModel]:
    """Each key's newest snapshot in the range, best rank first."""
    columns = ", ".join([entity.key, *(_select(field) for field in entity.latest)])
    sql = f"""
        SELECT {columns}, ts AS snapshot_at
        FROM `{relation_id(settings, entity.view)}`
        WHERE {_IN_RANGE}
        QUALIFY ROW_NUMBER() OVER (PARTITION BY {entity.key} ORDER BY ts DESC) = 1
        ORDER BY rank IS NULL, rank, {entity.key}
        LIMIT @row_limit"""
    parameters = [
        *_range_parameters(time_range),
        bigquery.ScalarQueryParameter("row_limit", "INT64", limit),
    ]
    with timed_query(f"{entity.name}_latest"):
        rows = run_query(client, settings, sql, parameters) or []
    snapshot = entity_models(entity).snapshot
    return [snapshot.model_validate(row) for row in rows]


def series(
    client: bigquery.Client,
    settings: WarehouseSettings,
    entity: Entity,
    ids: Sequence[str],
    time_range: TimeRange,
    points: int,
) -> list[BaseModel]:
    """The series fields of ``ids`` over the range, one point per bucket, in the order of
    ``ids`` (those with no rows left out).

    A point is the bucket's last snapshot rather than an average, so a rank stays a rank and
    the newest point is the newest snapshot.
    """
    key = entity.key
    measures = [_select(entity.field(name)) for name in entity.series]
    sql = f"""
        SELECT {", ".join([key, *entity.labels])}, UNIX_MILLIS(ts) AS t, {", ".join(measures)}
        FROM `{relation_id(settings, entity.view)}`
        WHERE {_IN_RANGE} AND {key} IN UNNEST(@ids)
        QUALIFY ROW_NUMBER() OVER (
            PARTITION BY {key}, DIV(UNIX_SECONDS(ts), @bucket_seconds) ORDER BY ts DESC) = 1
        ORDER BY {key}, t
        LIMIT @row_limit"""
    parameters = [
        *_range_parameters(time_range),
        bigquery.ArrayQueryParameter("ids", "STRING", list(ids)),
        bigquery.ScalarQueryParameter("bucket_seconds", "INT64", time_range.bucket_seconds(points)),
        # One more than the buckets a range can touch, per id.
        bigquery.ScalarQueryParameter("row_limit", "INT64", len(ids) * (points + 2)),
    ]
    with timed_query(f"{entity.name}_series"):
        rows = run_query(client, settings, sql, parameters) or []
    by_key: dict[str, dict[str, Any]] = {}
    for row in rows:
        one = by_key.setdefault(
            row[key], {key: row[key], "t": [], **{name: [] for name in entity.series}}
        )
        # Rows come oldest first, so the newest labels win, should CoinCap rename a key.
        one.update({label: row[label] for label in entity.labels})
        one["t"].append(int(row["t"]))
        for name in entity.series:
            one[name].append(row[name])
    model = entity_models(entity).series
    return [model.model_validate(by_key[wanted]) for wanted in ids if wanted in by_key]


def live_since(
    client: bigquery.Client,
    settings: WarehouseSettings,
    entity: Entity,
    key: str,
    time_range: TimeRange,
) -> datetime | None:
    """Time of ``key``'s first snapshot in the range: where live data begins."""
    sql = f"""
        SELECT MIN(ts) AS live_since
        FROM `{relation_id(settings, entity.view)}`
        WHERE {_IN_RANGE} AND {entity.key} = @key"""
    parameters = [
        *_range_parameters(time_range),
        bigquery.ScalarQueryParameter("key", "STRING", key),
    ]
    with timed_query(f"{entity.name}_live_since"):
        rows = run_query(client, settings, sql, parameters) or []
    value = rows[0]["live_since"] if rows else None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def history(
    client: bigquery.Client,
    settings: WarehouseSettings,
    entity: Entity,
    key: str,
    time_range: TimeRange,
    points: int,
) -> BaseModel:
    """``key``'s backfilled history in the range, before its first snapshot there, one point
    per bucket (the bucket's last, as in ``series``); empty when none was backfilled.

    The range on ``time`` is the history table's partition column, so only the days in range
    are read, and its clustering on the key keeps them to this key's blocks.
    """
    described = entity.history
    models = entity_models(entity)
    assert described is not None and models.history is not None
    bucket_seconds = time_range.bucket_seconds(points)
    begins = live_since(client, settings, entity, key, time_range)
    # Quoted: ``time`` is a type name and ``interval`` a keyword in SQL.
    time, interval = f"`{described.time_column}`", f"`{described.interval_column}`"
    sql = f"""
        SELECT UNIX_MILLIS({time}) AS t, {interval} AS point_interval,
               {", ".join(field.name for field in described.fields)}
        FROM `{relation_id(settings, described.table)}`
        WHERE {entity.key} = @key AND {time} >= @since AND {time} <= @until
            AND {time} < @live_since
        QUALIFY ROW_NUMBER() OVER (
            PARTITION BY DIV(UNIX_SECONDS({time}), @bucket_seconds)
            ORDER BY {time} DESC, {interval}) = 1
        ORDER BY t
        LIMIT @row_limit"""
    parameters = [
        *_range_parameters(time_range),
        bigquery.ScalarQueryParameter("key", "STRING", key),
        # No snapshot in the range: history may fill all of it.
        bigquery.ScalarQueryParameter(
            "live_since", "TIMESTAMP", begins or time_range.until + timedelta(seconds=1)
        ),
        bigquery.ScalarQueryParameter("bucket_seconds", "INT64", bucket_seconds),
        bigquery.ScalarQueryParameter("row_limit", "INT64", points + 2),
    ]
    with timed_query(f"{entity.name}_history"):
        rows = run_query(client, settings, sql, parameters) or []
    return models.history.model_validate(
        {
            entity.key: key,
            "since": time_range.since,
            "until": time_range.until,
            "bucket_seconds": bucket_seconds,
            "live_since": begins,
            "t": [int(row["t"]) for row in rows],
            "interval": [row["point_interval"] for row in rows],
            **{field.name: [row[field.name] for row in rows] for field in described.fields},
        }
    )
