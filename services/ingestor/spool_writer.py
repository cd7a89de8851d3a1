"""The delivery's side of the durable spool: opening it, writing it, and going on without it.

``KafkaDelivery`` keeps its polls in memory (``buffer``); this keeps the copy on disk (``spool``)
in step with it. A poll is written before it counts as fetched; the polls the buffer lets go
and the records a producer session no longer owes are written with the next poll, or every
``SPOOL_TRIM_SECONDS`` when none comes, so one fsync carries all of them. Writes run on one
thread of their own, so an fsync never holds up the sender. A spool that cannot be opened or
written never stops the ingestor: it delivers from memory, and ``problem`` says why (``/healthz``
shows it), since a kill would then lose what is held.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from services.ingestor import metrics
from services.ingestor.buffer import PendingPoll
from services.ingestor.spool import PollSpool, SpooledPoll, SpoolInUse
from shared.envelope import OutgoingMessage

logger = logging.getLogger(__name__)

SPOOL_TRIM_SECONDS = 0.5
"""How often polls Kafka has are removed from the spool when no new poll's write carries the
removal: one fsync for all of them, not one per acknowledged poll."""


class SpoolWriter:
    """One ingestor's spool file, written from a thread of its own; opened once, by ``open``
    or ``open_or_go_without``, and closed by ``close``."""

    def __init__(self, ingestor: str, path: Path) -> None:
        self.ingestor = ingestor
        self.path = path
        self.file: PollSpool | None = None
        """The open spool; None before ``open``, after ``close``, or when there is none."""
        self.problem: str | None = None
        """Why polls are not being spooled, if they are not: a kill would lose them."""
        self._tried = False
        self._thread: ThreadPoolExecutor | None = None
        self._removals: list[str] = []
        """Poll ids for the spool to forget with its next write."""
        self._rewrites: dict[str, list[OutgoingMessage]] = {}
        """Per poll id, the records still owed, for the spool's next write."""
        metrics.SPOOL_RECORDS.labels(ingestor).set_function(
            lambda: self.file.records if self.file is not None else 0
        )
        metrics.SPOOL_BYTES.labels(ingestor).set_function(
            lambda: self.file.bytes if self.file is not None else 0
        )

    def open(self) -> list[PendingPoll]:
        """Open the spool and return the polls an earlier run left in it, oldest first, for the
        buffer to deliver ahead of anything newly fetched. Once; later calls return nothing.

        Raises ``SpoolInUse`` when another process holds this ingestor's spool. A file that
        cannot be read is set aside (``PollSpool.open``); a spool that cannot be had at all
        leaves the ingestor delivering from memory, with ``problem`` saying why.
        """
        if self._tried:
            return []
        spool = PollSpool(self.path)
        try:
            recovery = spool.open()
        except SpoolInUse:
            raise
        except (OSError, sqlite3.Error) as error:
            self._tried = True
            self._go_without(f"cannot open the ingest spool {self.path}: {error}")
            return []
        self._tried = True
        if recovery.set_aside_to is not None:
            metrics.SPOOL_SET_ASIDE.labels(self.ingestor).inc()
            logger.error(
                "%s: the ingest spool %s could not be read (%s); moved it to %s and started an "
                "empty one: polls it may hold are not delivered",
                self.ingestor,
                self.path,
                recovery.set_aside_reason,
                recovery.set_aside_to,
            )
        self.file = spool
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"{self.ingestor}-spool")
        if not recovery.polls:
            return []
        polls = [
            PendingPoll(spooled.poll_id, list(spooled.messages), spooled=True)
            for spooled in recovery.polls
        ]
        recovered = sum(len(poll.undelivered) for poll in polls)
        metrics.SPOOL_RECOVERED_RECORDS.labels(self.ingestor).inc(recovered)
        metrics.RECORDS_RESENT.labels(self.ingestor).inc(recovered)
        logger.warning(
            "%s: %d poll(s) (%d records) an earlier run fetched are in the spool %s; delivering "
            "them first. Those Kafka stored before that run ended are stored twice (the "
            "warehouse keeps one)",
            self.ingestor,
            len(polls),
            recovered,
            self.path,
            extra={
                "poll_ids": [poll.poll_id for poll in polls],
                "recovered_records": recovered,
            },
        )
        return polls

    def open_or_go_without(self) -> list[PendingPoll]:
        """``open``, except that a spool held by another process leaves this one without."""
        try:
            return self.open()
        except SpoolInUse as error:
            self._tried = True
            self._go_without(str(error))
            return []

    def forget(self, poll_id: str) -> None:
        """The buffer let the poll go (delivered or dropped): remove it with the next write."""
        if self.file is not None:
            self._removals.append(poll_id)

    def rewrite(self, poll_id: str, owed: list[OutgoingMessage]) -> None:
        """Keep only ``owed`` of the poll's records, with the next write."""
        self._rewrites[poll_id] = owed

    async def write(self, add: PendingPoll | None = None) -> None:
        """One spool transaction: ``add`` after every poll held, with the removals and
        rewrites due; a failure is counted and logged, and the removals and rewrites wait for
        the next write."""
        spool, thread = self.file, self._thread
        removals, self._removals = self._removals, []
        rewrites, self._rewrites = self._rewrites, {}
        if spool is None or thread is None or (add is None and not removals and not rewrites):
            return
        spooled = SpooledPoll(add.poll_id, tuple(add.undelivered)) if add is not None else None
        started = time.perf_counter()
        try:
            await asyncio.get_running_loop().run_in_executor(
                thread, partial(spool.write, spooled, removals, rewrites)
            )
        except (OSError, sqlite3.Error) as error:
            self._removals[:0] = removals
            self._rewrites = rewrites | self._rewrites
            metrics.SPOOL_WRITE_FAILURES.labels(self.ingestor).inc()
            self.problem = f"writing the ingest spool {self.path} failed: {error}"
            logger.error(
                "%s: %s%s",
                self.ingestor,
                self.problem,
                f"; poll {add.poll_id} is held in memory only" if add is not None else "",
            )
            return
        metrics.SPOOL_WRITE_DURATION.labels(self.ingestor).observe(time.perf_counter() - started)
        self.problem = None
        if add is not None:
            add.spooled = True

    async def trim_forever(self) -> None:
        """Write the removals and rewrites due every ``SPOOL_TRIM_SECONDS``."""
        while True:
            await asyncio.sleep(SPOOL_TRIM_SECONDS)
            await self.write()

    async def close(self) -> None:
        """Write the removals due and close the spool; the last thing a delivery does."""
        spool, thread = self.file, self._thread
        if spool is None or thread is None:
            return
        await self.write()
        await asyncio.get_running_loop().run_in_executor(thread, spool.close)
        thread.shutdown(wait=True)
        self.file, self._thread = None, None

    def _go_without(self, problem: str) -> None:
        self.problem = problem
        logger.error(
            "%s: %s; delivering from memory only: polls held when the ingestor is killed are lost",
            self.ingestor,
            problem,
        )
