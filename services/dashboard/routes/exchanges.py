"""``/api/exchanges/...``: the latest snapshot of every exchange, and chosen ones over time."""

from __future__ import annotations

from fastapi import APIRouter

from services.dashboard import queries
from services.dashboard.dependencies import ClientDep, SettingsDep
from services.dashboard.errors import error_responses
from services.dashboard.models import ExchangesLatest, ExchangesSeries
from services.dashboard.routes.parameters import IdsDep, LimitQuery, PointsQuery, TimeRangeDep

router = APIRouter(prefix="/api/exchanges", tags=["exchanges"])


@router.get(
    "/latest",
    summary="Each exchange's newest snapshot in the range, by rank",
    responses=error_responses(422, 503),
)
def exchanges_latest(
    client: ClientDep, settings: SettingsDep, time_range: TimeRangeDep, limit: LimitQuery = 500
) -> ExchangesLatest:
    """Rank, share of total volume, USD volume and trading pairs, read through the
    `exchanges_timeseries` view; the shares of one snapshot add up to about 100."""
    return ExchangesLatest(
        since=time_range.since,
        until=time_range.until,
        exchanges=queries.latest_exchanges(client, settings, time_range, limit),
    )


@router.get(
    "/series",
    summary="Share of total volume, USD volume and rank of chosen exchanges over time",
    responses=error_responses(422, 503),
)
def exchanges_series(
    client: ClientDep,
    settings: SettingsDep,
    ids: IdsDep,
    time_range: TimeRangeDep,
    points: PointsQuery = 240,
) -> ExchangesSeries:
    """One series per exchange found, in the order asked; each point is the last snapshot of
    its time bucket (`bucket_seconds`)."""
    return ExchangesSeries(
        since=time_range.since,
        until=time_range.until,
        bucket_seconds=time_range.bucket_seconds(points),
        series=queries.exchange_series(client, settings, ids, time_range, points),
    )
