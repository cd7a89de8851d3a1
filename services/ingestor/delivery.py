"""Delivery of fetched polls to Kafka: the producer, the buffer, sending and sending again.

The poller queues each poll here and goes on polling; ``deliver_forever`` delivers the polls
oldest first and keeps what Kafka did not acknowledge for another try, so a broker outage stops
no poll. Nothing is lost silently: a poll dropped from a full buffer, or still undelivered when
the ingestor exits, is counted, logged with its id and shown in ``/healthz``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.ingestor import metrics
from services.ingestor.buffer import DeliveryBuffer, PendingPoll
from services.ingestor.specs import IngestorSpec
from shared.envelope import OutgoingMessage
from shared.kafka import create_producer, ensure_topics, pipeline_topics
from shared.settings import Settings

logger = logging.getLogger(__name__)

SEND_RETRY_MAX_SECONDS = 5.0
ACKNOWLEDGEMENT_PATIENCE_SECONDS = 5.0
DELIVERY_TIMEOUT_SECONDS = 30.0
PRODUCER_CLOSE_SECONDS = 5.0
DROPPED_POLL_IDS_KEPT = 100

LossReason = Literal["buffer_full", "shutdown"]
"""Why a poll was dropped: the buffer overflowed, or the ingestor exited before delivering it."""


class KafkaDelivery:
    """One ingestor's way into Kafka. ``deliver_forever`` runs beside the poller until it is
    cancelled; the producer is started when the broker answers and replaced when it stalls."""

    def __init__(self, spec: IngestorSpec, settings: Settings) -> None:
        self.spec = spec
        self.settings = settings
        self.buffer = DeliveryBuffer(settings.ingest_buffer_max_records)
        self.producer: AIOKafkaProducer | None = None
        self.kafka_connected = False
        self.dropped_records = 0
        self.dropped_poll_ids: deque[str] = deque(maxlen=DROPPED_POLL_IDS_KEPT)
        """The newest dropped poll ids; the log has every one."""

    async def queue(self, poll: PendingPoll) -> None:
        """Hand a poll over for delivery, dropping (and counting) the oldest waiting ones if the
        buffer overflows."""
        for lost in await self.buffer.add(poll):
            self._count_loss(lost, "buffer_full")
        self._update_buffer_gauge()

    async def deliver_forever(self) -> None:
        """Deliver the buffered polls in order, retrying with backoff while Kafka is away."""
        wait_seconds = 0.5
        while True:
            poll = await self.buffer.head()
            producer = await self._producer()
            if producer is not None:
                poll.undelivered = await self._send(producer, poll.undelivered)
                self._update_buffer_gauge()
            if producer is not None and not poll.undelivered:
                await self.buffer.remove_head(poll)
                self._update_buffer_gauge()
                wait_seconds = 0.5
                continue
            await asyncio.sleep(wait_seconds)
            wait_seconds = min(wait_seconds * 2, SEND_RETRY_MAX_SECONDS)

    async def flush_before_exit(self) -> None:
        """Wait up to ``shutdown_flush_seconds`` for ``deliver_forever`` to empty the buffer;
        count what is left as lost."""
        timeout = self.settings.shutdown_flush_seconds
        try:
            await asyncio.wait_for(self.buffer.wait_until_empty(), timeout)
        except TimeoutError:
            lost = self.buffer.take_all()
            for poll in lost:
                self._count_loss(poll, "shutdown")
            logger.error(
                "%s: stopped with %d poll(s) Kafka never acknowledged within %.0f s",
                self.spec.name,
                len(lost),
                timeout,
            )
        self._update_buffer_gauge()

    async def close_producer(self) -> None:
        """Close the producer, if there is one; the next send starts a fresh one."""
        if self.producer is None:
            return
        producer, self.producer = self.producer, None
        # stop() flushes, which waits for a broker that may never come back.
        try:
            await asyncio.wait_for(producer.stop(), PRODUCER_CLOSE_SECONDS)
        except TimeoutError:
            logger.error("%s: Kafka producer did not close in time", self.spec.name)

    async def disconnect(self) -> None:
        """Close the producer and hold no connection until there is something to deliver."""
        await self.close_producer()
        self.kafka_connected = False

    async def _producer(self) -> AIOKafkaProducer | None:
        """The started producer, starting it (and creating topics) when the broker answers."""
        if self.producer is not None:
            return self.producer
        producer = create_producer(self.settings, client_id=self.spec.name)
        try:
            await producer.start()
            await ensure_topics(self.settings, pipeline_topics(self.settings))
        except (KafkaError, OSError) as error:
            await producer.stop()
            self._note_kafka(False, f"Kafka unreachable: {error}")
            return None
        self.producer = producer
        self._note_kafka(True)
        return producer

    def _note_kafka(self, connected: bool, problem: str | None = None) -> None:
        if connected != self.kafka_connected:
            if connected:
                logger.info("%s: Kafka reachable; delivering", self.spec.name)
            else:
                logger.error(
                    "%s: %s; buffering (%d records held)",
                    self.spec.name,
                    problem,
                    self.buffer.records,
                )
        self.kafka_connected = connected

    async def _send(
        self, producer: AIOKafkaProducer, messages: list[OutgoingMessage]
    ) -> list[OutgoingMessage]:
        """Send in order; return the messages Kafka did not acknowledge."""
        in_flight: list[tuple[OutgoingMessage, asyncio.Future[Any]]] = []
        not_sent: list[OutgoingMessage] = []
        for index, message in enumerate(messages):
            try:
                future = await producer.send(message.topic, message.value, key=message.key)
            except KafkaError:
                # Metadata is unavailable: the broker is gone; keep the rest for later, in order.
                not_sent = messages[index:]
                break
            in_flight.append((message, future))
        futures = [future for _, future in in_flight]
        if futures:
            _, waiting = await asyncio.wait(futures, timeout=ACKNOWLEDGEMENT_PATIENCE_SECONDS)
            if waiting:
                # The producer keeps these and delivers them, in order and once, when the broker
                # is back; say so now rather than when they finally arrive.
                self._note_kafka(
                    False,
                    f"Kafka has not acknowledged {len(waiting)} record(s) for "
                    f"{ACKNOWLEDGEMENT_PATIENCE_SECONDS:g} s",
                )
                _, waiting = await asyncio.wait(
                    waiting, timeout=DELIVERY_TIMEOUT_SECONDS - ACKNOWLEDGEMENT_PATIENCE_SECONDS
                )
            if waiting:
                # Seen after a broker restart: an idempotent producer that never completes some
                # sends although the broker is back. Replace it; what it did not deliver is sent
                # again by the next producer.
                logger.error(
                    "%s: %d record(s) unacknowledged for %g s; replacing the Kafka producer",
                    self.spec.name,
                    len(waiting),
                    DELIVERY_TIMEOUT_SECONDS,
                )
                await self.close_producer()
        failed = []
        for message, future in in_flight:
            if not future.done() or future.cancelled() or future.exception() is not None:
                failed.append(message)
            else:
                metrics.RECORDS_PRODUCED.labels(self.spec.name, message.topic).inc()
        failed += not_sent
        if failed:
            metrics.KAFKA_SEND_FAILURES.labels(self.spec.name).inc(len(failed))
            self._note_kafka(False, f"{len(failed)} record(s) not acknowledged by Kafka")
        else:
            self._note_kafka(True)
        return failed

    def _count_loss(self, poll: PendingPoll, reason: LossReason) -> None:
        lost = len(poll.undelivered)
        self.dropped_records += lost
        self.dropped_poll_ids.append(poll.poll_id)
        metrics.RECORDS_DROPPED.labels(self.spec.name, reason).inc(lost)
        logger.error(
            "%s: dropped poll %s (%d records): %s",
            self.spec.name,
            poll.poll_id,
            lost,
            "the delivery buffer is full"
            if reason == "buffer_full"
            else "shutdown before delivery",
            extra={"poll_id": poll.poll_id, "dropped_records": lost},
        )

    def _update_buffer_gauge(self) -> None:
        metrics.BUFFER_RECORDS.labels(self.spec.name).set(self.buffer.records)
