"""What the broker holds, read independently of the code under test: every message of a topic,
a consumer group's committed offsets against the log ends, a topic's total."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import UnknownTopicOrPartitionError, for_code
from aiokafka.structs import ConsumerRecord
from tenacity import AsyncRetrying, retry_if_result, stop_after_delay, wait_fixed

from shared.kafka import topic_partitions
from shared.settings import KafkaSettings, Settings

SHORT_READ_RETRY_SECONDS = 30.0
"""How long ``read_topic`` tries again when it read fewer messages than ``expected``."""


async def read_topic(
    bootstrap_servers: str,
    topic: str,
    expected: int | None = None,
    idle_seconds: float = 3.0,
    read_seconds: float = 120.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message of ``topic`` from the start to its end offsets, in offset order per
    partition; an empty list for a topic that does not exist.

    With ``expected``, it first waits until the topic's offsets cover that many messages (or
    until they have not grown for ``idle_seconds``). Either way it then reads up to the end
    offsets the broker reports at that moment, never stopping at a count: a copy published
    after the Nth message is read too, so the caller's count and duplicate checks see it.
    Reading that has not reached those offsets within ``read_seconds`` raises TimeoutError.

    A read that comes back with fewer than ``expected`` messages is made again, with new
    clients, for up to ``SHORT_READ_RETRY_SECONDS``: on a loaded machine a fresh client has
    been seen to describe a topic that holds messages as unknown, or to see its offsets at 0.
    A topic really short of ``expected`` still comes back short, so the caller's count fails.
    """
    retrying = AsyncRetrying(
        stop=stop_after_delay(SHORT_READ_RETRY_SECONDS),
        wait=wait_fixed(1.0),
        retry=retry_if_result(lambda read: expected is not None and len(read) < expected),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else [],
    )
    read: list[ConsumerRecord[bytes, bytes]] = await retrying(
        _read_topic_once, bootstrap_servers, topic, expected, idle_seconds, read_seconds
    )
    return read


async def _read_topic_once(
    bootstrap_servers: str,
    topic: str,
    expected: int | None,
    idle_seconds: float,
    read_seconds: float,
) -> list[ConsumerRecord[bytes, bytes]]:
    partitions = [
        TopicPartition(topic, number)
        for number in await _partition_numbers(bootstrap_servers, topic)
    ]
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    messages: list[ConsumerRecord[bytes, bytes]] = []
    try:
        consumer.assign(partitions)
        ends = await _end_offsets_covering(consumer, partitions, expected, idle_seconds)
        await consumer.seek_to_beginning(*partitions)
        async with asyncio.timeout(read_seconds):
            while not await _reached(consumer, ends):
                batches = await consumer.getmany(timeout_ms=500)
                for partition, batch in batches.items():
                    messages.extend(m for m in batch if m.offset < ends[partition])
    finally:
        await consumer.stop()
    return sorted(messages, key=lambda message: (message.partition, message.offset))


async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for partition, end in ends.items():
        if await consumer.position(partition) < end:
            return False
    return True


async def _partition_numbers(bootstrap_servers: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] == UnknownTopicOrPartitionError.errno:
        return []
    if described["error_code"]:
        # Never "no messages" for a topic the broker could not describe just now.
        raise for_code(described["error_code"])(f"could not describe topic {topic}")
    return sorted(partition["partition"] for partition in described["partitions"])


async def _end_offsets_covering(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    expected: int | None,
    idle_seconds: float,
) -> dict[TopicPartition, int]:
    """The end offsets once they cover ``expected`` messages past the log starts, or once they
    have stopped growing for ``idle_seconds``."""
    starts: dict[TopicPartition, int] = await consumer.beginning_offsets(partitions)
    ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    grew_at = time.monotonic()
    while expected is not None and sum(ends[p] - starts[p] for p in partitions) < expected:
        if time.monotonic() - grew_at > idle_seconds:
            break
        await asyncio.sleep(0.2)
        latest = await consumer.end_offsets(partitions)
        if latest != ends:
            ends, grew_at = latest, time.monotonic()
    return ends


async def broker_offsets(
    settings: Settings, group: str, topics: list[str]
) -> dict[tuple[str, int], tuple[int, int | None]]:
    """Per (topic, partition): log end offset and the group's committed offset, from the
    broker, independently of the control service."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        described = await admin.describe_topics(topics)
        partitions = [
            TopicPartition(topic["topic"], partition["partition"])
            for topic in described
            for partition in topic["partitions"]
        ]
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await consumer.stop()
        await admin.close()
    answer: dict[tuple[str, int], tuple[int, int | None]] = {}
    for partition in partitions:
        entry = committed.get(partition)
        answer[(partition.topic, partition.partition)] = (
            ends[partition],
            entry.offset if entry is not None and entry.offset >= 0 else None,
        )
    return answer


def topic_end_total(settings: KafkaSettings, topic: str) -> int:
    """The sum of ``topic``'s log end offsets: how many messages it has ever held."""

    async def total() -> int:
        numbers = (await topic_partitions(settings, [topic])).get(topic, [])
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
        await consumer.start()
        try:
            ends = await consumer.end_offsets([TopicPartition(topic, n) for n in numbers])
        finally:
            await consumer.stop()
        return sum(ends.values())

    return asyncio.run(total())
