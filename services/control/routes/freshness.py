"""``/freshness``: how old the newest row of each warehouse table is."""

from __future__ import annotations

from fastapi import APIRouter

from services.control.dependencies import FreshnessReaderDep
from services.control.errors import error_responses
from services.control.models import FreshnessReport

router = APIRouter(tags=["pipeline"])


@router.get(
    "/freshness",
    summary="Seconds since the newest processing_timestamp of each table",
    responses=error_responses(503),
)
async def freshness(reader: FreshnessReaderDep) -> FreshnessReport:
    """For the assets and exchanges tables: the newest ``processing_timestamp`` and how many
    seconds ago it was; null for a table that is empty or does not exist yet."""
    return await reader.report()
