"""The worker's HTTP face: ``/healthz`` and ``/metrics``, served from a thread beside Spark."""

from __future__ import annotations

import threading

import uvicorn
from fastapi import FastAPI, Response

from services.stream_worker.models import WorkerHealth
from services.stream_worker.worker import StreamWorker
from shared.metrics import metrics_endpoint


def create_app(worker: StreamWorker) -> FastAPI:
    app = FastAPI(
        title="coinstream stream-worker",
        description="Spark Structured Streaming from the CoinCap topics into the warehouse.",
    )

    @app.get("/healthz", summary="Liveness and state of the streaming query")
    async def healthz() -> WorkerHealth:
        return WorkerHealth.of(worker.status)

    app.add_api_route(
        "/metrics", metrics_endpoint, summary="Prometheus metrics", response_class=Response
    )
    return app


def serve_in_background(worker: StreamWorker, host: str, port: int) -> uvicorn.Server:
    """Start the HTTP server in a daemon thread (uvicorn leaves signals to the main thread)."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(worker), host=host, port=port, log_config=None, access_log=False)
    )
    threading.Thread(target=server.run, name="http", daemon=True).start()
    return server
