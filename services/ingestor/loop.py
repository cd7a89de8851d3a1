"""The poll -> produce loop: fetch a CoinCap listing, validate it, and hand it to delivery.

Both ingestors are this loop with a different ``IngestorSpec`` (endpoint, key field, topic).
The loop obeys the control topic and polls when its ``PollSchedule`` says a poll is due; it
queues each poll with ``KafkaDelivery``, whose sender runs beside it, so a slow API delays no
delivery and a broker outage stops no poll. Invalid records go to the dead-letter topic with
the reason.

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
    OutgoingMessage,
    PollContext,
    dead_letter_message,
    record_message,
)
from shared.settings import Settings

logger = logging.getLogger(__name__)


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
        self.delivery = KafkaDelivery(spec, settings)
        self.schedule = PollSchedule(spec, settings)
        self.desired = DesiredState.default(spec.name)
        self.state = "STARTING" if wait_for_desired_state else "RUNNING"
        """STARTING (desired state not read yet), RUNNING, PAUSED, STOPPED or FAILED."""
        self.polls_succeeded = 0
        self.polls_failed = 0
        self.last_poll_id: str | None = None
        self.last_successful_poll_at: datetime | None = None
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self._stopping = asyncio.Event()
        self._desired_known = asyncio.Event()
        self._control_changed = asyncio.Event()
        self._restart_requested = False
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

    async def stop(self) -> None:
        self._stopping.set()

    async def _poll_until_stopped(self) -> None:
        """The poll loop, kept alive: a bug that ends it is reported as FAILED (in ``/healthz``
        and so in the control service) until a restart command or shutdown."""
        while not self._stopping.is_set():
            try:
                await self._poll_while_wanted()
            except Exception as error:
                logger.exception("%s: the poll loop failed", self.spec.name)
                self.state = "FAILED"
                self.last_error = f"the poll loop failed: {type(error).__name__}: {error}"
                self.last_error_at = datetime.now(UTC)
                while not self._stopping.is_set() and not self._restart_requested:
                    await self._wait_for_change(None)

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
            await self.poll_once()
            self.schedule.start_interval()

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
        logger.info(
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

    def _record_failure(self, outcome: str, error: Exception) -> None:
        self.polls_failed += 1
        self.last_error = str(error)
        self.last_error_at = datetime.now(UTC)
        metrics.POLLS.labels(self.spec.name, outcome).inc()
