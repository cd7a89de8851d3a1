"""Pipelined delivery against the real broker: several polls in flight, order per key kept,
each record in Kafka once across a broker outage, and everything in flight delivered on stop.

The outage stops a broker of the test's own (``stoppable_stack``), never the session's. The
polls are built here (no simulator): each holds one snapshot of every key, numbered, so the
order per key in Kafka can be read off the messages. Counts compare the topic's end offsets, so
a copy beyond the records read would be seen.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from prometheus_client import REGISTRY

from services.ingestor import delivery as delivery_module
from services.ingestor.buffer import PendingPoll
from services.ingestor.delivery import KafkaDelivery
from services.ingestor.specs import IngestorSpec
from shared.envelope import OutgoingMessage
from shared.settings import KafkaSettings
from tests.harness.broker import read_topic, topic_end_total
from tests.harness.environment import OUTAGE_STACK_ENVIRONMENT, TEST_ENVIRONMENT
from tests.harness.processes import LocalStack, settings_from

KEYS = [f"asset-{number:03d}" for number in range(60)]
RECORD_PADDING = "x" * 400  # about the size of a real CoinCap record


def poll_messages(topic: str, number: int) -> PendingPoll:
    """Poll ``number``: one snapshot of every key, its value naming the poll."""
    return PendingPoll(
        f"poll-{number:04d}",
        [
            OutgoingMessage(
                topic,
                key.encode(),
                json.dumps({"poll": number, "id": key, "pad": RECORD_PADDING}).encode(),
                key,
            )
            for key in KEYS
        ],
    )


@asynccontextmanager
async def running_delivery(environment: dict[str, str]) -> AsyncIterator[KafkaDelivery]:
    """A delivery to the broker ``environment`` names, on a topic of its own, with its sender
    running."""
    suffix = uuid.uuid4().hex[:8]
    settings = settings_from(
        {
            **environment,
            "COINSTREAM_TOPIC_ASSETS": f"test.pipelined.{suffix}",
            "COINSTREAM_TOPIC_DEADLETTER": f"test.pipelined.dead.{suffix}",
            "COINSTREAM_INGEST_MAX_POLLS_IN_FLIGHT": "8",
        }
    )
    spec = IngestorSpec(f"test-pipelined-{suffix}", "assets", "id", settings.topic_assets)
    under_test = KafkaDelivery(spec, settings)
    sender = asyncio.create_task(under_test.deliver_forever())
    try:
        yield under_test
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        await under_test.close_producer()


@pytest.fixture
async def delivery(local_stack: LocalStack) -> AsyncIterator[KafkaDelivery]:
    """A delivery to the session's broker."""
    async with running_delivery(TEST_ENVIRONMENT) as under_test:
        yield under_test


@pytest.fixture
async def delivery_to_stoppable_broker(
    stoppable_stack: LocalStack,
) -> AsyncIterator[KafkaDelivery]:
    """A delivery to the broker a test may stop."""
    async with running_delivery(OUTAGE_STACK_ENVIRONMENT) as under_test:
        yield under_test


async def largest_window_while_draining(delivery: KafkaDelivery) -> int:
    """The most polls in flight at once, sampled at every change until the buffer is empty."""
    largest = 0
    async with asyncio.timeout(120):
        while delivery.buffer.polls:
            largest = max(largest, delivery.buffer.polls_in_flight)
            await delivery.buffer.wait_for_change(1)
    return largest


async def check_each_poll_once_in_order_per_key(settings: KafkaSettings, polls: int) -> None:
    topic = settings.topic_assets
    expected = polls * len(KEYS)
    assert await asyncio.to_thread(topic_end_total, settings, topic) == expected
    records = await read_topic(settings.kafka_bootstrap_servers, topic, expected)
    polls_of_key: dict[str, list[int]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        polls_of_key[record.key.decode()].append(json.loads(record.value)["poll"])
    assert set(polls_of_key) == set(KEYS)
    for key, sequence in polls_of_key.items():
        assert sequence == list(range(polls)), f"{key}: {sequence}"


async def test_several_polls_are_in_flight_and_each_key_stays_in_order(
    delivery: KafkaDelivery,
) -> None:
    polls = 40
    for number in range(polls):
        await delivery.queue(poll_messages(delivery.settings.topic_assets, number))

    largest_window = await largest_window_while_draining(delivery)

    assert largest_window > 1, "the sender waited for each poll's acknowledgement"
    assert largest_window <= delivery.max_polls_in_flight
    assert delivery.dropped_records == 0
    await check_each_poll_once_in_order_per_key(delivery.settings, polls)


async def outlasted_the_stall_limit(delivery: KafkaDelivery) -> None:
    """Wait until records have gone unanswered longer than the stall limit, by the clock the
    delivery itself keeps (it restarts at each answer from Kafka)."""
    async with asyncio.timeout(60):
        while True:
            session = delivery.session
            if (
                session is not None
                and session.unanswered
                and time.monotonic() - session.waiting_since > delivery_module.STALL_SECONDS
            ):
                return
            await asyncio.sleep(0.2)


async def test_a_broker_outage_longer_than_the_stall_limit_writes_each_record_once(
    stoppable_stack: LocalStack,
    delivery_to_stoppable_broker: KafkaDelivery,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    delivery = delivery_to_stoppable_broker
    # A stall limit shorter than the outage: the producer must not be abandoned (and its
    # unanswered records sent again) while the broker does not answer at all, nor in the
    # moments after it is back, before the producer has resumed.
    monkeypatch.setattr(delivery_module, "STALL_SECONDS", 10.0)
    topic = delivery.settings.topic_assets
    for number in range(10):
        await delivery.queue(poll_messages(topic, number))
    await largest_window_while_draining(delivery)

    await asyncio.to_thread(stoppable_stack.kafka.stop)
    for number in range(10, 30):
        await delivery.queue(poll_messages(topic, number))
    await outlasted_the_stall_limit(delivery)
    assert delivery.kafka_connected is False
    await asyncio.to_thread(stoppable_stack.ensure_running)

    async with asyncio.timeout(180):
        await delivery.buffer.wait_until_empty()
    resent = REGISTRY.get_sample_value(
        "coinstream_records_resent_total", {"ingestor": delivery.spec.name}
    )
    assert not resent, f"{resent} record(s) sent again by a replacement producer"
    assert delivery.dropped_records == 0
    await check_each_poll_once_in_order_per_key(delivery.settings, 30)


async def test_a_stop_delivers_every_poll_in_flight_within_the_flush_budget(
    delivery: KafkaDelivery,
) -> None:
    polls = 30
    for number in range(polls):
        await delivery.queue(poll_messages(delivery.settings.topic_assets, number))
    async with asyncio.timeout(60):
        while delivery.buffer.polls_in_flight < 2:
            await delivery.buffer.wait_for_change(1)

    await delivery.flush_before_exit()

    assert delivery.buffer.polls == 0 and delivery.dropped_records == 0
    await check_each_poll_once_in_order_per_key(delivery.settings, polls)
