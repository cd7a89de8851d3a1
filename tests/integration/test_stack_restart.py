"""State survives a restart of the broker and of the emulator (a pair of the test's own,
``stoppable_stack``: the session's are never stopped)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.schemas import EXCHANGES
from shared.warehouse import create_bigquery_client, ensure_warehouse, table_id
from tests.harness.processes import LocalStack


async def produce(bootstrap: str, topic: str, values: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send(topic, key=b"kraken", value=value.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def consume_all(bootstrap: str, topic: str, expected: int) -> list[str]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    values: list[str] = []
    try:
        while len(values) < expected:
            batches = await consumer.getmany(timeout_ms=10_000)
            if not batches:
                break
            values += [m.value.decode() for ms in batches.values() for m in ms if m.value]
    finally:
        await consumer.stop()
    return values


def test_broker_and_emulator_keep_their_data_across_a_restart(
    stoppable_stack: LocalStack,
) -> None:
    settings = stoppable_stack.settings
    topic = f"test.restart.{uuid.uuid4().hex[:8]}"
    values = [f"record-{index}" for index in range(50)]
    asyncio.run(produce(settings.kafka_bootstrap_servers, topic, values))

    client = create_bigquery_client(settings)
    ensure_warehouse(client, settings)
    exchange_id = f"restart-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).isoformat()
    rows = [{"exchange_id": exchange_id, "source_timestamp": now, "processing_timestamp": now}]
    assert client.insert_rows_json(table_id(settings, EXCHANGES), rows) == []

    stoppable_stack.stop()
    stoppable_stack.ensure_running()

    assert asyncio.run(consume_all(settings.kafka_bootstrap_servers, topic, len(values))) == values
    query = (
        f"SELECT COUNT(*) AS n FROM `{table_id(settings, EXCHANGES)}` "
        f"WHERE exchange_id = '{exchange_id}'"
    )
    assert next(iter(create_bigquery_client(settings).query(query).result()))["n"] == 1
