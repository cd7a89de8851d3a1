"""The stream worker as a test runs it: ``python -m services.stream_worker`` on topics, a
dataset, a checkpoint and a consumer group of its own, with what a test asks of it (health,
queries on its dataset, whether it has processed everything)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

import httpx
from aiokafka.errors import KafkaError

from shared.settings import Settings
from shared.warehouse import create_bigquery_client, dataset_id
from tests.conftest import TEST_STATE_DIR, ManagedProcess, settings_from, wait_for
from tests.integration.control_support import broker_offsets


class StreamWorkerProcess:
    """``python -m services.stream_worker`` on topics and a dataset of its own."""

    def __init__(
        self,
        name: str,
        environment: dict[str, str],
        port: int,
        overrides: dict[str, str] | None = None,
    ) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.port = port
        self.environment = {
            "COINSTREAM_STREAM_TRIGGER_SECONDS": "1",
            "COINSTREAM_SPARK_DRIVER_MEMORY": "768m",
            **environment,
            # Its own topics, dataset, checkpoint and group, whatever ``environment`` says.
            "COINSTREAM_TOPIC_ASSETS": f"test.{name}.assets.{suffix}",
            "COINSTREAM_TOPIC_EXCHANGES": f"test.{name}.exchanges.{suffix}",
            "COINSTREAM_TOPIC_DEADLETTER": f"test.{name}.deadletter.{suffix}",
            "COINSTREAM_TOPIC_CONTROL": f"test.{name}.control.{suffix}",
            "COINSTREAM_BIGQUERY_DATASET": f"{name.replace('-', '_')}_{suffix}",
            "COINSTREAM_STREAM_CHECKPOINT_LOCATION": str(TEST_STATE_DIR / f"checkpoint-{suffix}"),
            "COINSTREAM_STREAM_CONSUMER_GROUP": f"test-{name}-{suffix}",
            "COINSTREAM_STREAM_WORKER_PORT": str(port),
            # A test that needs, say, a checkpoint elsewhere says so last.
            **(overrides or {}),
        }
        self.settings: Settings = settings_from(self.environment)
        self.process = ManagedProcess(
            f"stream-worker-{name}-{suffix}",
            [sys.executable, "-m", "services.stream_worker"],
            self.environment,
            TEST_STATE_DIR / "logs",
        )
        self.client = create_bigquery_client(self.settings)

    def start(self, timeout: float = 180.0) -> float:
        """Start the worker; return the seconds until its query ran."""
        self.process.start()

        def running() -> bool:
            assert self.process.is_running(), self.process.log_tail(40)
            return self.health().get("state") == "RUNNING"

        return wait_for(running, "the worker to run its query", timeout)

    def health(self) -> dict[str, Any]:
        try:
            body: dict[str, Any] = httpx.get(
                f"http://127.0.0.1:{self.port}/healthz", timeout=2
            ).json()
        except httpx.HTTPError:
            return {}
        return body

    def query(self, sql: str) -> list[dict[str, Any]]:
        dataset = dataset_id(self.settings)
        return [dict(row) for row in self.client.query(sql.format(d=dataset)).result()]

    def caught_up(self, topics: list[str] | None = None) -> bool:
        """True when the worker has processed and committed everything in ``topics``."""
        settings = self.settings
        try:
            offsets = asyncio.run(
                broker_offsets(
                    settings,
                    settings.stream_consumer_group,
                    topics or [settings.topic_assets, settings.topic_exchanges],
                )
            )
        except (KafkaError, OSError, TimeoutError):
            return False
        return bool(offsets) and all(
            committed == end for end, committed in offsets.values() if end > 0
        )

    def wait_caught_up(self, timeout: float, topics: list[str] | None = None) -> float:
        def done() -> bool:
            assert self.process.is_running(), self.process.log_tail(40)
            return self.caught_up(topics)

        return wait_for(done, "the worker to process every record", timeout)
