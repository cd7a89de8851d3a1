"""Kafka helpers every service uses: the producer we trust, and topics created as configured.

The producer waits for every in-sync replica (``acks=all``) and is idempotent, so a retry inside
the client cannot write a record twice; compression keeps CoinCap's verbose JSON small.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, for_code

from shared.settings import Settings

logger = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36
HOUR_MS = 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    retention_hours: int | None
    """None keeps records until compaction replaces them (with ``compact``)."""
    compact: bool = False
    """Keep only the newest record per key (``cleanup.policy=compact``), as for state topics."""

    def topic_configs(self) -> dict[str, str]:
        if self.compact:
            # The active segment is never compacted; rolling hourly lets compaction catch up.
            return {"cleanup.policy": "compact", "segment.ms": str(HOUR_MS)}
        assert self.retention_hours is not None
        return {"retention.ms": str(self.retention_hours * HOUR_MS)}


def pipeline_topics(settings: Settings) -> list[TopicSpec]:
    """The record topics and the dead-letter topic, as the settings describe them."""
    record_topic = (settings.topic_partitions, settings.topic_replication_factor)
    return [
        TopicSpec(settings.topic_assets, *record_topic, settings.topic_retention_hours),
        TopicSpec(settings.topic_exchanges, *record_topic, settings.topic_retention_hours),
        TopicSpec(settings.topic_deadletter, *record_topic, settings.deadletter_retention_hours),
    ]


async def ensure_topics(settings: Settings, topics: list[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        response = await admin.create_topics(
            [
                NewTopic(
                    topic.name,
                    num_partitions=topic.partitions,
                    replication_factor=topic.replication_factor,
                    topic_configs=topic.topic_configs(),
                )
                for topic in topics
            ]
        )
    finally:
        await admin.close()
    created = []
    for name, error_code, *rest in response.topic_errors:
        if error_code == 0:
            created.append(name)
            logger.info("created topic %s", name)
        elif error_code != TOPIC_ALREADY_EXISTS:
            message = rest[0] if rest else ""
            raise for_code(error_code)(f"could not create topic {name}: {message}")
    return created


async def kafka_answers(settings: Settings, within_seconds: float = 2.0) -> bool:
    """True when the broker answers a metadata request (not merely when its port is open)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        request_timeout_ms=int(within_seconds * 1000),
    )
    try:
        async with asyncio.timeout(within_seconds):
            await admin.start()
            cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await admin.close()


async def topic_partitions(
    settings: Settings, topics: list[str], within_seconds: float = 10.0
) -> dict[str, list[int]]:
    """The partition numbers of each topic that exists (a missing topic is left out).

    From the broker's metadata for exactly these topics: a consumer's own metadata cache only
    knows the topics it subscribed to.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        request_timeout_ms=int(within_seconds * 1000),
    )
    try:
        async with asyncio.timeout(within_seconds):
            await admin.start()
            described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return {
        topic["topic"]: sorted(partition["partition"] for partition in topic["partitions"])
        for topic in described
        if topic["error_code"] == 0 and topic["partitions"]
    }


def create_producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    """An idempotent, ``acks=all`` producer; not started."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        compression_type=None if settings.kafka_compression == "none" else "gzip",
        linger_ms=5,
        # A send that cannot be delivered fails within this time, and the ingestor keeps the
        # record in its own buffer to send again; it does not hang for the 40 s default.
        request_timeout_ms=10_000,
    )
