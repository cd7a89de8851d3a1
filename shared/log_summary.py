"""A line per poll or per micro-batch is detail; a terminal that reads at a glance wants one
line a minute. ``MinuteSummary`` decides the level of each event's own line (INFO for the first
of a process, so a start shows that data flows; DEBUG after it) and adds the events up into a
summary line at INFO once ``interval_seconds`` have passed.

``COINSTREAM_LOG_LEVEL=DEBUG`` shows every event's line as well (``shared.logging``).
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

SUMMARY_SECONDS = 60.0


@dataclass
class SummaryWindow:
    """The events since the last summary: how many, their counts added up, their durations."""

    seconds: float
    events: int = 0
    totals: Counter[str] = field(default_factory=Counter)
    durations: list[float] = field(default_factory=list)

    def durations_text(self) -> str:
        """``median 0.61 s, slowest 1.10 s``, or empty when no event was timed."""
        if not self.durations:
            return ""
        return (
            f"median {statistics.median(self.durations):.2f} s, slowest {max(self.durations):.2f} s"
        )


class MinuteSummary:
    """Counts a service's events, and logs one summary line (written by ``describe``) a
    ``interval_seconds``. Not thread-safe: one caller (the worker's batches, one ingestor's
    polls)."""

    def __init__(
        self,
        logger: logging.Logger,
        describe: Callable[[SummaryWindow], str],
        interval_seconds: float = SUMMARY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.describe = describe
        self.interval_seconds = interval_seconds
        self.clock = clock
        self._started = clock()
        self._window = SummaryWindow(seconds=0.0)
        self._first_seen = False

    def line_level(self) -> int:
        """The level of the next event's own line: INFO for the first, DEBUG for the rest."""
        if self._first_seen:
            return logging.DEBUG
        self._first_seen = True
        return logging.INFO

    def add(self, counts: Mapping[str, int], seconds: float | None = None) -> None:
        """Count one event; log the summary when its interval has passed."""
        window = self._window
        window.events += 1
        window.totals.update(counts)
        if seconds is not None:
            window.durations.append(seconds)
        now = self.clock()
        if now - self._started >= self.interval_seconds:
            window.seconds = now - self._started
            self.logger.info(self.describe(window))
            self._started = now
            self._window = SummaryWindow(seconds=0.0)
