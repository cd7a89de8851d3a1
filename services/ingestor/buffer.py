"""The delivery buffer: fetched polls wait here, in order, until Kafka has acknowledged them.

Polling does not stop while the broker is down; the buffer holds what was fetched and the sender
delivers it, oldest poll first, when the broker is back. It is bounded by a record count: past
the bound the oldest waiting poll is dropped, and the caller counts and logs the loss.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from shared.envelope import OutgoingMessage


@dataclass
class PendingPoll:
    """One fetched poll on its way to Kafka."""

    poll_id: str
    undelivered: list[OutgoingMessage]
    """Messages Kafka has not acknowledged yet; shrinks as parts of the poll are delivered."""


class DeliveryBuffer:
    """A FIFO of polls bounded by the number of undelivered records in it.

    The head poll is the one the sender is working on; overflow never drops it, so a poll is
    either delivered completely or dropped before any of it was sent.
    """

    def __init__(self, max_records: int) -> None:
        self.max_records = max_records
        self._polls: deque[PendingPoll] = deque()
        self._changed = asyncio.Condition()

    @property
    def records(self) -> int:
        return sum(len(poll.undelivered) for poll in self._polls)

    @property
    def polls(self) -> int:
        return len(self._polls)

    async def add(self, poll: PendingPoll) -> list[PendingPoll]:
        """Queue a poll; return the polls dropped to keep within the bound, oldest first."""
        dropped = []
        async with self._changed:
            self._polls.append(poll)
            while self.records > self.max_records and len(self._polls) > 1:
                dropped.append(self._polls[1])
                del self._polls[1]
            self._changed.notify_all()
        return dropped

    async def head(self) -> PendingPoll:
        """The oldest poll, waiting until there is one."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._polls))
            return self._polls[0]

    async def remove_head(self, poll: PendingPoll) -> None:
        async with self._changed:
            if self._polls and self._polls[0] is poll:
                self._polls.popleft()
            self._changed.notify_all()

    async def wait_until_empty(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._polls)

    def take_all(self) -> list[PendingPoll]:
        """Empty the buffer and return what was in it (for counting a loss at shutdown)."""
        polls = list(self._polls)
        self._polls.clear()
        return polls
