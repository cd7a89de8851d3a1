"""The poll -> produce loop: fetch a CoinCap listing, validate it, and deliver it to Kafka.

Both ingestors are this loop with a different ``IngestorSpec`` (endpoint, key field, topic).
Two tasks do the work so that neither waits on the other: the poller fetches on its interval and
queues each poll in the ``DeliveryBuffer``; the sender delivers polls oldest first and keeps what
Kafka did not acknowledge for another try. A slow API delays no delivery, and a broker outage
stops no poll. Nothing is lost silently: invalid records go to the dead-letter topic with the
reason, and a poll dropped from a full buffer is counted, logged with its id and shown in status.

The control service sets what the loop should be doing (``apply_desired_state``): PAUSED and
STOPPED start no poll, so they spend no API credits; STOPPED also delivers what is buffered and
closes the Kafka producer. A poll in flight when the command arrives finishes first.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.ingestor import metrics
from services.ingestor.buffer import DeliveryBuffer, PendingPoll
from services.ingestor.specs import IngestorSpec
from shared.coincap.client import CoinCapClient
from shared.coincap.errors import CoinCapError, QuotaExhausted
from shared.coincap.models import validation_error
from shared.control_state import Desired, DesiredState
from shared.envelope import (
    OutgoingMessage,
    PollContext,
    dead_letter_message,
    record_message,
)
from shared.kafka import create_producer, ensure_topics, pipeline_topics
from shared.settings import Settings

logger = logging.getLogger(__name__)

SECONDS_PER_MONTH = 30 * 24 * 3600
INGESTORS_SHARING_THE_BUDGET = 2
SIMULATOR_POLL_INTERVAL_SECONDS = 5.0
SEND_RETRY_MAX_SECONDS = 5.0
ACKNOWLEDGEMENT_PATIENCE_SECONDS = 5.0
DELIVERY_TIMEOUT_SECONDS = 30.0
PRODUCER_CLOSE_SECONDS = 5.0
LOSS_REASONS = {
    "buffer_full": "the delivery buffer is full",
    "shutdown": "stopped before Kafka acknowledged it",
}


def poll_interval_for_budget(
    monthly_credits: float,
    credits_per_call: float,
    calls_per_poll: int,
    ingestors: int = INGESTORS_SHARING_THE_BUDGET,
) -> float:
    """The shortest interval at which this ingestor's share of the credits lasts the month."""
    credits_per_poll = credits_per_call * max(calls_per_poll, 1)
    polls_per_month = monthly_credits / ingestors / credits_per_poll
    return SECONDS_PER_MONTH / polls_per_month


@dataclass
class IngestorStatus:
    """What ``/healthz`` reports; the control service reads it too."""

    name: str
    endpoint: str
    topic: str
    simulated: bool
    poll_interval_seconds: float
    state: str = "RUNNING"
    """STARTING (desired state not read yet), RUNNING, PAUSED, STOPPED or FAILED."""
    desired_state: str = "RUNNING"
    polls_succeeded: int = 0
    polls_failed: int = 0
    last_poll_id: str | None = None
    last_successful_poll_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    quota_exhausted_until: datetime | None = None
    kafka_connected: bool = False
    buffered_records: int = 0
    dropped_records: int = 0
    dropped_poll_ids: deque[str] = field(default_factory=lambda: deque(maxlen=100))
    """The newest 100 dropped poll ids; the log has every one."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "endpoint": self.endpoint,
            "topic": self.topic,
            "simulated": self.simulated,
            "poll_interval_seconds": self.poll_interval_seconds,
            "state": self.state,
            "desired_state": self.desired_state,
            "polls_succeeded": self.polls_succeeded,
            "polls_failed": self.polls_failed,
            "last_poll_id": self.last_poll_id,
            "last_successful_poll_at": self.last_successful_poll_at,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "quota_exhausted_until": self.quota_exhausted_until,
            "kafka_connected": self.kafka_connected,
            "buffered_records": self.buffered_records,
            "dropped_records": self.dropped_records,
            "dropped_poll_ids": list(self.dropped_poll_ids),
        }


class Ingestor:
    """One ingestor's loop. ``run`` until ``stop``; ``stop`` lets the poll in flight finish and
    gives the sender ``shutdown_flush_seconds`` to deliver what is buffered.

    With ``wait_for_desired_state`` the loop polls nothing until ``apply_desired_state`` has
    told it what to do: an ingestor paused before it restarted must not poll once on the way.
    """

    def __init__(
        self,
        spec: IngestorSpec,
        settings: Settings,
        client: CoinCapClient,
        wait_for_desired_state: bool = False,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.client = client
        self.buffer = DeliveryBuffer(settings.ingest_buffer_max_records)
        self.producer: AIOKafkaProducer | None = None
        self._stopping = asyncio.Event()
        self._explicit_interval = settings.poll_interval_seconds
        self.desired = DesiredState.default(spec.name)
        self._desired_known = asyncio.Event()
        self._control_changed = asyncio.Event()
        self._restart_requested = False
        self._next_poll_at = 0.0
        """``time.monotonic()`` at which the next poll is due."""
        if not wait_for_desired_state:
            self._desired_known.set()
        self.status = IngestorStatus(
            name=spec.name,
            endpoint=spec.endpoint,
            topic=spec.topic,
            simulated=settings.uses_coincap_simulator,
            poll_interval_seconds=self._interval_for(calls_per_poll=1, announce=True),
            state="RUNNING" if not wait_for_desired_state else "STARTING",
        )

    # --- what the control service wants --------------------------------------------------------

    def apply_desired_state(self, desired: DesiredState) -> None:
        """Take a desired state from the control topic (others' states are ignored).

        The first one only sets the state; a restart requested before this process started is
        already done. Later, a higher restart generation restarts the work once.
        """
        if desired.component != self.spec.name:
            return
        first = not self._desired_known.is_set()
        if not first and desired.restart_generation > self.desired.restart_generation:
            self._restart_requested = True
        if desired.state != self.desired.state or first:
            logger.info(
                "%s: desired state %s (requested by %s at %s%s)",
                self.spec.name,
                desired.state,
                desired.requested_by or "nobody: the default",
                desired.requested_at.isoformat() if desired.requested_at else "-",
                f", reason: {desired.reason}" if desired.reason else "",
            )
        self.desired = desired
        self.status.desired_state = desired.state
        self._desired_known.set()
        self._control_changed.set()

    # --- the interval ------------------------------------------------------------------------

    def _interval_for(self, calls_per_poll: int, announce: bool) -> float:
        settings = self.settings
        budget_interval = poll_interval_for_budget(
            settings.coincap_monthly_credits, settings.coincap_credits_per_call, calls_per_poll
        )
        budget = (
            f"{settings.coincap_monthly_credits} credits a month shared by "
            f"{INGESTORS_SHARING_THE_BUDGET} ingestors, {calls_per_poll} call(s) per poll"
        )
        if self._explicit_interval is not None:
            interval = self._explicit_interval
            if not settings.uses_coincap_simulator and interval < budget_interval:
                logger.warning(
                    "COINSTREAM_POLL_INTERVAL_SECONDS=%g overruns the credit budget (%s): "
                    "the budget lasts at one poll every %.0f s",
                    interval,
                    budget,
                    budget_interval,
                )
            reason = "COINSTREAM_POLL_INTERVAL_SECONDS"
        elif settings.uses_coincap_simulator:
            interval, reason = SIMULATOR_POLL_INTERVAL_SECONDS, "the simulator spends no credits"
        else:
            interval, reason = budget_interval, f"credit budget: {budget}"
        metrics.POLL_INTERVAL.labels(self.spec.name).set(interval)
        if announce:
            logger.info(
                "%s polls /%s every %.1f s (%s), into topic %s%s",
                self.spec.name,
                self.spec.endpoint,
                interval,
                reason,
                self.spec.topic,
                "; data is SIMULATED" if settings.uses_coincap_simulator else "",
            )
        return interval

    # --- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        sender = asyncio.create_task(self._deliver_forever(), name=f"{self.spec.name}-sender")
        try:
            await self._poll_until_stopped()
            await self._flush_before_exit()
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            await self._close_producer()

    async def _poll_until_stopped(self) -> None:
        """The poll loop, kept alive: a bug that ends it is reported as FAILED (in ``/healthz``
        and so in the control service) until a restart command or shutdown."""
        while not self._stopping.is_set():
            try:
                await self._poll_while_wanted()
            except Exception as error:
                logger.exception("%s: the poll loop failed", self.spec.name)
                self.status.state = "FAILED"
                self.status.last_error = f"the poll loop failed: {type(error).__name__}: {error}"
                self.status.last_error_at = datetime.now(UTC)
                while not self._stopping.is_set() and not self._restart_requested:
                    await self._wait_for_change(None)

    async def _close_producer(self) -> None:
        if self.producer is None:
            return
        producer, self.producer = self.producer, None
        # stop() flushes, which waits for a broker that may never come back.
        try:
            await asyncio.wait_for(producer.stop(), PRODUCER_CLOSE_SECONDS)
        except TimeoutError:
            logger.error("%s: Kafka producer did not close in time", self.spec.name)

    async def stop(self) -> None:
        self._stopping.set()

    async def _poll_while_wanted(self) -> None:
        if not self._desired_known.is_set():
            logger.info(
                "%s: reading its desired state from %s before the first poll",
                self.spec.name,
                self.settings.topic_control,
            )
            # apply_desired_state sets _control_changed too, which ends each wait.
            while not self._desired_known.is_set() and not self._stopping.is_set():
                await self._wait_for_change(None)
        while not self._stopping.is_set():
            # Cleared before looking, so a command that lands while we act wakes the next wait.
            self._control_changed.clear()
            if self._restart_requested:
                await self._restart()
            wanted = self.desired.state
            if wanted is not Desired.RUNNING:
                await self._hold(wanted)
                continue
            self.status.state = "RUNNING"
            pause = self._quota_pause_remaining()
            if pause > 0:
                await self._wait_for_change(pause)
                continue
            due_in = self._next_poll_at - time.monotonic()
            if due_in > 0:
                # Resuming early waits out the interval: pause/resume cannot overspend credits.
                await self._wait_for_change(due_in)
                continue
            await self.poll_once()
            self._next_poll_at = time.monotonic() + self.status.poll_interval_seconds

    async def _hold(self, wanted: Desired) -> None:
        """PAUSED or STOPPED: poll nothing until the desired state changes or we shut down."""
        if self.status.state != wanted:
            logger.info(
                "%s: %s; no polls until %s",
                self.spec.name,
                wanted.lower(),
                "resumed" if wanted is Desired.PAUSED else "started",
            )
        self.status.state = wanted
        if wanted is Desired.STOPPED:
            await self._release_kafka()
        await self._wait_for_change(None)

    async def _release_kafka(self) -> None:
        """Deliver what is buffered, then close the producer (STOPPED holds no connection)."""
        if self.producer is None and self.buffer.records == 0:
            return
        flushed = asyncio.create_task(self.buffer.wait_until_empty())
        await self._wait_for_change(self.settings.shutdown_flush_seconds, also=flushed)
        if not flushed.done():
            # Interrupted by a command, or Kafka is away: the sender keeps trying to deliver
            # what it holds, and the producer stays open until then.
            flushed.cancel()
            return
        await self._close_producer()
        self.status.kafka_connected = False

    async def _restart(self) -> None:
        """A restart command: a fresh Kafka producer, no quota pause, and a poll at once."""
        self._restart_requested = False
        logger.info("%s: restarting (requested by %s)", self.spec.name, self.desired.requested_by)
        await self._close_producer()
        self.status.quota_exhausted_until = None
        metrics.COINCAP_QUOTA_EXHAUSTED.labels(self.spec.name).set(0)
        self._next_poll_at = 0.0

    async def _wait_for_change(
        self, seconds: float | None, also: asyncio.Future[Any] | None = None
    ) -> None:
        """Wait ``seconds`` (None: without end) or less: until shutdown, a control command, or
        ``also`` completes."""
        waits = [
            asyncio.ensure_future(self._stopping.wait()),
            asyncio.ensure_future(self._control_changed.wait()),
        ]
        try:
            await asyncio.wait(
                [*waits, *([also] if also is not None else [])],
                timeout=seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for wait in waits:
                wait.cancel()

    def _quota_pause_remaining(self) -> float:
        until = self.status.quota_exhausted_until
        if until is None:
            return 0.0
        remaining = (until - datetime.now(UTC)).total_seconds()
        if remaining <= 0:
            logger.info("%s: quota pause over; trying CoinCap again", self.spec.name)
            self.status.quota_exhausted_until = None
            metrics.COINCAP_QUOTA_EXHAUSTED.labels(self.spec.name).set(0)
            return 0.0
        return remaining

    # --- one poll ----------------------------------------------------------------------------

    async def poll_once(self) -> PendingPoll | None:
        """Fetch the whole listing and queue it for delivery; None when the fetch failed."""
        poll_id = uuid.uuid4().hex
        self.status.last_poll_id = poll_id
        try:
            result = await self.client.fetch_all(self.spec.endpoint)
        except QuotaExhausted as error:
            self._record_failure(poll_id, "quota_exhausted", error)
            pause = error.retry_after_seconds or self.settings.quota_pause_seconds
            self.status.quota_exhausted_until = datetime.fromtimestamp(time.time() + pause, UTC)
            metrics.COINCAP_QUOTA_EXHAUSTED.labels(self.spec.name).set(1)
            logger.error(
                "%s: CoinCap quota exhausted; polling paused for %.0f s (until %s)",
                self.spec.name,
                pause,
                self.status.quota_exhausted_until.isoformat(),
            )
            return None
        except CoinCapError as error:
            self._record_failure(poll_id, type(error).__name__, error)
            logger.error("%s: poll %s failed: %s", self.spec.name, poll_id, error)
            return None

        fetched_at_ms = int(time.time() * 1000)
        metrics.COINCAP_CREDITS_USED.labels(self.spec.name).inc(
            result.requests * self.settings.coincap_credits_per_call
        )
        if self._explicit_interval is None and result.requests > 1:
            interval = self._interval_for(result.requests, announce=False)
            if not math.isclose(interval, self.status.poll_interval_seconds):
                logger.info(
                    "%s: a poll takes %d calls; interval now %.1f s",
                    self.spec.name,
                    result.requests,
                    interval,
                )
                self.status.poll_interval_seconds = interval

        context = PollContext(
            poll_id=poll_id,
            endpoint=self.spec.endpoint,
            source="coincap-simulator" if self.settings.uses_coincap_simulator else "coincap",
            source_timestamp_ms=result.timestamp_ms,
            fetched_at_ms=fetched_at_ms,
        )
        messages = self._messages_for(context, result.records)
        poll = PendingPoll(poll_id, messages)
        dropped = await self.buffer.add(poll)
        for lost in dropped:
            self._count_loss(lost, "buffer_full")
        self._update_buffer_gauge()

        self.status.polls_succeeded += 1
        self.status.last_successful_poll_at = datetime.fromtimestamp(fetched_at_ms / 1000, UTC)
        metrics.POLLS.labels(self.spec.name, "ok").inc()
        metrics.LAST_SUCCESSFUL_POLL.labels(self.spec.name).set(fetched_at_ms / 1000)
        logger.info(
            "%s: poll %s fetched %d records in %d call(s)",
            self.spec.name,
            poll_id,
            len(result.records),
            result.requests,
            extra={"poll_id": poll_id},
        )
        return poll

    def _messages_for(self, context: PollContext, records: list[Any]) -> list[OutgoingMessage]:
        messages = []
        seen_keys: set[str] = set()
        for record in records:
            raw_key = record.get(self.spec.key_field) if isinstance(record, dict) else None
            key = raw_key if isinstance(raw_key, str) and raw_key.strip() else None
            reason = validation_error(self.spec.endpoint, record)
            if reason is None and key is not None and key in seen_keys:
                # Offset paging can return a record twice when ranks move between pages.
                reason = f"duplicate {self.spec.key_field} {key!r} within one poll"
            if reason is None and key is not None:
                seen_keys.add(key)
                messages.append(record_message(context, self.spec.topic, key, record))
            else:
                metrics.RECORDS_DEAD_LETTERED.labels(self.spec.name).inc()
                logger.warning(
                    "%s: record dead-lettered: %s",
                    self.spec.name,
                    reason,
                    extra={"poll_id": context.poll_id, "record_key": key},
                )
                messages.append(
                    dead_letter_message(
                        context,
                        self.settings.topic_deadletter,
                        key,
                        record,
                        reason or f"missing {self.spec.key_field}",
                    )
                )
        return messages

    def _record_failure(self, poll_id: str, outcome: str, error: Exception) -> None:
        self.status.polls_failed += 1
        self.status.last_error = str(error)
        self.status.last_error_at = datetime.now(UTC)
        metrics.POLLS.labels(self.spec.name, outcome).inc()

    # --- delivery ----------------------------------------------------------------------------

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
        if connected != self.status.kafka_connected:
            if connected:
                logger.info("%s: Kafka reachable; delivering", self.spec.name)
            else:
                logger.error(
                    "%s: %s; buffering (%d records held)",
                    self.spec.name,
                    problem,
                    self.buffer.records,
                )
        self.status.kafka_connected = connected

    async def _deliver_forever(self) -> None:
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
                await self._close_producer()
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

    async def _flush_before_exit(self) -> None:
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

    def _count_loss(self, poll: PendingPoll, reason: str) -> None:
        lost = len(poll.undelivered)
        self.status.dropped_records += lost
        self.status.dropped_poll_ids.append(poll.poll_id)
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
        self.status.buffered_records = self.buffer.records
        metrics.BUFFER_RECORDS.labels(self.spec.name).set(self.buffer.records)
