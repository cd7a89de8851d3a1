"""The stream worker as a test or a benchmark runs it: ``python -m services.stream_worker`` with
a dataset, a checkpoint and a consumer group of its own, and what a caller asks of it (health,
queries on its dataset, whether it has processed everything).

A test's worker reads topics of its own too; a benchmark's workers read the benchmark's topics
one after another, each from the earliest offset (a fresh group and checkpoint), as a worker that
was down while the backlog built up would.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from deploy.local.readiness import wait_until
from shared.envelope import OutgoingMessage, PollContext, record_message
from shared.kafka import ensure_topics, pipeline_topics
from shared.settings import Settings
from shared.warehouse import create_bigquery_client, dataset_id
from tests.harness.broker import broker_offsets
from tests.harness.environment import TEST_ENVIRONMENT, TEST_STATE_DIR, offset_port
from tests.harness.processes import LocalStack, ManagedProcess, settings_from
from tests.harness.waiting import wait_for

QUICK_TEST_WORKER = {
    "COINSTREAM_STREAM_TRIGGER_SECONDS": "1",
    "COINSTREAM_SPARK_DRIVER_MEMORY": "768m",
}
"""A test worker's defaults, below what the caller's environment says: a batch a second, and a
driver small enough for a two-core machine running several."""


class StreamWorkerProcess:
    """``python -m services.stream_worker`` on a dataset, checkpoint and group of its own.

    ``environment`` reaches the stack; ``overrides`` come last, so a test that needs, say, a
    checkpoint elsewhere says so there. With ``own_topics`` (a test's worker) it also reads and
    writes topics no other worker uses; without (a benchmark's), the topics ``environment``
    names. ``label`` starts the names of its dataset, group and topics (``test``, ``bench``).
    """

    def __init__(
        self,
        name: str,
        environment: Mapping[str, str],
        port: int,
        overrides: Mapping[str, str] | None = None,
        *,
        state_dir: Path = TEST_STATE_DIR,
        label: str = "test",
        own_topics: bool = True,
        defaults: Mapping[str, str] = QUICK_TEST_WORKER,
    ) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.port = port
        topics = (
            {
                "COINSTREAM_TOPIC_ASSETS": f"{label}.{name}.assets.{suffix}",
                "COINSTREAM_TOPIC_EXCHANGES": f"{label}.{name}.exchanges.{suffix}",
                "COINSTREAM_TOPIC_DEADLETTER": f"{label}.{name}.deadletter.{suffix}",
                "COINSTREAM_TOPIC_CONTROL": f"{label}.{name}.control.{suffix}",
            }
            if own_topics
            else {}
        )
        self.environment = {
            **defaults,
            **environment,
            **topics,
            "COINSTREAM_BIGQUERY_DATASET": f"{label}_{name}_{suffix}".replace("-", "_"),
            "COINSTREAM_STREAM_CHECKPOINT_LOCATION": str(
                state_dir / "checkpoints" / f"{name}-{suffix}"
            ),
            "COINSTREAM_STREAM_CONSUMER_GROUP": f"{label}-{name}-{suffix}",
            "COINSTREAM_STREAM_WORKER_PORT": str(port),
            **(overrides or {}),
        }
        self.settings: Settings = settings_from(self.environment)
        self.process = ManagedProcess(
            f"stream-worker-{name}-{suffix}",
            [sys.executable, "-m", "services.stream_worker"],
            self.environment,
            state_dir / "logs",
        )
        self.client = create_bigquery_client(self.settings)
        self.started_at = 0.0
        """Epoch seconds just before the process was last started."""

    def launch(self) -> None:
        """Start the process without waiting for it (see ``wait_running``)."""
        self.started_at = time.time()
        self.process.start()

    def wait_running(self, timeout: float = 180.0) -> float:
        """Wait until the worker runs its query; return the seconds it took. A worker that
        exits first raises RuntimeError (its last log line first), one still starting at
        ``timeout`` StackError."""

        def running() -> bool:
            if not self.process.is_running():
                tail = self.process.log_tail(40)
                last_line = tail.rsplit("\n", 1)[-1].strip()
                raise RuntimeError(f"the stream worker exited before running: {last_line}\n{tail}")
            return self.state() == "RUNNING"

        return wait_until(running, "the stream worker", timeout, interval=0.25)

    def start(self, timeout: float = 180.0) -> float:
        """Start the worker; return the seconds until its query ran."""
        self.launch()
        return self.wait_running(timeout)

    def stop(self, timeout: float = 90.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; the exit status."""
        return self.process.stop(timeout=timeout)

    def health(self) -> dict[str, Any]:
        """Its ``/healthz`` body; empty while it does not answer."""
        try:
            body: dict[str, Any] = httpx.get(
                f"http://127.0.0.1:{self.port}/healthz", timeout=2
            ).json()
        except (httpx.HTTPError, ValueError):
            return {}
        return body

    def state(self) -> str:
        """The query's state as its health says (``RUNNING``...); empty while it does not
        answer."""
        return str(self.health().get("state", ""))

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows of ``sql``, in which ``{d}`` names the worker's dataset."""
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

    def drop_dataset(self) -> None:
        """Leave the emulator as lean as it was: the next worker's MERGE should not be slower
        for this one's rows."""
        self.client.delete_dataset(
            dataset_id(self.settings), delete_contents=True, not_found_ok=True
        )


ASSET_WORKER_PORT = offset_port(18103)


class AssetWorker(StreamWorkerProcess):
    """A test's worker, and the asset polls the test sends it in the ingestors' own message
    format (``shared.envelope``), so what the worker reads is what it reads in production."""

    def __init__(
        self,
        local_stack: LocalStack,
        overrides: dict[str, str] | None = None,
        port: int = ASSET_WORKER_PORT,
    ) -> None:
        environment = {**TEST_ENVIRONMENT, "COINSTREAM_STREAM_MAX_RECORDS_PER_BATCH": "2000"}
        super().__init__("worker", environment, port, overrides)
        # Now: the worker quarantines a snapshot further from its processing time than
        # COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS.
        self._next_source_ms = int(time.time() * 1000)

    def count(self, table: str) -> int:
        return int(self.query(f"SELECT COUNT(*) AS n FROM `{{d}}.{table}`")[0]["n"])

    def duplicate_assets(self) -> list[dict[str, Any]]:
        """Asset rows stored more than once: none, if each record is in the warehouse once."""
        return self.query(
            "SELECT id, source_timestamp, COUNT(*) AS n FROM `{d}.assets` "
            "GROUP BY id, source_timestamp HAVING COUNT(*) > 1"
        )

    def asset_offsets(self, timeout: float = 30.0) -> dict[tuple[str, int], tuple[int, int | None]]:
        """Per asset partition: its log end offset and the worker's committed offset. Asked
        again while the broker cannot answer yet: a fresh broker makes its group coordinator
        when first asked about a group."""
        settings = self.settings
        answer: dict[tuple[str, int], tuple[int, int | None]] = {}

        def answered() -> bool:
            try:
                answer.update(
                    asyncio.run(
                        broker_offsets(
                            settings, settings.stream_consumer_group, [settings.topic_assets]
                        )
                    )
                )
            except KafkaError:
                return False
            return True

        wait_for(answered, "the broker to answer for the worker's consumer group", timeout)
        return answer

    def asset_messages(self, records: list[dict[str, Any]]) -> list[OutgoingMessage]:
        """One poll of ``records``, enveloped as the asset ingestor does."""
        self._next_source_ms += 1000
        context = PollContext(
            poll_id=uuid.uuid4().hex,
            endpoint="assets",
            source="coincap-simulator",
            source_timestamp_ms=self._next_source_ms,
            fetched_at_ms=self._next_source_ms + 50,
        )
        return [
            record_message(context, self.settings.topic_assets, record["id"], record)
            for record in records
        ]

    def produce(self, messages: list[OutgoingMessage], raw: list[bytes] | None = None) -> None:
        """Publish ``messages``, then ``raw`` values to the asset topic (as broken records)."""
        asyncio.run(produce(self.settings, messages, raw or []))


async def produce(settings: Settings, messages: list[OutgoingMessage], raw: list[bytes]) -> None:
    await ensure_topics(settings, pipeline_topics(settings))
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for message in messages:
            await producer.send(message.topic, message.value, key=message.key)
        for value in raw:
            await producer.send(settings.topic_assets, value, key=b"broken")
        await producer.flush()
    finally:
        await producer.stop()


def asset(number: int, price: str = "1.5") -> dict[str, Any]:
    """A CoinCap asset record as the API sends it, ``coin-<number>``."""
    return {
        "id": f"coin-{number}",
        "rank": str(number + 1),
        "symbol": f"C{number}",
        "name": f"Coin {number}",
        "supply": "1000.0000000000000000",
        "maxSupply": "2000.0000000000000000" if number % 2 else None,
        "marketCapUsd": "1904557171625.0952172577833640",
        "volumeUsd24Hr": "12724040223.1452060699561802",
        "priceUsd": price,
        "changePercent24Hr": "-0.25",
        "vwap24Hr": None,
        "explorer": None,
        "tokens": {},
    }
