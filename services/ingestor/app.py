"""An ingestor as a service: the poll loop plus ``/healthz`` and ``/metrics`` over HTTP.

uvicorn owns the signals: on SIGTERM or Ctrl-C it stops serving and runs the app's lifespan
shutdown, which lets the poll in flight finish and flushes the buffer to Kafka before the process
exits (what Kafka does not take in time stays in the durable spool for the next start). The
spool is opened before anything else, so the polls an earlier run left in it go first, and a
second ingestor of the same name on the same spool is refused at start. A
``DesiredStateWatcher`` follows the control topic and tells the loop to pause, stop, start or
restart; the loop polls nothing before it has read its desired state.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Response

from services.ingestor import metrics
from services.ingestor.loop import Ingestor
from services.ingestor.models import IngestorHealth
from services.ingestor.specs import IngestorSpec
from services.ingestor.spool import SpoolInUse
from shared.coincap.client import CoinCapClient
from shared.control_state import DesiredStateWatcher
from shared.logging import configure_logging
from shared.metrics import metrics_endpoint
from shared.settings import IngestorSettings


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
        return IngestorHealth.of(ingestor)

    app.add_api_route(
        "/metrics", metrics_endpoint, summary="Prometheus metrics", response_class=Response
    )
    return app


def run_ingestor(spec: IngestorSpec, settings: IngestorSettings, port: int) -> None:
    """Run one ingestor until SIGTERM or Ctrl-C."""
    configure_logging(spec.name, settings.log_level, settings.log_format)

    def observe(endpoint: str, status: int | str, seconds: float) -> None:
        metrics.COINCAP_REQUESTS.labels(endpoint, str(status)).inc()
        metrics.COINCAP_REQUEST_DURATION.labels(endpoint).observe(seconds)

    client = CoinCapClient.from_settings(settings, on_response=observe)
    ingestor = Ingestor(spec, settings, client, wait_for_desired_state=True)
    try:
        ingestor.delivery.open_spool()
    except SpoolInUse as error:
        print(f"coinstream: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    app = create_app(ingestor)
    uvicorn.run(app, host=settings.bind_host, port=port, log_config=None, access_log=False)
