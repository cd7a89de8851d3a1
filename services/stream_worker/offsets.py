"""Commit what the worker has processed to a Kafka consumer group, so lag is visible.

Spark's Kafka source keeps its offsets in the checkpoint and commits nothing to Kafka. After
each batch is safely in the warehouse the worker commits the next offset to read for every
partition it saw to ``stream_consumer_group``; the control service, kminion or Burrow then
compute lag the usual way: log end offset minus committed offset. The checkpoint stays the
source of truth for what to read next; the group is for watching.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future

import pyarrow as pa
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from shared.kafka import kafka_client_config
from shared.settings import KafkaSettings

logger = logging.getLogger(__name__)

COMMIT_TIMEOUT_SECONDS = 15.0


def next_offsets(coordinates: pa.Table) -> dict[tuple[str, int], int]:
    """Per (topic, partition), the offset after the last one in the batch: what to commit.

    ``coordinates`` is the batch's ``topic``, ``partition`` and ``offset`` columns, in Arrow on
    the driver rather than a Spark aggregation, which would cost a shuffle for a handful of
    numbers.
    """
    if coordinates.num_rows == 0:
        return {}
    last = coordinates.group_by(["topic", "partition"]).aggregate([("offset", "max")])
    return {
        (topic, partition): offset + 1
        for topic, partition, offset in zip(
            last["topic"].to_pylist(),
            last["partition"].to_pylist(),
            last["offset_max"].to_pylist(),
            strict=True,
        )
    }


class OffsetCommitter:
    """A consumer-group member that only commits, on an event loop of its own thread.

    The worker's batch function is synchronous (Spark calls it); this keeps one connection to
    the group coordinator open across batches instead of opening one per batch.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="offset-committer", daemon=True
        )
        self._thread.start()
        self._consumer: AIOKafkaConsumer | None = None

    def _run(self, coroutine: object) -> object:
        future: Future[object] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]
        return future.result(COMMIT_TIMEOUT_SECONDS)

    async def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        partitions = {TopicPartition(topic, partition) for topic, partition in offsets}
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                **kafka_client_config(self.settings),
                group_id=self.settings.stream_consumer_group,
                enable_auto_commit=False,
            )
            try:
                await consumer.start()
            except BaseException:
                # A consumer that never started (the broker was down) cannot commit later:
                # drop it, so that the next commit, with the broker back, starts a new one.
                await consumer.stop()
                raise
            self._consumer = consumer
        known = self._consumer.assignment()
        if not partitions <= known:
            self._consumer.assign(list(known | partitions))
        await self._consumer.commit(
            {
                TopicPartition(topic, partition): OffsetAndMetadata(offset, "")
                for (topic, partition), offset in offsets.items()
            }
        )

    def commit(self, next_offsets: dict[tuple[str, int], int]) -> None:
        """Commit, per (topic, partition), the offset of the next message to process."""
        if next_offsets:
            self._run(self._commit(next_offsets))

    def close(self) -> None:
        async def stop() -> None:
            if self._consumer is not None:
                await self._consumer.stop()

        try:
            self._run(stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
