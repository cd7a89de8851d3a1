"""The control service's FastAPI app: assembly only (resources, routers, error handlers)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Response

from services.control.components import ComponentRegistry
from services.control.consumer_lag import LagReader
from services.control.dependencies import ControlResources
from services.control.desired_state_writer import DesiredStateWriter
from services.control.errors import install_error_handlers
from services.control.freshness import FreshnessReader
from services.control.kafka_clients import ControlKafkaClients
from services.control.metrics import MetricsRefresher, control_collector
from services.control.readiness import measure_readiness
from services.control.routes import components, freshness, health, lag
from services.control.security import check_access_settings
from services.control.shared_answer import SharedAnswer
from shared.control_state import DesiredStateWatcher
from shared.metrics import metrics_endpoint
from shared.settings import ControlServiceSettings
from shared.warehouse import create_bigquery_client

STARTUP_WAIT_SECONDS = 5.0

DESCRIPTION = """\
Controls and watches the coinstream pipeline: the asset and exchange ingestors and the stream
worker.

- **Reading** (`GET`) needs no token: health, each component's desired and observed state, the
  stream worker's consumer lag and the warehouse's freshness.
- **Commands** (`PUT .../pause|resume|stop|start`, `POST .../restart`) need
  `Authorization: Bearer <COINSTREAM_CONTROL_API_TOKEN>`, a local (or configured) `Host`, and
  no `Origin` but this service's own (403 otherwise: no web page may command the pipeline).
  They answer 202 once the new desired state is stored in the compacted Kafka topic
  `coinstream.control.v1`; the component acts on it within seconds, and keeps it across
  restarts of itself and of this service. Repeating a command changes nothing.

Errors answer `{"detail": "..."}` saying what is wrong and what to do.
"""


def create_app(settings: ControlServiceSettings) -> FastAPI:
    """The control service for ``settings``; refuses (StartupRefused) an unsafe access setup."""
    open_access = check_access_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher = DesiredStateWatcher(settings, client_id="coinstream-control")
        writer = DesiredStateWriter(settings)
        kafka_clients = ControlKafkaClients(settings)
        async with httpx.AsyncClient() as http:
            registry = ComponentRegistry(settings, watcher, writer, http)
            freshness_reader = FreshnessReader(settings, create_bigquery_client(settings))
            resources = ControlResources(
                settings=settings,
                open_access=open_access,
                components=registry,
                lag=LagReader(settings, kafka_clients),
                freshness=freshness_reader,
                readiness=SharedAnswer(
                    "readiness",
                    lambda: measure_readiness(settings, kafka_clients, freshness_reader),
                    settings.control_answer_cache_seconds,
                ),
            )
            app.state.resources = resources
            refresher = MetricsRefresher(
                control_collector(), registry, resources.lag, resources.freshness
            )
            await watcher.start()
            # Serve with the desired states known where Kafka allows: answers before that
            # would show every component's default. Kafka down: start anyway, /readyz says why.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STARTUP_WAIT_SECONDS):
                    await watcher.wait_caught_up()
            refreshing = asyncio.create_task(refresher.run(), name="metrics-refresher")
            try:
                yield
            finally:
                refreshing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refreshing
                await watcher.stop()
                await writer.stop()
                await kafka_clients.close()

    app = FastAPI(
        title="coinstream control",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Operation ids are the endpoint functions' names (pause_component, lag, ...).
        generate_unique_id_function=lambda route: route.name,
    )
    app.include_router(health.router)
    app.include_router(components.router)
    app.include_router(lag.router)
    app.include_router(freshness.router)
    app.add_api_route(
        "/metrics",
        metrics_endpoint,
        name="metrics",
        summary="Prometheus metrics",
        description="Component state, consumer lag and table freshness, in Prometheus' text "
        "format; refreshed in the background, so a scrape waits on nothing.",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus metrics."}},
        tags=["health"],
    )
    install_error_handlers(app)
    return app
