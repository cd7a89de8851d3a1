"""One measurement shared by every request that asks within a short window.

``/lag``, ``/freshness`` and ``/readyz`` ask Kafka and the warehouse, which costs connections,
a thread for the blocking BigQuery client, and seconds when a dependency is down. Without a
bound, a hundred requests a second (a dashboard left open, a probe too eager, a hostile page)
would open a hundred Kafka clients and threads. Here at most one measurement of each runs at a
time: requests arriving while it runs wait for it, and its outcome (an answer or an error) is
reused for ``COINSTREAM_CONTROL_ANSWER_CACHE_SECONDS`` after it ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from prometheus_client import Counter

T = TypeVar("T")

MEASUREMENTS = Counter(
    "coinstream_control_measurements_total",
    "Measurements of Kafka or the warehouse actually run for /lag, /freshness and /readyz "
    "(and their metrics); requests within COINSTREAM_CONTROL_ANSWER_CACHE_SECONDS share one.",
    ["answer"],
)


class SharedAnswer(Generic[T]):
    """The outcome of ``measure``, measured at most once at a time and reused for
    ``keep_seconds``; ``name`` labels the measurements counted in ``MEASUREMENTS``."""

    def __init__(
        self, name: str, measure: Callable[[], Coroutine[Any, Any, T]], keep_seconds: float
    ) -> None:
        self._counted = MEASUREMENTS.labels(name)
        self._measure = measure
        self._keep_seconds = keep_seconds
        self._running: asyncio.Task[T] | None = None
        self._finished: asyncio.Task[T] | None = None
        self._finished_at = 0.0

    async def get(self) -> T:
        finished = self._finished
        if finished is not None and time.monotonic() - self._finished_at < self._keep_seconds:
            return finished.result()
        if self._running is None:
            self._counted.inc()
            self._running = asyncio.create_task(self._measure())
            self._running.add_done_callback(self._keep)
        # Shielded: one impatient client that disconnects does not cancel everyone's answer.
        return await asyncio.shield(self._running)

    def _keep(self, task: asyncio.Task[T]) -> None:
        self._running = None
        if task.cancelled():
            return
        task.exception()  # retrieved, so that an error nobody awaited is not logged as lost
        self._finished, self._finished_at = task, time.monotonic()
