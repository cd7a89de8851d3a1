"""``read_topic``, the helper every "arrives once" check reads Kafka with, against the real
broker: it must return a copy published after the Nth message, or those checks see none."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaProducer

from shared.kafka import TopicSpec, ensure_topics
from shared.settings import Settings
from tests.harness.broker import read_topic

MESSAGES = 20
VALUE_BYTES = 100_000
"""Ten such messages fill one fetch (a consumer's default 1 MiB per partition), so reading the
topic takes several fetches, as reading a real run's topics does."""


async def publish(settings: Settings, topic: str, pairs: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for key, value in pairs:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def test_a_copy_published_after_the_expected_count_is_read(stack_settings: Settings) -> None:
    topic = f"test.read-topic.{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(stack_settings, [TopicSpec(topic, 1, 1, 1)]))
    originals = [
        (f"key-{n}".encode(), f"value-{n}:".encode().ljust(VALUE_BYTES, b"x"))
        for n in range(MESSAGES)
    ]
    # The first message again, after all the others: what a re-sent batch looks like.
    asyncio.run(publish(stack_settings, topic, [*originals, originals[0]]))

    messages = asyncio.run(read_topic(stack_settings.kafka_bootstrap_servers, topic, MESSAGES))

    pairs = [(message.key, message.value) for message in messages]
    # A reader that stopped at the expected count saw exactly the originals: no duplicate.
    assert pairs[:MESSAGES] == originals
    # Reading to the end offsets finds the copy, so a count or duplicate check fails as it must.
    assert len(messages) == MESSAGES + 1
    assert pairs[MESSAGES] == originals[0]


def test_it_waits_for_the_expected_messages_and_reads_a_missing_topic_as_empty(
    stack_settings: Settings,
) -> None:
    topic = f"test.read-topic.{uuid.uuid4().hex[:8]}"
    servers = stack_settings.kafka_bootstrap_servers
    assert asyncio.run(read_topic(servers, topic)) == []
    asyncio.run(ensure_topics(stack_settings, [TopicSpec(topic, 3, 1, 1)]))
    pairs = [(f"key-{n}".encode(), f"value-{n}".encode()) for n in range(MESSAGES)]

    async def read_while_publishing() -> int:
        reading = asyncio.create_task(read_topic(servers, topic, MESSAGES, idle_seconds=30))
        await asyncio.sleep(1)  # the reader is waiting on an empty topic
        await publish(stack_settings, topic, pairs)
        return len(await reading)

    assert asyncio.run(read_while_publishing()) == MESSAGES
