"""The real local broker: topics, an idempotent keyed producer, and a consumer that gets it all."""

from __future__ import annotations

import uuid
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.settings import Settings


async def test_keyed_records_produced_idempotently_are_all_consumed(
    stack_settings: Settings,
) -> None:
    topic = f"test.roundtrip.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack_settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()

    keys = [f"asset-{index}" for index in range(25)]
    sent = [(key, f"{key}:{sequence}") for sequence in range(8) for key in keys]
    producer = AIOKafkaProducer(
        bootstrap_servers=stack_settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        compression_type="gzip",
    )
    await producer.start()
    try:
        for key, value in sent:
            await producer.send(topic, key=key.encode(), value=value.encode())
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack_settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    received: list[tuple[str, str, int]] = []
    try:
        while len(received) < len(sent):
            batches = await consumer.getmany(timeout_ms=5000)
            if not batches:
                break
            for partition, messages in batches.items():
                received += [
                    (m.key.decode(), m.value.decode(), partition.partition)
                    for m in messages
                    if m.key is not None and m.value is not None
                ]
    finally:
        await consumer.stop()

    assert sorted((key, value) for key, value, _ in received) == sorted(sent)
    # A key always lands on one partition, so its records arrive in the order they were sent.
    partitions_of: dict[str, set[int]] = defaultdict(set)
    values_of: dict[str, list[str]] = defaultdict(list)
    for key, value, partition in received:
        partitions_of[key].add(partition)
        values_of[key].append(value)
    assert all(len(partitions) == 1 for partitions in partitions_of.values())
    assert values_of["asset-3"] == [f"asset-3:{sequence}" for sequence in range(8)]
    assert len({partition for _, _, partition in received}) > 1
