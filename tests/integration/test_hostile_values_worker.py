"""The stream worker process against poison: one message per hostile value, written straight to
the record topics beside healthy records (anyone who can write a topic can write anything),
with each warehouse sink. The healthy records land in their tables, each poison message in the
quarantine with its reason, and the worker stays RUNNING and goes on to the next batch."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaProducer

from shared.kafka import ensure_topics, pipeline_topics
from shared.settings import Settings
from tests.harness.environment import TEST_ENVIRONMENT, offset_port
from tests.harness.processes import LocalStack
from tests.harness.records import (
    BITCOIN,
    HOSTILE,
    HUGE,
    KRAKEN,
    POINT,
    WINDOW_HOURS,
    history,
    message,
)
from tests.harness.sinks import SINKS
from tests.harness.stream_worker import StreamWorkerProcess
from tests.harness.waiting import wait_for

WORKER_PORTS = {"merge": offset_port(18120), "storage-write": offset_port(18121)}


@pytest.fixture(params=SINKS)
def worker(
    request: pytest.FixtureRequest, local_stack: LocalStack
) -> Iterator[StreamWorkerProcess]:
    """A worker of its own, history topic included, with the sink the test is for."""
    own = StreamWorkerProcess(
        "hostile",
        TEST_ENVIRONMENT,
        WORKER_PORTS[request.param],
        {
            "COINSTREAM_TOPIC_HISTORY": f"test.hostile.history.{uuid.uuid4().hex[:8]}",
            "COINSTREAM_STREAM_SINK": request.param,
        },
    )
    assert own.settings.snapshot_time_window_hours == WINDOW_HOURS
    own.start()
    yield own
    own.process.stop()


def topics(settings: Settings) -> dict[str, str]:
    """The record topics by the short names the poison list uses."""
    return {"a": settings.topic_assets, "e": settings.topic_exchanges, "h": settings.topic_history}


def produce(settings: Settings, messages: list[tuple[str, bytes | None]]) -> None:
    async def send() -> None:
        await ensure_topics(settings, pipeline_topics(settings))
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            for topic, value in messages:
                await producer.send(topics(settings)[topic], value, key=b"poison")
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(send())


def count(worker: StreamWorkerProcess, table: str) -> int:
    return int(worker.query(f"SELECT COUNT(*) AS n FROM `{{d}}.{table}`")[0]["n"])


def test_poison_is_quarantined_with_its_reason_and_the_stream_goes_on(
    worker: StreamWorkerProcess,
) -> None:
    settings = worker.settings
    every_topic = list(topics(settings).values())
    healthy = [("a", message(BITCOIN)), ("e", message(KRAKEN)), ("h", history(POINT))]
    poison = [(topic, value) for topic, value, _ in HOSTILE]
    produce(settings, [*healthy, *poison, ("a", HUGE)])

    worker.wait_caught_up(180, every_topic)
    assert {table: count(worker, table) for table in ("assets", "exchanges", "asset_history")} == {
        "assets": 1,
        "exchanges": 1,
        "asset_history": 1,
    }
    stored = worker.query("SELECT reason, raw_value, LENGTH(raw_value) AS n FROM `{d}.quarantine`")
    assert len(stored) == len(HOSTILE) + 1, [row["reason"] for row in stored]
    unmatched = list(stored)
    for _, _, reason in HOSTILE:
        found = next((row for row in unmatched if row["reason"].startswith(reason)), None)
        assert found is not None, (reason, [row["reason"] for row in unmatched])
        unmatched.remove(found)
    [huge] = unmatched
    assert huge["n"] == 800 and huge["reason"].endswith(f"of {len(HUGE)} characters")
    not_utf8 = [row for row in stored if row["reason"].startswith("value is not valid UTF-8")]
    assert all("\ufffd" in row["raw_value"] for row in not_utf8) and len(not_utf8) == 2

    health = worker.health()
    assert (health["state"], health["status"], health["last_error"]) == ("RUNNING", "ok", None)
    batches = health["batches"]
    produce(settings, [("a", message({**BITCOIN, "id": "ethereum", "symbol": "ETH"}))])
    wait_for(lambda: count(worker, "assets") == 2, "the next batch's healthy record", 90)
    health = worker.health()
    assert health["state"] == "RUNNING" and health["batches"] > batches
    assert health["last_error"] is None
