"""Kafka helpers every service uses: the producer we trust, and topics created as configured.

The producer waits for every in-sync replica (``acks=all``) and is idempotent, so a retry inside
the client cannot write a record twice; compression keeps CoinCap's verbose JSON small. Topics
get ``min.insync.replicas`` from the settings, so that on a replicated cluster "every in-sync
replica" is never fewer than that many. Every client connects with ``kafka_client_config``:
the bootstrap servers and the security settings (SSL, SASL) a managed cluster asks for.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, for_code
from aiokafka.helpers import create_ssl_context

from shared.envelope import PRODUCER_MAX_REQUEST_BYTES
from shared.settings import KafkaSettings

logger = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36
START_GRACE_SECONDS = 30.0
"""How long after a process starts Kafka may take to answer before waiting on it is worth a
warning: under ``make run`` and Compose the broker starts beside every service, and on a
2-core machine answers some 10 s later. Before that, one INFO line says what the process waits
for."""
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
    min_insync_replicas: int = 1
    """Replicas that must hold a record before an ``acks=all`` producer hears it is stored."""

    def topic_configs(self) -> dict[str, str]:
        configs = {"min.insync.replicas": str(self.min_insync_replicas)}
        if self.compact:
            # The active segment is never compacted; rolling hourly lets compaction catch up.
            return configs | {"cleanup.policy": "compact", "segment.ms": str(HOUR_MS)}
        assert self.retention_hours is not None
        return configs | {"retention.ms": str(self.retention_hours * HOUR_MS)}


def kafka_client_config(settings: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments every aiokafka client of ours gets: where, and how securely."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        ca_file = settings.kafka_ssl_ca_file
        config["ssl_context"] = create_ssl_context(cafile=str(ca_file) if ca_file else None)
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None  # the settings' validator checks it
        config |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
        }
    return config


def pipeline_topics(settings: KafkaSettings) -> list[TopicSpec]:
    """The record topics (assets, exchanges, backfilled history) and the dead-letter topic, as
    the settings describe them."""
    record_topic = (settings.topic_partitions, settings.topic_replication_factor)
    min_insync = settings.topic_min_insync_replicas
    return [
        TopicSpec(
            settings.topic_assets,
            *record_topic,
            settings.topic_retention_hours,
            min_insync_replicas=min_insync,
        ),
        TopicSpec(
            settings.topic_exchanges,
            *record_topic,
            settings.topic_retention_hours,
            min_insync_replicas=min_insync,
        ),
        TopicSpec(
            settings.topic_history,
            *record_topic,
            settings.topic_retention_hours,
            min_insync_replicas=min_insync,
        ),
        TopicSpec(
            settings.topic_deadletter,
            *record_topic,
            settings.deadletter_retention_hours,
            min_insync_replicas=min_insync,
        ),
    ]


async def ensure_topics(settings: KafkaSettings, topics: list[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(**kafka_client_config(settings))
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


async def kafka_answers(settings: KafkaSettings, within_seconds: float = 2.0) -> bool:
    """True when the broker answers a metadata request (not merely when its port is open)."""
    admin = AIOKafkaAdminClient(
        **kafka_client_config(settings),
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


@dataclass(frozen=True)
class PartitionReplicas:
    """Where one partition lives, as the cluster's metadata says now."""

    partition: int
    leader: int | None
    """The broker that serves it; None when no replica can (the partition is offline)."""
    replicas: tuple[int, ...]
    in_sync_replicas: tuple[int, ...]
    """The replicas holding every acknowledged record; fewer than ``replicas`` after a broker
    was lost, until it has caught up again."""


async def describe_partitions(
    settings: KafkaSettings, topics: list[str], within_seconds: float = 10.0
) -> dict[str, list[PartitionReplicas]]:
    """Each existing topic's partitions in number order (a missing topic is left out).

    From the broker's metadata for exactly these topics: a consumer's own metadata cache only
    knows the topics it subscribed to.
    """
    admin = AIOKafkaAdminClient(
        **kafka_client_config(settings),
        request_timeout_ms=int(within_seconds * 1000),
    )
    try:
        async with asyncio.timeout(within_seconds):
            await admin.start()
            return await describe_partitions_with(admin, topics)
    finally:
        await admin.close()


async def describe_partitions_with(
    admin: AIOKafkaAdminClient, topics: list[str]
) -> dict[str, list[PartitionReplicas]]:
    """``describe_partitions`` through an admin client the caller keeps open."""
    described = await admin.describe_topics(topics)
    return {
        topic["topic"]: sorted(
            (
                PartitionReplicas(
                    partition=partition["partition"],
                    leader=partition["leader"] if partition["leader"] >= 0 else None,
                    replicas=tuple(partition["replicas"]),
                    in_sync_replicas=tuple(partition["isr"]),
                )
                for partition in topic["partitions"]
            ),
            key=lambda replicas: replicas.partition,
        )
        for topic in described
        if topic["error_code"] == 0 and topic["partitions"]
    }


async def topic_partitions(
    settings: KafkaSettings, topics: list[str], within_seconds: float = 10.0
) -> dict[str, list[int]]:
    """The partition numbers of each topic that exists (a missing topic is left out)."""
    described = await describe_partitions(settings, topics, within_seconds)
    return {
        topic: [each.partition for each in partitions] for topic, partitions in described.items()
    }


async def live_brokers(settings: KafkaSettings, within_seconds: float = 10.0) -> list[int]:
    """The ids of the brokers the cluster counts as alive (a dead one drops out once the
    controller has noticed, within its session timeout)."""
    admin = AIOKafkaAdminClient(
        **kafka_client_config(settings),
        request_timeout_ms=int(within_seconds * 1000),
    )
    try:
        async with asyncio.timeout(within_seconds):
            await admin.start()
            cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    return sorted(broker["node_id"] for broker in cluster["brokers"])


def create_producer(settings: KafkaSettings, client_id: str) -> AIOKafkaProducer:
    """An idempotent, ``acks=all`` producer; not started."""
    return AIOKafkaProducer(
        **kafka_client_config(settings),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        compression_type=None if settings.kafka_compression == "none" else "gzip",
        linger_ms=5,
        # Stated, not left to the default: the ingestors refuse a larger message before sending
        # it (shared.envelope.fits_in_kafka), so send never raises for a record's size.
        max_request_size=PRODUCER_MAX_REQUEST_BYTES,
        # A request gets this long for its answer (not the 40 s default); a batch waiting for a
        # partition leader is failed after it too, which the ingestors turn off
        # (services.ingestor.session.hold_leaderless_batches): they keep their own buffer.
        request_timeout_ms=10_000,
    )
