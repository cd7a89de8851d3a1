"""``/api/assets/...``: the latest snapshot of every asset, and chosen assets over time."""

from __future__ import annotations

from fastapi import APIRouter

from services.dashboard import queries
from services.dashboard.dependencies import ClientDep, SettingsDep
from services.dashboard.errors import error_responses
from services.dashboard.models import AssetsLatest, AssetsSeries
from services.dashboard.routes.parameters import IdsDep, LimitQuery, PointsQuery, TimeRangeDep

router = APIRouter(prefix="/api/assets", tags=["assets"])


@router.get(
    "/latest",
    summary="Each asset's newest snapshot in the range, by rank",
    responses=error_responses(422, 503),
)
def assets_latest(
    client: ClientDep, settings: SettingsDep, time_range: TimeRangeDep, limit: LimitQuery = 500
) -> AssetsLatest:
    """Rank, price, 24 h change, market cap, supply, max supply and share of max supply, read
    through the `assets_timeseries` view. Empty when the warehouse has no rows in the range."""
    return AssetsLatest(
        since=time_range.since,
        until=time_range.until,
        assets=queries.latest_assets(client, settings, time_range, limit),
    )


@router.get(
    "/series",
    summary="Price, market cap, supply and rank of chosen assets over time",
    responses=error_responses(422, 503),
)
def assets_series(
    client: ClientDep,
    settings: SettingsDep,
    ids: IdsDep,
    time_range: TimeRangeDep,
    points: PointsQuery = 240,
) -> AssetsSeries:
    """One series per asset found, in the order asked; each point is the last snapshot of its
    time bucket (`bucket_seconds`)."""
    return AssetsSeries(
        since=time_range.since,
        until=time_range.until,
        bucket_seconds=time_range.bucket_seconds(points),
        series=queries.asset_series(client, settings, ids, time_range, points),
    )
