"""``/api/status`` (where the data comes from, how fresh it is) and ``/healthz``."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from services.dashboard import entities, queries
from services.dashboard.dependencies import ResourcesDep, SettingsDep
from services.dashboard.errors import error_responses
from services.dashboard.models import DashboardStatus, TableStatus
from shared.settings import DashboardServiceSettings
from shared.warehouse import dataset_id, describe_warehouse

router = APIRouter(tags=["status"])

START_HINT = "is the stream worker running? (`make run` starts it)"
BACKFILL_COMMAND = "coinstream backfill --top 10"
"""Fills the top ten assets' history (docs/cli.md says how to choose assets, range and interval)."""


def empty_message(
    settings: DashboardServiceSettings, assets: TableStatus, exchanges: TableStatus
) -> str | None:
    """Why there is nothing to show, in words that say what to start; None when there is data."""
    if assets.newest_processed or exchanges.newest_processed:
        return None
    dataset = dataset_id(settings)
    if not (assets.exists and exchanges.exists):
        return (
            f"no data yet: the views in {dataset} do not exist, because no stream worker has "
            f"written to it; {START_HINT}"
        )
    return (
        f"no data yet: {dataset} has no asset or exchange rows from the last "
        f"{queries.STATUS_HORIZON.days} days; {START_HINT} Are the ingestors polling? "
        f"Once they are, `{BACKFILL_COMMAND}` fills in the charts' history."
    )


def data_source(settings: DashboardServiceSettings) -> str:
    if settings.uses_coincap_simulator:
        return (
            "the bundled CoinCap simulator: made-up numbers (set COINSTREAM_COINCAP_API_KEY "
            "for real CoinCap data)"
        )
    return f"the CoinCap API at {settings.coincap_url}"


@router.get(
    "/api/status",
    summary="Where the data comes from, and the newest row of each table",
    responses=error_responses(503),
)
def status(resources: ResourcesDep, settings: SettingsDep) -> DashboardStatus:
    """The page polls this every `refresh_seconds` and redraws when `newest_processed`
    changes. Answers within about five seconds, with a 503 naming the warehouse when it does
    not answer."""
    client = resources.client()
    now = datetime.now(UTC)
    assets = queries.table_status(client, settings, entities.ASSETS)
    exchanges = queries.table_status(client, settings, entities.EXCHANGES)
    message = empty_message(settings, assets, exchanges)
    return DashboardStatus(
        simulated=settings.uses_coincap_simulator,
        data_source=data_source(settings),
        warehouse=describe_warehouse(settings),
        dataset=dataset_id(settings),
        refresh_seconds=settings.stream_trigger_seconds,
        checked_at=now,
        assets=assets,
        exchanges=exchanges,
        has_data=message is None,
        message=message,
        backfill_command=BACKFILL_COMMAND,
    )


@router.get("/healthz", summary="Liveness of the dashboard process")
def healthz() -> dict[str, str]:
    """Says only that the dashboard serves; it does not query the warehouse (see
    `/api/status` for that), so a warehouse outage does not make it look dead."""
    return {"status": "ok"}
