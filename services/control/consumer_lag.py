"""Consumer lag of the stream worker's group, computed the way kminion and Burrow compute it.

Per partition: the log end offset (the broker's), the group's committed offset (the next record
the worker will process), and their difference in records. The lag in seconds is the age of the
oldest unprocessed record, read from its Kafka timestamp: "how far behind" in the unit an
analyst cares about, without guessing from rates. Each partition also says where it lives now
(leader, replicas, in-sync replicas), which shows a lost broker as soon as the cluster does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.control.errors import DependencyUnavailable
from services.control.kafka_clients import ControlKafkaClients
from services.control.models import LagReport, PartitionLag, TopicLag
from services.control.shared_answer import SharedAnswer
from shared.kafka import describe_partitions_with
from shared.settings import ControlServiceSettings

TIMESTAMP_READ_SECONDS = 3.0


async def measure_lag(
    settings: ControlServiceSettings,
    group: str,
    topics: Sequence[str],
    within_seconds: float = 10.0,
    clients: ControlKafkaClients | None = None,
) -> LagReport:
    """Lag of ``group`` on ``topics``, through ``clients`` (the control service's long-lived
    ones), or through clients opened for this one measurement; raises KafkaError, OSError or
    TimeoutError when the broker does not answer within ``within_seconds``."""
    if clients is None:
        own = ControlKafkaClients(settings)
        try:
            return await measure_lag(settings, group, topics, within_seconds, own)
        finally:
            await own.close()
    async with asyncio.timeout(within_seconds):
        async with clients.admin() as admin:
            described = await describe_partitions_with(admin, list(topics))
            committed_offsets = await admin.list_consumer_group_offsets(group)
        every = [
            TopicPartition(topic, each.partition)
            for topic, partitions in described.items()
            for each in partitions
        ]
        async with clients.consumer() as consumer:
            measured_at = datetime.now(UTC)
            ends = await consumer.end_offsets(every) if every else {}
            starts = await consumer.beginning_offsets(every) if every else {}
            committed: dict[TopicPartition, int | None] = {}
            for partition in every:
                entry = committed_offsets.get(partition)
                committed[partition] = entry.offset if entry and entry.offset >= 0 else None
            next_to_process = {
                partition: max(committed[partition] or 0, starts[partition]) for partition in every
            }
            lagging = {
                partition: offset
                for partition, offset in next_to_process.items()
                if ends[partition] > offset
            }
            oldest = await _first_timestamps(consumer, lagging)

    now = time.time()
    topic_reports = []
    for topic in topics:
        partition_reports = []
        for replicas in described.get(topic, []):
            number = replicas.partition
            partition = TopicPartition(topic, number)
            lag = ends[partition] - next_to_process[partition]
            timestamp_ms = oldest.get(partition)
            lag_seconds = (
                0.0
                if lag == 0
                else (max(0.0, now - timestamp_ms / 1000) if timestamp_ms is not None else None)
            )
            partition_reports.append(
                PartitionLag(
                    partition=number,
                    log_start_offset=starts[partition],
                    log_end_offset=ends[partition],
                    committed_offset=committed[partition],
                    lag_records=lag,
                    lag_seconds=lag_seconds,
                    leader=replicas.leader,
                    in_sync_replicas=list(replicas.in_sync_replicas),
                    replicas=list(replicas.replicas),
                )
            )
        known_seconds = [p.lag_seconds for p in partition_reports if p.lag_seconds is not None]
        topic_reports.append(
            TopicLag(
                topic=topic,
                exists=topic in described,
                lag_records=sum(p.lag_records for p in partition_reports),
                lag_seconds=max(known_seconds) if known_seconds else None,
                partitions=partition_reports,
            )
        )
    return LagReport(
        group=group,
        measured_at=measured_at,
        lag_records=sum(topic.lag_records for topic in topic_reports),
        topics=topic_reports,
    )


async def _first_timestamps(
    consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """The Kafka timestamp (ms) of the record at (or first after) each offset."""
    if not offsets:
        return {}
    consumer.assign(list(offsets))
    for partition, offset in offsets.items():
        consumer.seek(partition, offset)
    found: dict[TopicPartition, int] = {}
    deadline = time.monotonic() + TIMESTAMP_READ_SECONDS
    while len(found) < len(offsets) and time.monotonic() < deadline:
        waiting = [partition for partition in offsets if partition not in found]
        batches = await consumer.getmany(*waiting, timeout_ms=500, max_records=len(waiting))
        for partition, records in batches.items():
            first = next((r for r in records if r.offset >= offsets[partition]), None)
            if first is not None:
                found[partition] = first.timestamp
                consumer.pause(partition)
    return found


class LagReader:
    """The worker group's lag on the record topics, as the settings name them."""

    def __init__(self, settings: ControlServiceSettings, clients: ControlKafkaClients) -> None:
        self.settings = settings
        self.clients = clients
        self.topics = (settings.topic_assets, settings.topic_exchanges)
        self.answer = SharedAnswer("lag", self._measure, settings.control_answer_cache_seconds)

    async def report(self) -> LagReport:
        """The lag; one measurement at a time, shared by the requests of a second or two."""
        return await self.answer.get()

    async def _measure(self) -> LagReport:
        try:
            return await measure_lag(
                self.settings,
                self.settings.stream_consumer_group,
                self.topics,
                clients=self.clients,
            )
        except (KafkaError, OSError, TimeoutError) as error:
            raise DependencyUnavailable(
                f"Kafka at {self.settings.kafka_bootstrap_servers} did not answer "
                f"({type(error).__name__}); start it (`make run`) or check "
                "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS, then retry"
            ) from None
