"""An ingestor as a service: the poll loop plus ``/healthz`` and ``/metrics`` over HTTP.

uvicorn owns the signals: on SIGTERM or Ctrl-C it stops serving and runs the app's lifespan
shutdown, which lets the poll in flight finish and flushes the buffer to Kafka before the process
exits. A ``DesiredStateWatcher`` follows the control topic and tells the loop to pause, stop,
start or restart; the loop polls nothing before it has read its desired state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Literal

import uvicorn
from fastapi import FastAPI, Response
from pydantic import BaseModel

from services.ingestor import metrics
from services.ingestor.loop import Ingestor
from services.ingestor.specs import IngestorSpec
from shared.coincap.client import CoinCapClient
from shared.control_state import DesiredStateWatcher
from shared.logging import configure_logging
from shared.metrics import metrics_endpoint
from shared.settings import Settings


class IngestorHealth(BaseModel):
    """The ingestor's state: is it polling, delivering, paused by quota, losing anything."""

    status: str
    """``ok``, or ``degraded`` while Kafka is unreachable, the quota is spent, the last poll
    failed, the loop failed or has not read its desired state yet."""
    name: str
    endpoint: str
    topic: str
    simulated: bool
    poll_interval_seconds: float
    state: Literal["STARTING", "RUNNING", "PAUSED", "STOPPED", "FAILED"]
    """What the loop is doing; PAUSED and STOPPED poll nothing (see the control service)."""
    desired_state: Literal["RUNNING", "PAUSED", "STOPPED"]
    polls_succeeded: int
    polls_failed: int
    last_poll_id: str | None
    last_successful_poll_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    quota_exhausted_until: datetime | None
    kafka_connected: bool
    buffered_records: int
    dropped_records: int
    dropped_poll_ids: list[str]


def create_app(ingestor: Ingestor) -> FastAPI:
    """The HTTP face of one ingestor; the loop runs for as long as the app does."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher = DesiredStateWatcher(
            ingestor.settings,
            on_change=ingestor.apply_desired_state,
            client_id=f"{ingestor.spec.name}-control",
        )
        await watcher.start()
        loop_task = asyncio.create_task(ingestor.run(), name=ingestor.spec.name)
        try:
            yield
        finally:
            await ingestor.stop()
            await loop_task
            await watcher.stop()
            await ingestor.client.aclose()

    app = FastAPI(
        title=f"coinstream {ingestor.spec.name}",
        description=f"Polls CoinCap /{ingestor.spec.endpoint} into Kafka topic "
        f"{ingestor.spec.topic}.",
        lifespan=lifespan,
    )

    @app.get("/healthz", summary="Liveness and state of the ingestor")
    async def healthz() -> IngestorHealth:
        state = ingestor.status.as_dict()
        if state["state"] in ("STARTING", "FAILED"):
            degraded = True
        elif state["state"] in ("PAUSED", "STOPPED"):
            # Idle on purpose: no polls and possibly no producer; only undelivered records count.
            degraded = state["buffered_records"] > 0 and not state["kafka_connected"]
        else:
            degraded = (
                not state["kafka_connected"]
                or state["quota_exhausted_until"] is not None
                or _last_poll_failed(ingestor)
            )
        return IngestorHealth(status="degraded" if degraded else "ok", **state)

    app.add_api_route(
        "/metrics", metrics_endpoint, summary="Prometheus metrics", response_class=Response
    )
    return app


def _last_poll_failed(ingestor: Ingestor) -> bool:
    status = ingestor.status
    if status.last_error_at is None:
        return False
    return status.last_successful_poll_at is None or status.last_error_at > (
        status.last_successful_poll_at
    )


def run_ingestor(spec: IngestorSpec, settings: Settings, port: int) -> None:
    """Run one ingestor until SIGTERM or Ctrl-C."""
    configure_logging(spec.name, settings.log_level)

    def observe(endpoint: str, status: int | str, seconds: float) -> None:
        metrics.COINCAP_REQUESTS.labels(endpoint, str(status)).inc()
        metrics.COINCAP_REQUEST_DURATION.labels(endpoint).observe(seconds)

    client = CoinCapClient.from_settings(settings, on_response=observe)
    app = create_app(Ingestor(spec, settings, client, wait_for_desired_state=True))
    uvicorn.run(app, host=settings.bind_host, port=port, log_config=None, access_log=False)
