"""One Kafka producer's run: polls handed over in order, each record's answer tracked.

An idempotent producer retries a send itself, with the same sequence number, for as long as it
lives: a broker outage or restart within one session writes each record once, in order per
partition. So a session lives until a send fails for good (after which the producer's sequence
for that partition has a gap and every later send to it fails too), a restart command, shutdown,
or a producer that stalls while the broker answers. What the session did not get acknowledged
goes back to its polls, in order, for the next session: records Kafka refused were not written;
records whose answer never came may have been, and may reach Kafka twice.

Order per key: the producer sends one batch per partition at a time, and after a failed batch
the broker refuses the later batches of that partition (their sequence numbers no longer follow
on), so a record that must be sent again never has a newer snapshot of its key acknowledged
after it. ``settle`` checks this rather than trusting it: a record whose key has a newer
acknowledged snapshot is not sent again (it would land after that one) and is returned as
superseded, for the caller to count as lost.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.ingestor.buffer import DeliveryBuffer, PendingPoll
from shared.envelope import OutgoingMessage

SENDER_STOP_SECONDS = 15.0
"""How long an abandoned producer's requests on the wire may take to answer (its request
timeout is 10 s) before its connections are closed."""


@dataclass
class Settlement:
    """What a session left behind when it ended."""

    refused: int = 0
    """Records Kafka refused for good (not written): sent again by the next session."""
    resent: int = 0
    """Records handed back whose answer had not come when the producer was abandoned: they
    may be in Kafka already, and sending them again may store them twice."""
    superseded: dict[str, list[OutgoingMessage]] = field(default_factory=dict)
    """Per poll id, records not sent again because a newer snapshot of their key is in Kafka."""


class ProducerSession:
    """Hands polls to one started producer and follows what Kafka answers for each record.

    ``on_acknowledged`` is called for every record Kafka stored.
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        buffer: DeliveryBuffer,
        on_acknowledged: Callable[[OutgoingMessage], None],
    ) -> None:
        self.producer = producer
        self.buffer = buffer
        self.on_acknowledged = on_acknowledged
        self.unanswered = 0
        """Records handed over whose answer has not come."""
        self.failed = False
        """A send failed for good: end the session once the others have their answer."""
        self.waiting_since = time.monotonic()
        """When Kafka last answered for a record, or records began to wait for an answer."""
        self.ending = False
        """``close`` has begun: nothing more is handed over."""
        self._settled = False
        self._handed_over = 0

    async def hand_over(self, poll: PendingPoll) -> None:
        """Give the producer the poll's messages it does not hold yet, in order.

        Raises KafkaError when the producer cannot take the next one (no metadata, or its batch
        stays full while the broker is away); the rest wait for another call.
        """
        if not poll.started:
            poll.first_send_position = self._handed_over
        while not poll.fully_handed_over and not self.ending:
            message = poll.undelivered[len(poll.sends)]
            future = await self.producer.send(message.topic, message.value, key=message.key)
            poll.sends.append(future)
            if self.unanswered == 0:
                self.waiting_since = time.monotonic()
            self.unanswered += 1
            self._handed_over += 1
            future.add_done_callback(partial(self._answered, poll, message))

    def _answered(
        self, poll: PendingPoll, message: OutgoingMessage, future: asyncio.Future[Any]
    ) -> None:
        stored = _stored(future)  # reads the exception, so none goes unretrieved
        if stored:
            self.on_acknowledged(message)
        if self._settled:
            return  # ``close`` has read every future and reset the polls already
        self.unanswered -= 1
        self.waiting_since = time.monotonic()
        if stored:
            poll.acknowledged += 1
        else:
            self.failed = True
        if stored and poll.delivered:
            self.buffer.release_delivered()  # there may be room in flight now
        elif self.failed and self.unanswered == 0:
            self.buffer.note_change()  # every answer is in: the session can end

    async def close(self, patience_seconds: float) -> Settlement:
        """End the session: wait up to ``patience_seconds`` for the answers still due, stop the
        producer for good (nothing it held is sent after this returns), and hand what Kafka did
        not acknowledge back to the polls."""
        self.ending = True
        unanswered_when_abandoned = 0
        try:
            async with asyncio.timeout(patience_seconds):
                await asyncio.shield(self.producer.flush())
        except TimeoutError:
            await _stop_sending(self.producer)
            unanswered_when_abandoned = sum(
                1 for poll in self.buffer.started_polls() for f in poll.sends if not f.done()
            )
            _fail_what_it_holds(self.producer)
        await self.producer.stop()
        started = self.buffer.started_polls()
        settlement = settle(started)
        settlement.resent = unanswered_when_abandoned
        self._settled = True
        self.buffer.release_delivered()
        return settlement


def settle(polls: list[PendingPoll]) -> Settlement:
    """Hand each poll's unacknowledged messages back to it, in order, for a fresh producer.

    A record to send again whose key has an acknowledged record handed over after it (a newer
    snapshot) is superseded instead. ``polls`` holds every record that could be such a newer
    one: the buffer lets a delivered poll go only once every poll before it is delivered too.
    Settled polls that end up empty are left for ``DeliveryBuffer.release_delivered``.
    """
    newest_acknowledged: dict[tuple[str, bytes], int] = {}
    for poll in polls:
        for position, (message, future) in enumerate(
            zip(poll.undelivered, poll.sends, strict=False), poll.first_send_position
        ):
            if message.key is not None and _stored(future):
                identity = (message.topic, message.key)
                newest = newest_acknowledged.get(identity, -1)
                newest_acknowledged[identity] = max(position, newest)
    settlement = Settlement()
    for poll in polls:
        kept: list[OutgoingMessage] = []
        superseded: list[OutgoingMessage] = []
        for index, message in enumerate(poll.undelivered):
            answer = poll.sends[index] if index < len(poll.sends) else None
            if answer is not None and _stored(answer):
                continue
            if answer is not None and answer.done():
                settlement.refused += 1
            position = poll.first_send_position + index
            if message.key is not None and (
                newest_acknowledged.get((message.topic, message.key), -1) > position
            ):
                superseded.append(message)
            else:
                kept.append(message)
        if superseded:
            settlement.superseded[poll.poll_id] = superseded
        poll.keep(kept)
        poll.sends = []
        poll.acknowledged = 0
    return settlement


def _stored(future: asyncio.Future[Any]) -> bool:
    """Kafka acknowledged the record (reading a failure's exception marks it as seen)."""
    return future.done() and not future.cancelled() and future.exception() is None


def hold_leaderless_batches(producer: AIOKafkaProducer) -> None:
    """Make the producer keep a batch for a partition without a leader until a leader is back.

    aiokafka's idempotent producer never expires a batch it is retrying (its sender says so),
    except in one place: a batch older than ``request_timeout_ms`` whose partition has no leader
    in the producer's metadata (a broker restarting, a leader election) is failed with
    ``LeaderNotAvailableError``, after taking the next sequence number. If that batch was a
    retry, its first attempt may have been written before the broker went away; the failure ends
    the session and the next producer sends it again, a second copy under a new producer id. So
    the batch's time to live is made unlimited, as aiokafka already treats every other retry:
    a partition that stays leaderless while the broker answers is the stall watch's to handle
    (``delivery.STALL_SECONDS``), which counts what it sends again.
    """
    producer._message_accumulator._batch_ttl = math.inf


async def _stop_sending(producer: AIOKafkaProducer) -> None:
    """Make a producer that still holds unanswered records send nothing more.

    aiokafka has no public way to do this: ``stop()`` first waits for every pending record, and
    a ``stop()`` cut short by a timeout leaves the sender task retrying in the background, which
    could write an old record after a newer producer has sent it again. So the sender task is
    cancelled; it lets the requests already on the wire finish before it ends.
    """
    sender_task = producer._sender.sender_task
    if sender_task is not None and not sender_task.done():
        sender_task.cancel()
        await asyncio.wait([sender_task], timeout=SENDER_STOP_SECONDS)


def _fail_what_it_holds(producer: AIOKafkaProducer) -> None:
    """Answer every record a stopped producer still holds with a failure, so that ``stop()``
    does not wait for them. A batch the sender had put back for a retry is first listed as
    pending again: aiokafka's own clean-up of a failed batch expects to find it there; and the
    failures nobody waits for are marked as seen, so none is logged as never retrieved."""
    accumulator = producer._message_accumulator
    held = [batch for batches in accumulator._batches.values() for batch in batches]
    accumulator._pending_batches.update(batch for batch in held if batch.retry_count > 0)
    held += accumulator._pending_batches
    accumulator.fail_all(KafkaError("the producer was abandoned"))
    for batch in held:  # nobody waits for these any more; mark their failure as seen
        for future in (batch.future, batch._drain_waiter):
            if future.done() and not future.cancelled():
                future.exception()
