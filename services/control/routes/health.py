"""``/healthz`` (the process is alive) and ``/readyz`` (Kafka and the warehouse answer, and the
record topics can take writes)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from services.control.dependencies import ResourcesDep
from services.control.models import Liveness, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The control service is alive")
async def healthz(resources: ResourcesDep) -> Liveness:
    """Always 200 while the process serves requests; checks no dependency (see /readyz)."""
    return Liveness(open_access=resources.open_access)


@router.get(
    "/readyz",
    summary="Kafka and the warehouse answer",
    responses={503: {"model": Readiness, "description": "A dependency does not answer."}},
)
async def readyz(resources: ResourcesDep, response: Response) -> Readiness:
    """200 when Kafka answers a metadata request and the warehouse lists its datasets; 503
    naming each dependency that does not, with what to do about it. ``kafka_cluster`` says
    how the record topics are replicated: a lost broker makes it degraded (still ready), a
    partition that cannot take writes makes it unavailable (503). One check runs at a time;
    requests within COINSTREAM_CONTROL_ANSWER_CACHE_SECONDS of it share its answer."""
    readiness = await resources.readiness.get()
    if readiness.status != "ready":
        response.status_code = 503
    return readiness
