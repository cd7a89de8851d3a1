"""``/healthz`` (the process is alive) and ``/readyz`` (Kafka and the warehouse answer)."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Response

from services.control.dependencies import FreshnessReaderDep, ResourcesDep, SettingsDep
from services.control.models import DependencyCheck, Liveness, Readiness
from shared.kafka import kafka_answers
from shared.warehouse import describe_warehouse

router = APIRouter(tags=["health"])

KAFKA_CHECK_SECONDS = 3.0


@router.get("/healthz", summary="The control service is alive")
async def healthz(resources: ResourcesDep) -> Liveness:
    """Always 200 while the process serves requests; checks no dependency (see /readyz)."""
    return Liveness(open_access=resources.open_access)


@router.get(
    "/readyz",
    summary="Kafka and the warehouse answer",
    responses={503: {"model": Readiness, "description": "A dependency does not answer."}},
)
async def readyz(
    settings: SettingsDep, freshness: FreshnessReaderDep, response: Response
) -> Readiness:
    """200 when Kafka answers a metadata request and the warehouse lists its datasets; 503
    naming each dependency that does not, with what to do about it."""

    async def kafka() -> DependencyCheck:
        started = time.monotonic()
        ok = await kafka_answers(settings, KAFKA_CHECK_SECONDS)
        return DependencyCheck(
            ok=ok,
            target=settings.kafka_bootstrap_servers,
            detail=None
            if ok
            else f"Kafka at {settings.kafka_bootstrap_servers} does not answer; start it "
            "(`make run`) or check COINSTREAM_KAFKA_BOOTSTRAP_SERVERS",
            seconds=round(time.monotonic() - started, 3),
        )

    async def warehouse() -> DependencyCheck:
        started = time.monotonic()
        problem = await freshness.check()
        return DependencyCheck(
            ok=problem is None,
            target=describe_warehouse(settings),
            detail=problem,
            seconds=round(time.monotonic() - started, 3),
        )

    kafka_check, warehouse_check = await asyncio.gather(kafka(), warehouse())
    failing = [check.detail for check in (kafka_check, warehouse_check) if check.detail]
    readiness = Readiness(
        status="unready" if failing else "ready",
        detail="; ".join(failing) or None,
        kafka=kafka_check,
        warehouse=warehouse_check,
    )
    if failing:
        response.status_code = 503
    return readiness
