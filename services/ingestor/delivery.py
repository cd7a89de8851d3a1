"""Delivery of fetched polls to Kafka: the buffer, the producer session, the pipeline.

The poller queues each poll here and goes on polling; ``deliver_forever`` hands the polls to an
idempotent producer oldest first, up to ``COINSTREAM_INGEST_MAX_POLLS_IN_FLIGHT`` of them before
the oldest is acknowledged, so ingest is not bound by one broker round trip per poll. Order per
key holds because every snapshot of a key goes to one partition, the producer keeps a
partition's records in order and retries them itself within its session, and a record handed
back by a session is sent again before anything newer (see ``session``).

The producer is kept for as long as it makes progress, through broker outages and restarts:
its own retries write each record once. It is replaced only when a send fails for good (after
the others have their answer, so nothing is sent twice), on a restart command, or when Kafka
answers metadata requests yet leaves records unanswered for ``STALL_SECONDS``; then what it had
not got acknowledged is sent again, and may reach Kafka twice (counted in
``coinstream_records_resent_total``; the warehouse stores such a record once).

Every poll is also written to a durable spool on local disk (``spool_writer``) before it counts
as fetched, and removed from it once the buffer lets it go; a stopped or killed ingestor
delivers what its spool holds first when it starts again.

Nothing is lost silently: a poll dropped from a full buffer or spool, a record not sent again
because a newer snapshot of its key is stored, or records neither acknowledged nor spooled when
the ingestor exits, are counted, logged with the poll id and shown in ``/healthz``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError

from services.ingestor import metrics
from services.ingestor.buffer import DeliveryBuffer, Dropped, PendingPoll
from services.ingestor.session import ProducerSession, hold_leaderless_batches
from services.ingestor.specs import IngestorSpec
from services.ingestor.spool_writer import SpoolWriter
from shared.envelope import OutgoingMessage
from shared.kafka import create_producer, ensure_topics, kafka_answers, pipeline_topics
from shared.settings import IngestorSettings

logger = logging.getLogger(__name__)

SEND_RETRY_FIRST_SECONDS = 0.5
SEND_RETRY_MAX_SECONDS = 5.0
ACKNOWLEDGEMENT_PATIENCE_SECONDS = 5.0
"""No answer from Kafka for this long while records wait: report Kafka as unreachable."""
STALL_SECONDS = 30.0
"""No answer for this long while the broker answers metadata requests: replace the producer."""
BROKER_CHECK_SECONDS = 5.0
"""While records wait for an answer, how often to ask whether the broker answers at all."""
WATCH_INTERVAL_SECONDS = 1.0
PRODUCER_CLOSE_SECONDS = 5.0
DROPPED_POLL_IDS_KEPT = 100

LossReason = Literal["buffer_full", "spool_full", "shutdown", "superseded"]
"""Why records were dropped: the buffer overflowed its records or its (spool's) bytes; the
ingestor exited before Kafka acknowledged them and they were not in the spool; or a newer
snapshot of their key was already stored when they had to be sent again, so sending them would
have put them after it."""

LOSS_DESCRIPTIONS: dict[LossReason, str] = {
    "buffer_full": "the delivery buffer is full",
    "spool_full": "the spool is full (COINSTREAM_INGEST_SPOOL_MAX_BYTES)",
    "shutdown": "shutdown before Kafka acknowledged it, and not in the spool",
    "superseded": "a newer snapshot of the same key was already in Kafka",
}


class KafkaDelivery:
    """One ingestor's way into Kafka. ``deliver_forever`` runs beside the poller until it is
    cancelled; a producer session is started when the broker answers and kept while it works."""

    def __init__(self, spec: IngestorSpec, settings: IngestorSettings) -> None:
        self.spec = spec
        self.settings = settings
        self.buffer = DeliveryBuffer(
            settings.ingest_buffer_max_records,
            settings.ingest_spool_max_bytes,
            on_release=self._released,
        )
        self.spool = SpoolWriter(
            spec.name, settings.ingest_spool_directory / f"{spec.name}.sqlite3"
        )
        self.max_polls_in_flight = settings.ingest_max_polls_in_flight
        self.session: ProducerSession | None = None
        self.kafka_connected = False
        self.dropped_records = 0
        self.dropped_poll_ids: deque[str] = deque(maxlen=DROPPED_POLL_IDS_KEPT)
        """The newest dropped poll ids; the log has every one."""
        self._session_lock = asyncio.Lock()
        """Held while a session hands records over, starts or ends: never two at once."""
        self._broker_checked_at = 0.0
        self._broker_answering_since: float | None = None
        """Since when the broker has answered while this session's records wait, if it has."""
        metrics.BUFFER_RECORDS.labels(spec.name).set_function(lambda: self.buffer.records)

    @property
    def producer(self) -> AIOKafkaProducer | None:
        """The current session's producer, if there is one."""
        return self.session.producer if self.session is not None else None

    async def queue(self, poll: PendingPoll) -> None:
        """Hand a poll over for delivery, dropping (and counting) the oldest waiting ones if the
        buffer overflows; return once the spool holds it (or could not take it: logged)."""
        self._queue_recovered(self.spool.open_or_go_without())
        dropped = self.buffer.add(poll)
        self._count_overflow(dropped)
        if all(each.poll is not poll for each in dropped):
            await self.spool.write(add=poll)

    async def deliver_forever(self) -> None:
        """Hand the buffered polls to the producer in order, retrying with backoff while Kafka
        is away; beside it, watch Kafka's answers (the sender may wait inside a send) and
        remove from the spool what Kafka has."""
        self._queue_recovered(self.spool.open_or_go_without())
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._hand_over_forever())
            tasks.create_task(self._watch_answers_forever())
            tasks.create_task(self.spool.trim_forever())

    def open_spool(self) -> None:
        """Open the spool and queue the polls an earlier run left in it ahead of anything newly
        fetched (``SpoolWriter.open``: raises ``SpoolInUse`` when another process holds it)."""
        self._queue_recovered(self.spool.open())

    async def close_spool(self) -> None:
        """Write the removals due and close the spool; the last thing a delivery does."""
        await self.spool.close()

    def _queue_recovered(self, polls: list[PendingPoll]) -> None:
        for poll in polls:
            self._count_overflow(self.buffer.add(poll))

    def _released(self, poll: PendingPoll) -> None:
        """The buffer let a delivered poll go: the spool forgets it with its next write."""
        self.spool.forget(poll.poll_id)

    def _count_overflow(self, dropped: list[Dropped]) -> None:
        for poll, reason in dropped:
            self._count_loss(poll.poll_id, poll.waiting_records, reason)
            self.spool.forget(poll.poll_id)

    async def _hand_over_forever(self) -> None:
        retry_seconds = SEND_RETRY_FIRST_SECONDS
        while True:
            poll = await self._next_poll()
            async with self._session_lock:
                if poll is not self.buffer.next_to_hand_over():
                    continue  # a session ended meanwhile and handed records back
                session = await self._session()
                if session is not None:
                    try:
                        await session.hand_over(poll)
                    except KafkaError as error:
                        # A timeout means the producer's batch stayed full (the broker is away):
                        # what it holds it still retries. Any other error leaves it unusable.
                        session.failed |= not isinstance(error, KafkaTimeoutError)
                        metrics.KAFKA_SEND_FAILURES.labels(self.spec.name).inc()
                        self._note_kafka(False, f"Kafka did not take a record: {error!r}")
                    else:
                        retry_seconds = SEND_RETRY_FIRST_SECONDS
                        continue
            await asyncio.sleep(retry_seconds)
            retry_seconds = min(retry_seconds * 2, SEND_RETRY_MAX_SECONDS)

    async def flush_before_exit(self) -> None:
        """Wait up to ``shutdown_flush_seconds`` for ``deliver_forever`` to deliver everything
        buffered and in flight; what is left stays in the spool, and is counted as lost only
        where the spool does not hold it."""
        timeout = self.settings.shutdown_flush_seconds
        try:
            async with asyncio.timeout(timeout):
                await self.buffer.wait_until_empty()
        except TimeoutError:
            await self._end_session(patience_seconds=0)
            left = self.buffer.take_all()
            kept = [poll for poll in left if poll.spooled]
            lost = [poll for poll in left if not poll.spooled]
            for poll in lost:
                self._count_loss(poll.poll_id, poll.waiting_records, "shutdown")
            if kept:
                logger.warning(
                    "%s: stopped with %d poll(s) (%d records) Kafka has not acknowledged "
                    "within %.0f s; the spool %s keeps them for the next start",
                    self.spec.name,
                    len(kept),
                    sum(poll.waiting_records for poll in kept),
                    timeout,
                    self.spool.path,
                )
            if lost:
                logger.error(
                    "%s: stopped with %d poll(s) Kafka never acknowledged within %.0f s",
                    self.spec.name,
                    len(lost),
                    timeout,
                )

    async def close_producer(self) -> None:
        """End the producer session, if there is one; the next send starts a fresh one. Records
        it holds get ``PRODUCER_CLOSE_SECONDS`` to be acknowledged, then are sent again."""
        await self._end_session(PRODUCER_CLOSE_SECONDS)

    async def disconnect(self) -> None:
        """Close the producer and hold no connection until there is something to deliver."""
        await self.close_producer()
        self.kafka_connected = False

    async def _next_poll(self) -> PendingPoll:
        """The poll to hand over next, once there is room in flight for it; meanwhile, end a
        session that failed once every record it holds has its answer."""
        while True:
            session = self.session
            if session is not None and session.failed and session.unanswered == 0:
                await self._end_session(PRODUCER_CLOSE_SECONDS)
                continue
            poll = self.buffer.next_to_hand_over()
            if poll is not None and self._may_hand_over(poll, session):
                return poll
            await self.buffer.wait_for_change()

    def _may_hand_over(self, poll: PendingPoll, session: ProducerSession | None) -> bool:
        """Not into a failed session; and a poll not started yet only if there is room."""
        if session is not None and session.failed:
            return False
        return poll.started or self.buffer.polls_in_flight < self.max_polls_in_flight

    async def _watch_answers_forever(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_SECONDS)
            await self._watch_answers()

    async def _watch_answers(self) -> None:
        """Report Kafka as away while records go unanswered; replace a producer that stalls
        although the broker answers (what it holds is sent again, and may be stored twice)."""
        session = self.session
        if session is None or session.unanswered == 0:
            return
        now = time.monotonic()
        quiet = now - session.waiting_since
        if quiet >= ACKNOWLEDGEMENT_PATIENCE_SECONDS:
            self._note_kafka(
                False, f"Kafka has not answered for {session.unanswered} record(s) in {quiet:.0f} s"
            )
        if quiet < ACKNOWLEDGEMENT_PATIENCE_SECONDS:
            self._broker_answering_since = None
            return
        if now - self._broker_checked_at >= BROKER_CHECK_SECONDS:
            # The stall clock starts when the broker answers, not when the records began to
            # wait: after an outage the producer needs a moment to resume, and must get it.
            self._broker_checked_at = now
            if not await kafka_answers(self.settings):
                self._broker_answering_since = None
            elif self._broker_answering_since is None:
                self._broker_answering_since = now
        answering = self._broker_answering_since
        if answering is None or now - max(answering, session.waiting_since) < STALL_SECONDS:
            return
        logger.error(
            "%s: Kafka answers but has not acknowledged %d record(s) in %.0f s; replacing "
            "the Kafka producer",
            self.spec.name,
            session.unanswered,
            now - max(answering, session.waiting_since),
        )
        self._broker_answering_since = None
        await self._end_session(patience_seconds=0)

    async def _session(self) -> ProducerSession | None:
        """The producer session, starting one (and creating topics) when the broker answers."""
        if self.session is not None:
            return self.session
        producer = create_producer(self.settings, client_id=self.spec.name)
        hold_leaderless_batches(producer)
        try:
            await producer.start()
            await ensure_topics(self.settings, pipeline_topics(self.settings))
        except (KafkaError, OSError) as error:
            await producer.stop()
            self._note_kafka(False, f"Kafka unreachable: {error}")
            return None
        self.session = ProducerSession(producer, self.buffer, self._acknowledged)
        self._note_kafka(True)
        return self.session

    async def _end_session(self, patience_seconds: float) -> None:
        """Close the session (``ProducerSession.close``) and account for what it handed back."""
        async with self._session_lock:
            session, self.session = self.session, None
            if session is None:
                return
            held = [(poll, len(poll.undelivered)) for poll in self.buffer.started_polls()]
            settlement = await session.close(patience_seconds)
        # What Kafka acknowledged or a newer snapshot superseded is no longer owed: the spool
        # keeps only the rest, so a restart sends neither again.
        for poll, before in held:
            if len(poll.undelivered) != before:
                self.spool.rewrite(poll.poll_id, list(poll.undelivered))
        await self.spool.write()
        if settlement.refused:
            metrics.KAFKA_SEND_FAILURES.labels(self.spec.name).inc(settlement.refused)
        if settlement.resent:
            metrics.RECORDS_RESENT.labels(self.spec.name).inc(settlement.resent)
            logger.warning(
                "%s: %d record(s) unanswered when the producer was replaced are sent again; "
                "those Kafka had stored are stored twice (the warehouse keeps one)",
                self.spec.name,
                settlement.resent,
            )
        for poll_id, superseded in settlement.superseded.items():
            self._count_loss(poll_id, len(superseded), "superseded")

    def _acknowledged(self, message: OutgoingMessage) -> None:
        metrics.RECORDS_PRODUCED.labels(self.spec.name, message.topic).inc()
        self._note_kafka(True)

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

    def _count_loss(self, poll_id: str, records: int, reason: LossReason) -> None:
        self.dropped_records += records
        self.dropped_poll_ids.append(poll_id)
        metrics.RECORDS_DROPPED.labels(self.spec.name, reason).inc(records)
        logger.error(
            "%s: dropped poll %s (%d records): %s",
            self.spec.name,
            poll_id,
            records,
            LOSS_DESCRIPTIONS[reason],
            extra={"poll_id": poll_id, "dropped_records": records},
        )
