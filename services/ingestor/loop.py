"""The poll -> produce loop: fetch a CoinCap listing, validate it, and hand it to delivery.

Both ingestors are this loop with a different ``IngestorSpec`` (endpoint, key field, topic).
The loop obeys the control topic and polls when its ``PollSchedule`` says a poll is due; it
queues each poll with ``KafkaDelivery``, whose sender runs beside it, so a slow API delays no
delivery and a broker outage stops no poll. Invalid records go to the dead-letter topic with
the reason, and so does a record that cannot be a Kafka message as received (too large for
Kafka, text UTF-8 cannot hold): no record can fail a poll or stop the ones behind it.

Nothing stops the loop either. An unexpected error (a bug, or an input no check foresaw) is
logged with its type and traceback, counted (``coinstream_ingest_loop_failures_total``) and
shown as FAILED in ``/healthz``; the loop tries again by itself after a pause that grows while
the errors go on (tenacity's jittered exponential wait), never sooner than the poll interval.

The control service sets what the loop should be doing (``apply_desired_state``): PAUSED and
STOPPED start no poll, so they spend no API credits; STOPPED also delivers what is buffered and
closes the Kafka producer. A poll in flight when the command arrives finishes first.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from tenacity.wait import wait_exponential_jitter

from services.ingestor import metrics
from services.ingestor.buffer import PendingPoll
from services.ingestor.delivery import KafkaDelivery
from services.ingestor.schedule import PollSchedule
from services.ingestor.specs import IngestorSpec
from shared.coincap.client import CoinCapClient
from shared.coincap.errors import CoinCapError, QuotaExhausted
from shared.coincap.models import validation_error
from shared.control_state import Desired, DesiredState, restart_requested
from shared.envelope import (
    DEAD_LETTER_KEY_CHARS,
    OutgoingMessage,
    PollContext,
    dead_letter_message,
    record_or_dead_letter,
)
from shared.log_summary import MinuteSummary, SummaryWindow
from shared.settings import IngestorSettings

logger = logging.getLogger(__name__)

LOOP_RETRY_FIRST_PAUSE_SECONDS = 1.0
"""The pause after the poll loop's first unexpected error; each further one in a row doubles it."""
LOOP_RETRY_MAX_PAUSE_SECONDS = 300.0
"""The longest pause between tries of a failing poll loop: a fault that clears is noticed within
five minutes, and a lasting one costs one try (and its log line) per five minutes."""


class Ingestor:
    """One ingestor's loop. ``run`` until ``stop``; ``stop`` lets the poll in flight finish and
    gives the sender ``shutdown_flush_seconds`` to deliver what is buffered.

    With ``wait_for_desired_state`` the loop polls nothing until ``apply_desired_state`` has
    told it what to do: an ingestor paused before it restarted must not poll once on the way.
    """

    def __init__(
        self,
        spec: IngestorSpec,
        settings: IngestorSettings,
        client: CoinCapClient,
        wait_for_desired_state: bool = False,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.client = client
        self.delivery = KafkaDelivery(spec, settings)
        self.schedule = PollSchedule(spec, settings)
        self.desired = DesiredState.default(spec.name)
        self.state = "STARTING" if wait_for_desired_state else "RUNNING"
        """STARTING (desired state not read yet), RUNNING, PAUSED, STOPPED or FAILED."""
        self.polls_succeeded = 0
        self.polls_failed = 0
        self.poll_summary = MinuteSummary(logger, self._describe_polls)
        """The first poll's line at INFO, the rest at DEBUG, one INFO line a minute."""
        self.last_poll_id: str | None = None
        self.last_successful_poll_at: datetime | None = None
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self._stopping = asyncio.Event()
        self._desired_known = asyncio.Event()
        self._control_changed = asyncio.Event()
        self._restart_requested = False
        self._failure_pause = wait_exponential_jitter(
            multiplier=LOOP_RETRY_FIRST_PAUSE_SECONDS,
            max=LOOP_RETRY_MAX_PAUSE_SECONDS,
            jitter=LOOP_RETRY_FIRST_PAUSE_SECONDS,
        )
        if not wait_for_desired_state:
            self._desired_known.set()

    # --- what the control service wants --------------------------------------------------------

    def apply_desired_state(self, desired: DesiredState) -> None:
        """Take a desired state from the control topic (others' states are ignored).

        The first one only sets the state; a restart requested before this process started is
        already done. Later, a new restart generation restarts the work once.
        """
        if desired.component != self.spec.name:
            return
        first = not self._desired_known.is_set()
        if not first and restart_requested(self.desired.restart_generation, desired):
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
        self._desired_known.set()
        self._control_changed.set()

    # --- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        sender = asyncio.create_task(
            self.delivery.deliver_forever(), name=f"{self.spec.name}-sender"
        )
        try:
            await self._poll_until_stopped()
            await self.delivery.flush_before_exit()
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            await self.delivery.close_producer()
            await self.delivery.close_spool()

    async def stop(self) -> None:
        self._stopping.set()

    async def _poll_until_stopped(self) -> None:
        """The poll loop, kept alive. An unexpected error is reported as FAILED (in ``/healthz``
        and so in the control service) and retried after a growing pause, which a control
        command or shutdown ends at once; each poll made starts the count of errors again."""
        while not self._stopping.is_set():
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(Exception),
                wait=self._failure_pause,
                before_sleep=self._report_loop_failure,
                sleep=self._pause_after_failure,
                reraise=True,
            )
            await retrying(self._poll_when_wanted)

    def _report_loop_failure(self, retry_state: RetryCallState) -> None:
        """Before the pause: log the error with its type and traceback, count it, show FAILED."""
        error = retry_state.outcome.exception() if retry_state.outcome is not None else None
        error_type = type(error).__name__
        pause = retry_state.upcoming_sleep
        logger.error(
            "%s: the poll loop failed (%s: %s), %d time(s) in a row; trying again in %.1f s",
            self.spec.name,
            error_type,
            error,
            retry_state.attempt_number,
            pause,
            exc_info=error,
        )
        metrics.POLL_LOOP_FAILURES.labels(self.spec.name, error_type).inc()
        self.state = "FAILED"
        self.last_error = (
            f"the poll loop failed: {error_type}: {error}; trying again by itself in {pause:.0f} s"
        )
        self.last_error_at = datetime.now(UTC)

    async def _pause_after_failure(self, seconds: float) -> None:
        """The pause before the next try; a control command or shutdown ends it at once."""
        await self._wait_for_change(seconds)

    async def _poll_when_wanted(self) -> None:
        """Follow the desired state and the schedule until one poll has been made (then return,
        so a failure after it starts its pauses from the first again), or until shutdown."""
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
            if self.state != "FAILED":  # FAILED until a poll goes through again
                self.state = "RUNNING"
            pause = self.schedule.quota_pause_remaining()
            if pause > 0:
                await self._wait_for_change(pause)
                continue
            due_in = self.schedule.seconds_until_due()
            if due_in > 0:
                # Resuming early waits out the interval: pause/resume cannot overspend credits.
                await self._wait_for_change(due_in)
                continue
            try:
                await self.poll_once()
            finally:
                # Even after an error: a failing poll is tried again no sooner than the interval,
                # so it spends no more credits than one that works.
                self.schedule.start_interval()
            self.state = "RUNNING"
            return

    async def _hold(self, wanted: Desired) -> None:
        """PAUSED or STOPPED: poll nothing until the desired state changes or we shut down."""
        if self.state != wanted:
            logger.info(
                "%s: %s; no polls until %s",
                self.spec.name,
                wanted.lower(),
                "resumed" if wanted is Desired.PAUSED else "started",
            )
        self.state = wanted
        if wanted is Desired.STOPPED:
            await self._release_kafka()
        await self._wait_for_change(None)

    async def _release_kafka(self) -> None:
        """Deliver what is buffered, then close the producer (STOPPED holds no connection)."""
        delivery = self.delivery
        if delivery.producer is None and delivery.buffer.records == 0:
            return
        flushed = asyncio.create_task(delivery.buffer.wait_until_empty())
        await self._wait_for_change(self.settings.shutdown_flush_seconds, also=flushed)
        if not flushed.done():
            # Interrupted by a command, or Kafka is away: the sender keeps trying to deliver
            # what it holds, and the producer stays open until then.
            flushed.cancel()
            return
        await delivery.disconnect()

    async def _restart(self) -> None:
        """A restart command: a fresh Kafka producer, no quota pause, and a poll at once."""
        self._restart_requested = False
        logger.info("%s: restarting (requested by %s)", self.spec.name, self.desired.requested_by)
        await self.delivery.close_producer()
        self.schedule.restart()

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

    # --- one poll ----------------------------------------------------------------------------

    async def poll_once(self) -> PendingPoll | None:
        """Fetch the whole listing and queue it for delivery; None when the fetch failed."""
        poll_id = uuid.uuid4().hex
        self.last_poll_id = poll_id
        try:
            result = await self.client.fetch_all(self.spec.endpoint)
        except QuotaExhausted as error:
            self._record_failure("quota_exhausted", error)
            self.schedule.pause_for_quota(error.retry_after_seconds)
            return None
        except CoinCapError as error:
            self._record_failure(type(error).__name__, error)
            logger.error("%s: poll %s failed: %s", self.spec.name, poll_id, error)
            return None

        fetched_at_ms = int(time.time() * 1000)
        metrics.COINCAP_CREDITS_USED.labels(self.spec.name).inc(
            result.requests * self.settings.coincap_credits_per_call
        )
        self.schedule.fit_to_calls_per_poll(result.requests)

        context = PollContext(
            poll_id=poll_id,
            endpoint=self.spec.endpoint,
            source="coincap-simulator" if self.settings.uses_coincap_simulator else "coincap",
            source_timestamp_ms=result.timestamp_ms,
            fetched_at_ms=fetched_at_ms,
        )
        poll = PendingPoll(poll_id, self._messages_for(context, result.records))
        await self.delivery.queue(poll)

        self.polls_succeeded += 1
        self.last_successful_poll_at = datetime.fromtimestamp(fetched_at_ms / 1000, UTC)
        metrics.POLLS.labels(self.spec.name, "ok").inc()
        metrics.LAST_SUCCESSFUL_POLL.labels(self.spec.name).set(fetched_at_ms / 1000)
        logger.log(
            self.poll_summary.line_level(),
            "%s: poll %s fetched %d records in %d call(s)",
            self.spec.name,
            poll_id,
            len(result.records),
            result.requests,
            # What the poll was (the snapshot's time, its size) for tracing it to the warehouse.
            extra={
                "poll_id": poll_id,
                "source_timestamp_ms": result.timestamp_ms,
                "records": len(result.records),
            },
        )
        self.poll_summary.add({"records": len(result.records)})
        return poll

    def _describe_polls(self, window: SummaryWindow) -> str:
        return (
            f"{self.spec.name}: {window.events} poll(s) in the last {window.seconds:.0f} s, "
            f"{window.totals['records']} records fetched; {self.polls_failed} failed since start"
        )

    def _messages_for(self, context: PollContext, records: list[Any]) -> list[OutgoingMessage]:
        """One message per record: its data message, or its dead letter with the reason. Never
        raises: what decides and what encodes are written never to (``validation_error``,
        ``shared.envelope``)."""
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
                message, reason = record_or_dead_letter(
                    context, self.spec.topic, self.settings.topic_deadletter, key, record
                )
                if reason is None:
                    seen_keys.add(key)
            else:
                reason = reason or f"missing {self.spec.key_field}"
                message = dead_letter_message(
                    context, self.settings.topic_deadletter, key, record, reason
                )
            if reason is not None:
                metrics.RECORDS_DEAD_LETTERED.labels(self.spec.name).inc()
                logger.warning(
                    "%s: record dead-lettered: %s",
                    self.spec.name,
                    reason,
                    extra={
                        "poll_id": context.poll_id,
                        "record_key": key[:DEAD_LETTER_KEY_CHARS] if key else None,
                    },
                )
            messages.append(message)
        return messages

    def _record_failure(self, outcome: str, error: Exception) -> None:
        self.polls_failed += 1
        self.last_error = str(error)
        self.last_error_at = datetime.now(UTC)
        metrics.POLLS.labels(self.spec.name, outcome).inc()
