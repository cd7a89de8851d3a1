"""The delivery buffer: fetched polls wait here, in order, until Kafka has acknowledged them.

Polling does not stop while the broker is down; the buffer holds what was fetched and the sender
hands it to the producer, oldest poll first, several polls at a time. It is bounded by a record
count and by the bytes of its messages (the durable spool beside it, ``spool``, holds the same
polls): past either bound the oldest poll that the producer has not started on is dropped, and
the caller counts and logs the loss. Polls the producer has started on are never dropped, so a
poll is either delivered completely or dropped before any of it was sent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from services.ingestor.spool import message_bytes
from shared.envelope import OutgoingMessage

OverflowReason = Literal["buffer_full", "spool_full"]
"""Which bound a dropped poll made room under: the records (``buffer_full``) or the bytes
(``spool_full``)."""


@dataclass(eq=False)
class PendingPoll:
    """One fetched poll on its way to Kafka."""

    poll_id: str
    undelivered: list[OutgoingMessage]
    """Messages Kafka has not acknowledged yet, in poll order; shrinks when a producer session
    ends with part of the poll delivered."""
    sends: list[asyncio.Future[Any]] = field(default_factory=list)
    """The current producer's futures for ``undelivered[:len(sends)]``: handed over, in order."""
    acknowledged: int = 0
    """How many of ``sends`` Kafka has acknowledged."""
    first_send_position: int = 0
    """Where ``sends[0]`` stands in the current producer's hand-over order (the order of every
    record it was given), for telling which of two snapshots of a key is the newer."""
    spooled: bool = False
    """The durable spool holds this poll: a stop or a kill before Kafka has it loses nothing."""
    held_bytes: int = field(init=False)
    """The bytes of ``undelivered`` (keys and values), as the spool's bound counts them."""

    def __post_init__(self) -> None:
        self.held_bytes = message_bytes(self.undelivered)

    def keep(self, messages: list[OutgoingMessage]) -> None:
        """Owe Kafka only ``messages`` from now on (a session ended with the rest settled)."""
        self.undelivered = messages
        self.held_bytes = message_bytes(messages)

    @property
    def waiting_records(self) -> int:
        """Records of this poll Kafka has not acknowledged yet."""
        return len(self.undelivered) - self.acknowledged

    @property
    def started(self) -> bool:
        """The current producer holds part of this poll."""
        return bool(self.sends)

    @property
    def fully_handed_over(self) -> bool:
        return len(self.sends) == len(self.undelivered)

    @property
    def delivered(self) -> bool:
        return self.acknowledged == len(self.undelivered)


class Dropped(NamedTuple):
    """A poll dropped to keep the buffer within its bounds, and which bound it made room under."""

    poll: PendingPoll
    reason: OverflowReason


class DeliveryBuffer:
    """A FIFO of polls bounded by the number of unacknowledged records in it, and by the bytes of
    the messages it holds.

    The sender hands polls over from the front, so the started polls are a prefix of the queue;
    overflow drops the oldest poll after them (never the front one, even before it is started).
    ``on_release`` hears of each poll let go once delivered (for the spool to forget it).
    """

    def __init__(
        self,
        max_records: int,
        max_bytes: int | None = None,
        on_release: Callable[[PendingPoll], None] | None = None,
    ) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.on_release = on_release
        self._polls: deque[PendingPoll] = deque()
        self._changed = asyncio.Event()

    @property
    def records(self) -> int:
        return sum(poll.waiting_records for poll in self._polls)

    @property
    def bytes(self) -> int:
        """The bytes of the messages held, acknowledged ones included until their poll goes."""
        return sum(poll.held_bytes for poll in self._polls)

    @property
    def polls(self) -> int:
        return len(self._polls)

    @property
    def polls_in_flight(self) -> int:
        """Polls the current producer holds part of and Kafka has not fully acknowledged."""
        return sum(1 for poll in self._polls if poll.started and not poll.delivered)

    def add(self, poll: PendingPoll) -> list[Dropped]:
        """Queue a poll; return the polls dropped to keep within the bounds, oldest first."""
        dropped = []
        self._polls.append(poll)
        protected = max(1, sum(1 for each in self._polls if each.started))
        records, held_bytes = self.records, self.bytes
        while len(self._polls) > protected:
            if records > self.max_records:
                reason: OverflowReason = "buffer_full"
            elif self.max_bytes is not None and held_bytes > self.max_bytes:
                reason = "spool_full"
            else:
                break
            oldest = self._polls[protected]
            dropped.append(Dropped(oldest, reason))
            records -= oldest.waiting_records
            held_bytes -= oldest.held_bytes
            del self._polls[protected]
        self.release_delivered()  # a poll of no records is delivered as it comes
        return dropped

    def next_to_hand_over(self) -> PendingPoll | None:
        """The oldest poll with messages the current producer does not hold yet."""
        return next((poll for poll in self._polls if not poll.fully_handed_over), None)

    def started_polls(self) -> list[PendingPoll]:
        """The polls the current producer holds part of, oldest first."""
        return [poll for poll in self._polls if poll.started]

    def release_delivered(self) -> None:
        """Let go of the delivered polls at the front. One delivered behind an undelivered one
        stays: if a record of the older poll must be sent again, the newer snapshots of its key
        show whether that would put it after them (see ``session.settle``)."""
        while self._polls and self._polls[0].delivered and self._polls[0].fully_handed_over:
            released = self._polls.popleft()
            if self.on_release is not None:
                self.on_release(released)
        self.note_change()

    def note_change(self) -> None:
        """Wake whoever waits on the buffer: a poll came, went, or Kafka answered for one."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for_change(self, at_most_seconds: float | None = None) -> bool:
        """Wait for the next change; False when ``at_most_seconds`` passed first.

        ``asyncio.timeout`` rather than ``wait_for``: on Python 3.11 ``wait_for`` swallows a
        cancellation that arrives as the event is set, and the sender would never stop.
        """
        try:
            async with asyncio.timeout(at_most_seconds):
                await self._changed.wait()
        except TimeoutError:
            return False
        return True

    async def wait_until_empty(self) -> None:
        while self._polls:
            await self.wait_for_change()

    def take_all(self) -> list[PendingPoll]:
        """Empty the buffer and return what was in it (at shutdown: what the spool keeps for the
        next start, or what is lost); ``on_release`` hears nothing of these."""
        polls = list(self._polls)
        self._polls.clear()
        self.note_change()
        return polls
