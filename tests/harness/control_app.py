"""The control service in-process: the app object ``python -m services.control`` serves, with its
real lifespan (the desired-state watcher and writer, the Kafka and warehouse clients) on the
session's broker and emulator, reached through httpx's ASGI transport.

For guards, validation and error shapes a process adds nothing but its start-up time; what needs
one (signals, ports, start-up refusals) starts it through ``tests.harness.processes``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx

from services.control.app import create_app
from tests.harness.environment import TEST_ENVIRONMENT, offset_port
from tests.harness.processes import settings_from

CONTROL_PORT = offset_port(18130)
"""The port the in-process service believes it serves on (its own origin); nothing listens."""


def control_environment(label: str, **settings: str) -> dict[str, str]:
    """Settings for a control service of its own: a control topic, pipeline topics, a consumer
    group and a dataset named after ``label`` and unique to this call, and components on ports
    where nothing listens (they show as UNREACHABLE, a valid answer); ``settings`` come last."""
    suffix = uuid.uuid4().hex[:8]
    return {
        **TEST_ENVIRONMENT,
        "COINSTREAM_TOPIC_CONTROL": f"test.{label}.control.{suffix}",
        "COINSTREAM_TOPIC_ASSETS": f"test.{label}.assets.{suffix}",
        "COINSTREAM_TOPIC_EXCHANGES": f"test.{label}.exchanges.{suffix}",
        "COINSTREAM_TOPIC_DEADLETTER": f"test.{label}.deadletter.{suffix}",
        "COINSTREAM_STREAM_CONSUMER_GROUP": f"test-{label}-worker-{suffix}",
        "COINSTREAM_BIGQUERY_DATASET": f"{label}_{suffix}".replace("-", "_"),
        "COINSTREAM_CONTROL_PORT": str(CONTROL_PORT),
        "COINSTREAM_ASSET_INGESTOR_PORT": str(offset_port(18131)),
        "COINSTREAM_EXCHANGE_INGESTOR_PORT": str(offset_port(18132)),
        "COINSTREAM_STREAM_WORKER_PORT": str(offset_port(18133)),
        **settings,
    }


@asynccontextmanager
async def control_client(environment: Mapping[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the control service built from ``environment``, its lifespan running for as
    long as the block; requests carry the ``Host`` a local caller's would."""
    settings = settings_from(dict(environment))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url=f"http://127.0.0.1:{settings.control_port}", timeout=60
        ) as client:
            yield client
