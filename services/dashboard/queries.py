"""The dashboard's warehouse queries: bounded reads of the ``*_timeseries`` views.

Every query is bounded three ways, so it stays fast on months of data: by time (``ts`` within
the range, and ``processing_timestamp`` from its start, which lets BigQuery prune the day
partitions outside it), by resolution (a series keeps one snapshot per bucket, sized so a range
gives at most ``points`` points), and by row count (``LIMIT``). Every value the user chose goes
in as a query parameter; only our own view names are part of the SQL text.

The functions are synchronous, like the BigQuery client; the routes run them in a thread pool.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core.exceptions import BadRequest, GoogleAPIError, NotFound, RetryError
from google.auth.exceptions import GoogleAuthError
from google.cloud import bigquery
from requests.exceptions import RequestException

from services.dashboard.models import (
    AssetSeries,
    AssetSnapshot,
    ExchangeSeries,
    ExchangeSnapshot,
    TableStatus,
)
from shared.settings import Settings
from shared.warehouse import bigquery_retry

ASSETS_VIEW = "assets_timeseries"
EXCHANGES_VIEW = "exchanges_timeseries"

STATUS_DEADLINE_SECONDS = 5.0
"""The status check answers within seconds even when the warehouse is down, so the page can
say so promptly; data queries get the full ``bigquery_timeout_seconds``."""

RECENT_WINDOW = timedelta(days=1)
STATUS_HORIZON = timedelta(days=30)
"""How far back the status check looks for the newest row: the last day first (one or two
partitions), then the last 30 days. Older data is reported as none, so a stopped pipeline never
makes every status poll scan the whole table."""


class WarehouseUnavailable(Exception):
    """The warehouse did not answer; ``detail`` names it and says what to check."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class TimeRange:
    """A closed range of snapshot times."""

    since: datetime
    until: datetime

    def bucket_seconds(self, points: int) -> int:
        """The bucket length that gives at most about ``points`` points over the range."""
        span = max((self.until - self.since).total_seconds(), 1.0)
        return max(1, math.ceil(span / max(points, 1)))


def warehouse_description(settings: Settings) -> str:
    """The warehouse in words, as error messages and the page name it."""
    if settings.uses_bigquery_emulator:
        return f"the BigQuery emulator at {settings.bigquery_emulator_url}"
    return f"BigQuery project {settings.gcp_project}"


def unavailable(settings: Settings, error: BaseException) -> WarehouseUnavailable:
    """A WarehouseUnavailable for ``error`` that says which service to check and how."""
    # A retry that ran out names its last failure; a refused connection's own text is a long
    # urllib3 repr that says no more than its type.
    root = error.cause if isinstance(error, RetryError) and error.cause else error
    reason = type(root).__name__
    if not isinstance(root, (RequestException, OSError)):
        lines = str(root).strip().splitlines()
        reason += f": {lines[0][:160]}" if lines else ""
    if settings.uses_bigquery_emulator:
        advice = (
            "start it (`make run` starts it, or `python -m deploy.local.stack bigquery`) or set "
            "COINSTREAM_BIGQUERY_EMULATOR_URL to where it listens"
        )
    else:
        advice = (
            "check COINSTREAM_GCP_PROJECT and your credentials "
            "(`gcloud auth application-default login`)"
        )
    return WarehouseUnavailable(
        f"the warehouse did not answer: {warehouse_description(settings)} ({reason}); {advice}"
    )


UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    GoogleAPIError,
    GoogleAuthError,
    RequestException,
    OSError,  # includes TimeoutError from waiting on a job
)


def view_id(settings: Settings, view: str) -> str:
    return f"{settings.warehouse_project}.{settings.bigquery_dataset}.{view}"


def run_query(
    client: bigquery.Client,
    settings: Settings,
    sql: str,
    parameters: Sequence[bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter],
    deadline: float | None = None,
) -> list[dict[str, Any]] | None:
    """Rows of ``sql`` as dicts; None when a view (or the dataset) does not exist yet.

    Raises WarehouseUnavailable when the warehouse cannot be reached; a BadRequest (a query
    the warehouse rejects) is our bug and propagates.
    """
    seconds = deadline or settings.bigquery_timeout_seconds
    try:
        job = client.query(
            sql,
            job_config=bigquery.QueryJobConfig(query_parameters=list(parameters)),
            retry=bigquery_retry(settings).with_deadline(seconds),
            timeout=seconds,
            job_retry=None,
        )
        return [dict(row.items()) for row in job.result(timeout=seconds)]
    except NotFound:
        return None
    except BadRequest:
        raise
    except UNREACHABLE_ERRORS as error:
        raise unavailable(settings, error) from None


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def table_status(
    client: bigquery.Client, settings: Settings, view: str, now: datetime
) -> TableStatus:
    """The newest row of a ``*_timeseries`` view, looking back at most STATUS_HORIZON."""
    sql = (
        "SELECT MAX(ts) AS newest_snapshot, MAX(processing_timestamp) AS newest_processed "
        f"FROM `{view_id(settings, view)}` WHERE processing_timestamp >= @since"
    )
    row: dict[str, Any] = {}
    for window in (RECENT_WINDOW, STATUS_HORIZON):
        rows = run_query(
            client,
            settings,
            sql,
            [bigquery.ScalarQueryParameter("since", "TIMESTAMP", now - window)],
            deadline=min(STATUS_DEADLINE_SECONDS, settings.bigquery_timeout_seconds),
        )
        if rows is None:
            return TableStatus(
                view=view_id(settings, view),
                exists=False,
                newest_snapshot=None,
                newest_processed=None,
            )
        row = rows[0] if rows else {}
        if row.get("newest_processed") is not None:
            break
    return TableStatus(
        view=view_id(settings, view),
        exists=True,
        newest_snapshot=_timestamp(row.get("newest_snapshot")),
        newest_processed=_timestamp(row.get("newest_processed")),
    )


def _range_parameters(time_range: TimeRange) -> list[bigquery.ScalarQueryParameter]:
    return [
        bigquery.ScalarQueryParameter("since", "TIMESTAMP", time_range.since),
        bigquery.ScalarQueryParameter("until", "TIMESTAMP", time_range.until),
    ]


# ``processing_timestamp >= @since`` adds nothing to ``ts >= @since`` (a row is processed after
# CoinCap stamps it) except that it lets BigQuery skip the partitions before the range.
_IN_RANGE = "processing_timestamp >= @since AND ts >= @since AND ts <= @until"


def latest_assets(
    client: bigquery.Client, settings: Settings, time_range: TimeRange, limit: int
) -> list[AssetSnapshot]:
    """Each asset's newest snapshot in the range, best rank first."""
    sql = f"""
        SELECT id, symbol, name, rank, price_usd, change_percent_24hr, market_cap_usd,
               volume_usd_24hr, supply, max_supply, supply_ratio * 100 AS supply_percent_of_max,
               ts AS snapshot_at
        FROM `{view_id(settings, ASSETS_VIEW)}`
        WHERE {_IN_RANGE}
        QUALIFY ROW_NUMBER() OVER (PARTITION BY id ORDER BY ts DESC) = 1
        ORDER BY rank IS NULL, rank, id
        LIMIT @row_limit"""
    parameters = [
        *_range_parameters(time_range),
        bigquery.ScalarQueryParameter("row_limit", "INT64", limit),
    ]
    rows = run_query(client, settings, sql, parameters) or []
    return [AssetSnapshot.model_validate(row) for row in rows]


def latest_exchanges(
    client: bigquery.Client, settings: Settings, time_range: TimeRange, limit: int
) -> list[ExchangeSnapshot]:
    """Each exchange's newest snapshot in the range, best rank first."""
    sql = f"""
        SELECT exchange_id, name, rank, percent_total_volume, volume_usd, trading_pairs,
               ts AS snapshot_at
        FROM `{view_id(settings, EXCHANGES_VIEW)}`
        WHERE {_IN_RANGE}
        QUALIFY ROW_NUMBER() OVER (PARTITION BY exchange_id ORDER BY ts DESC) = 1
        ORDER BY rank IS NULL, rank, exchange_id
        LIMIT @row_limit"""
    parameters = [
        *_range_parameters(time_range),
        bigquery.ScalarQueryParameter("row_limit", "INT64", limit),
    ]
    rows = run_query(client, settings, sql, parameters) or []
    return [ExchangeSnapshot.model_validate(row) for row in rows]


def _series_parameters(
    ids: Sequence[str], time_range: TimeRange, points: int
) -> list[bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter]:
    return [
        *_range_parameters(time_range),
        bigquery.ArrayQueryParameter("ids", "STRING", list(ids)),
        bigquery.ScalarQueryParameter("bucket_seconds", "INT64", time_range.bucket_seconds(points)),
        # One more than the buckets a range can touch, per id.
        bigquery.ScalarQueryParameter("row_limit", "INT64", len(ids) * (points + 2)),
    ]


def asset_series(
    client: bigquery.Client,
    settings: Settings,
    ids: Sequence[str],
    time_range: TimeRange,
    points: int,
) -> list[AssetSeries]:
    """Price, market cap, supply and rank of ``ids`` over the range, one point per bucket.

    A point is the bucket's last snapshot rather than an average, so a rank stays a rank and
    the newest point is the newest snapshot.
    """
    sql = f"""
        SELECT id, symbol, name, UNIX_MILLIS(ts) AS t, price_usd, market_cap_usd, supply,
               max_supply, supply_ratio * 100 AS supply_percent_of_max, rank
        FROM `{view_id(settings, ASSETS_VIEW)}`
        WHERE {_IN_RANGE} AND id IN UNNEST(@ids)
        QUALIFY ROW_NUMBER() OVER (
            PARTITION BY id, DIV(UNIX_SECONDS(ts), @bucket_seconds) ORDER BY ts DESC) = 1
        ORDER BY id, t
        LIMIT @row_limit"""
    rows = run_query(client, settings, sql, _series_parameters(ids, time_range, points)) or []
    by_id: dict[str, AssetSeries] = {}
    for row in rows:
        series = by_id.get(row["id"])
        if series is None:
            series = by_id[row["id"]] = AssetSeries(
                id=row["id"],
                symbol=row["symbol"],
                name=row["name"],
                t=[],
                price_usd=[],
                market_cap_usd=[],
                supply=[],
                max_supply=[],
                supply_percent_of_max=[],
                rank=[],
            )
        else:  # the newest name wins, should CoinCap rename an asset
            series.symbol, series.name = row["symbol"], row["name"]
        series.t.append(int(row["t"]))
        series.price_usd.append(row["price_usd"])
        series.market_cap_usd.append(row["market_cap_usd"])
        series.supply.append(row["supply"])
        series.max_supply.append(row["max_supply"])
        series.supply_percent_of_max.append(row["supply_percent_of_max"])
        series.rank.append(row["rank"])
    return [by_id[asset_id] for asset_id in ids if asset_id in by_id]


def exchange_series(
    client: bigquery.Client,
    settings: Settings,
    ids: Sequence[str],
    time_range: TimeRange,
    points: int,
) -> list[ExchangeSeries]:
    """Share of total volume, USD volume and rank of ``ids`` over the range."""
    sql = f"""
        SELECT exchange_id, name, UNIX_MILLIS(ts) AS t, percent_total_volume, volume_usd, rank
        FROM `{view_id(settings, EXCHANGES_VIEW)}`
        WHERE {_IN_RANGE} AND exchange_id IN UNNEST(@ids)
        QUALIFY ROW_NUMBER() OVER (
            PARTITION BY exchange_id, DIV(UNIX_SECONDS(ts), @bucket_seconds)
            ORDER BY ts DESC) = 1
        ORDER BY exchange_id, t
        LIMIT @row_limit"""
    rows = run_query(client, settings, sql, _series_parameters(ids, time_range, points)) or []
    by_id: dict[str, ExchangeSeries] = {}
    for row in rows:
        series = by_id.get(row["exchange_id"])
        if series is None:
            series = by_id[row["exchange_id"]] = ExchangeSeries(
                exchange_id=row["exchange_id"],
                name=row["name"],
                t=[],
                percent_total_volume=[],
                volume_usd=[],
                rank=[],
            )
        else:
            series.name = row["name"]
        series.t.append(int(row["t"]))
        series.percent_total_volume.append(row["percent_total_volume"])
        series.volume_usd.append(row["volume_usd"])
        series.rank.append(row["rank"])
    return [by_id[exchange_id] for exchange_id in ids if exchange_id in by_id]
