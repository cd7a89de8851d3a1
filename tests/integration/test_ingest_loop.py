"""The poll -> produce loop in-process, against the simulator process and the real broker.

Each test gets topics of its own, so it can count exactly what it produced.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from services.ingestor.loop import Ingestor
from services.ingestor.models import IngestorHealth
from services.ingestor.specs import IngestorSpec
from shared.coincap.client import CoinCapClient
from shared.settings import Settings
from tests.harness.broker import read_topic, topic_end_total
from tests.harness.environment import SIMULATOR_PORT, TEST_ENVIRONMENT
from tests.harness.processes import settings_from


class RecordedResponses:
    """The client's response observer, as the service wires metrics to it."""

    def __init__(self) -> None:
        self.statuses: Counter[str] = Counter()

    def __call__(self, endpoint: str, status: int | str, seconds: float) -> None:
        self.statuses[str(status)] += 1


class Harness:
    def __init__(self, settings: Settings, ingestor: Ingestor, responses: RecordedResponses):
        self.settings = settings
        self.ingestor = ingestor
        self.responses = responses
        self._sender: asyncio.Task[None] | None = None

    async def poll_and_deliver(self) -> Any:
        poll = await self.ingestor.poll_once()
        await self.deliver()
        return poll

    async def deliver(self) -> None:
        sender = asyncio.create_task(self.ingestor.delivery.deliver_forever())
        try:
            await asyncio.wait_for(self.ingestor.delivery.buffer.wait_until_empty(), 30)
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def close(self) -> None:
        await self.ingestor.delivery.close_producer()
        await self.ingestor.client.aclose()

    def health(self) -> IngestorHealth:
        """What the ingestor's ``/healthz`` would answer now."""
        return IngestorHealth.of(self.ingestor)

    async def messages(self, topic: str, expected: int | None = None) -> list[dict[str, Any]]:
        records = await read_topic(self.settings.kafka_bootstrap_servers, topic, expected)
        if expected is not None:
            # read_topic reads to the end offsets: a copy after the Nth message is in records.
            on_broker = await asyncio.to_thread(topic_end_total, self.settings, topic)
            assert on_broker == len(records), f"{topic}: {on_broker} on the broker, read {expected}"
        return [
            json.loads(record.value) | {"_key": record.key} for record in records if record.value
        ]


@pytest.fixture
async def harness(stack_settings: Settings, simulator: str) -> Any:
    """An asset ingestor on fresh topics, with a client that retries fast."""
    suffix = uuid.uuid4().hex[:8]
    settings = settings_from(
        {
            **TEST_ENVIRONMENT,
            "COINSTREAM_COINCAP_SIMULATOR_PORT": str(SIMULATOR_PORT),
            "COINSTREAM_TOPIC_ASSETS": f"test.assets.{suffix}",
            "COINSTREAM_TOPIC_EXCHANGES": f"test.exchanges.{suffix}",
            "COINSTREAM_TOPIC_DEADLETTER": f"test.deadletter.{suffix}",
            "COINSTREAM_QUOTA_PAUSE_SECONDS": "30",
        }
    )
    clear_faults()
    responses = RecordedResponses()
    client = CoinCapClient(
        settings.coincap_url,
        page_limit=40,
        max_retries=3,
        backoff_initial_seconds=0.05,
        backoff_max_seconds=0.2,
        on_response=responses,
    )
    spec = IngestorSpec(
        name=f"test-assets-{suffix}", endpoint="assets", key_field="id", topic=settings.topic_assets
    )
    test_harness = Harness(settings, Ingestor(spec, settings, client), responses)
    yield test_harness
    await test_harness.close()
    clear_faults()


def clear_faults() -> None:
    httpx.delete(f"http://127.0.0.1:{SIMULATOR_PORT}/_simulator/faults").raise_for_status()


def set_fault(**knob: Any) -> None:
    response = httpx.post(f"http://127.0.0.1:{SIMULATOR_PORT}/_simulator/faults", json=knob)
    response.raise_for_status()


def simulator_asset_ids() -> set[str]:
    body = httpx.get(f"http://127.0.0.1:{SIMULATOR_PORT}/v3/assets?limit=2000").json()
    return {record["id"] for record in body["data"]}


async def test_one_poll_yields_one_message_per_asset_keyed_by_id(harness: Harness) -> None:
    poll = await harness.poll_and_deliver()
    asset_ids = simulator_asset_ids()
    assert len(asset_ids) >= 150

    messages = await harness.messages(harness.settings.topic_assets, expected=len(asset_ids))
    assert len(messages) == len(asset_ids)
    assert {m["_key"].decode() for m in messages} == asset_ids
    for message in messages:
        assert message["_key"].decode() == message["record"]["id"]
        assert message["poll_id"] == poll.poll_id
        assert message["schema_version"] == 1
        assert message["source"] == "coincap-simulator"
        assert isinstance(message["source_timestamp"], int)
        assert message["fetched_at"] >= message["source_timestamp"]
        assert isinstance(message["record"]["priceUsd"], str)  # raw, as CoinCap sent it


async def test_page_boundaries_lose_and_duplicate_nothing(harness: Harness) -> None:
    await harness.poll_and_deliver()
    asset_ids = simulator_asset_ids()
    assert len(asset_ids) > 3 * 40  # several pages of 40
    messages = await harness.messages(harness.settings.topic_assets, expected=len(asset_ids))
    keys = [m["_key"].decode() for m in messages]
    assert sorted(keys) == sorted(asset_ids)
    assert harness.responses.statuses["200"] == -(-len(asset_ids) // 40)


async def test_burst_429s_and_5xx_are_retried_and_counted(harness: Harness) -> None:
    set_fault(mode="rate_limit", count=2, retry_after=0.1)
    set_fault(mode="server_error", count=1, status=503)
    poll = await harness.poll_and_deliver()
    assert poll is not None
    assert harness.responses.statuses["429"] == 2
    assert harness.responses.statuses["503"] == 1
    assert harness.health().polls_succeeded == 1
    assert harness.health().quota_exhausted_until is None


async def test_a_persistent_429_pauses_polling_without_hammering(harness: Harness) -> None:
    set_fault(mode="quota_exhausted")
    assert await harness.ingestor.poll_once() is None
    status = harness.health()
    assert status.quota_exhausted_until is not None
    assert "quota" in (status.last_error or "").lower()
    attempts = harness.responses.statuses["429"]
    assert attempts == 4  # the first try and 3 retries, then it stops

    # While paused, the loop waits instead of polling.
    run = asyncio.create_task(harness.ingestor.run())
    await asyncio.sleep(1.5)
    await harness.ingestor.stop()
    await asyncio.wait_for(run, 10)
    assert harness.responses.statuses["429"] == attempts
    assert sum(harness.responses.statuses.values()) == attempts


async def test_a_record_without_id_is_dead_lettered_and_the_rest_delivered(
    harness: Harness,
) -> None:
    set_fault(mode="missing_id", count=1)
    await harness.poll_and_deliver()
    asset_ids = simulator_asset_ids()

    dead = await harness.messages(harness.settings.topic_deadletter, expected=1)
    assert len(dead) == 1
    assert dead[0]["reason"] == "missing required field 'id'"
    assert dead[0]["endpoint"] == "assets"
    assert dead[0]["stage"] == "ingest"
    assert "id" not in dead[0]["raw"] and "priceUsd" in dead[0]["raw"]

    delivered = await harness.messages(harness.settings.topic_assets, expected=len(asset_ids) - 1)
    assert len(delivered) == len(asset_ids) - 1


@pytest.mark.parametrize(
    ("fault", "error_words"),
    [
        ({"mode": "malformed_json"}, "not JSON"),
        ({"mode": "retired_v2"}, "retired"),
        ({"mode": "server_error", "count": 10, "status": 500}, "HTTP 500"),
    ],
    ids=["malformed-json", "retired-v2", "persistent-500"],
)
async def test_a_failed_poll_says_why_and_produces_nothing(
    harness: Harness, fault: dict[str, Any], error_words: str
) -> None:
    set_fault(**fault)
    assert await harness.ingestor.poll_once() is None
    status = harness.health()
    assert status.polls_failed == 1
    assert error_words in (status.last_error or "")
    assert harness.ingestor.delivery.buffer.polls == 0


async def test_run_returns_after_stop_while_the_sender_waits_on_an_empty_buffer(
    harness: Harness,
) -> None:
    run = asyncio.create_task(harness.ingestor.run())
    delivery = harness.ingestor.delivery
    async with asyncio.timeout(60):
        while harness.ingestor.polls_succeeded == 0 or delivery.buffer.polls:
            await delivery.buffer.wait_for_change(0.1)
    await asyncio.sleep(0.5)  # the sender is back to waiting on the empty buffer

    await harness.ingestor.stop()
    async with asyncio.timeout(60):
        await run
    assert delivery.dropped_records == 0
