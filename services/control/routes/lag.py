"""``/lag``: how far the stream worker's consumer group is behind the record topics."""

from __future__ import annotations

from fastapi import APIRouter

from services.control.dependencies import LagReaderDep
from services.control.errors import error_responses
from services.control.models import LagReport

router = APIRouter(tags=["pipeline"])


@router.get(
    "/lag",
    summary="Consumer lag of the stream worker, per topic and partition",
    responses=error_responses(503),
)
async def lag(reader: LagReaderDep) -> LagReport:
    """Per partition: log end offset, the worker group's committed offset, lag in records, and
    the age in seconds of the oldest record not yet processed. Measured from the broker at most
    once at a time, and that one measurement (or its failure) answers every request for
    COINSTREAM_CONTROL_ANSWER_CACHE_SECONDS."""
    return await reader.report()
