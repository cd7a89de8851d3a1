"""Where a micro-batch's time goes: each step timed under a name, per batch and in a histogram.

The worker opens one ``BatchPhases`` per micro-batch (``recording``); any code the batch calls,
the sinks included, times a step with ``phase("name")`` without being handed the recorder, so
a sink keeps its plain ``write(table, rows, run_id, batch_id)``. A step run several times in a
batch (a MERGE per table under one name) adds up. At the end of the batch the worker logs the
phases in its batch line and observes them in ``coinstream_stream_batch_phase_seconds{phase}``,
so the per-batch profile can be taken again from any running worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame

from services.stream_worker import metrics

_recording: ContextVar[BatchPhases | None] = ContextVar("batch_phases", default=None)


class BatchPhases:
    """The seconds each named step of one micro-batch took, in the order the steps first ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def rounded(self) -> dict[str, float]:
        """The phases in milliseconds' precision, for the batch's log line."""
        return {name: round(seconds, 3) for name, seconds in self.seconds.items()}

    def observe(self) -> None:
        """Add this batch's phases to ``coinstream_stream_batch_phase_seconds``."""
        for name, seconds in self.seconds.items():
            metrics.BATCH_PHASE.labels(name).observe(seconds)


@contextmanager
def recording() -> Iterator[BatchPhases]:
    """Collect the phases timed (by ``phase``) in this thread until the block ends."""
    phases = BatchPhases()
    token = _recording.set(phases)
    try:
        yield phases
    finally:
        _recording.reset(token)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the block as ``name`` in the batch being recorded; outside a batch, do nothing."""
    phases = _recording.get()
    if phases is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        phases.add(name, time.perf_counter() - started)


def collect_arrow(frame: DataFrame, name: str) -> pa.Table:
    """``frame.toArrow()``, timed as two phases: Spark planning the query, then running it.

    Planning first (``executedPlan``) is what ``toArrow`` would do anyway; doing it apart only
    lets the profile tell optimizer time from job time.
    """
    with phase(f"spark.plan.{name}"):
        frame._jdf.queryExecution().executedPlan()
    with phase(f"spark.collect.{name}"):
        return frame.toArrow()


def previous_trigger(progress: dict[str, Any] | None, batch_id: int) -> dict[str, int]:
    """Spark's own timing of the trigger before batch ``batch_id`` (``durationMs``: offsets,
    the offset-log write, planning, ``addBatch``, the commit-log write), observed as
    ``trigger.*`` phases; empty when ``progress`` (the query's last) is not that trigger's.

    Spark reports a trigger's progress only once it has ended, after its batch function
    returned; so each batch reports the one before it.
    """
    if not progress or progress.get("batchId") != batch_id - 1:
        return {}
    durations: dict[str, int] = progress.get("durationMs") or {}
    for name, milliseconds in durations.items():
        metrics.BATCH_PHASE.labels(f"trigger.{name}").observe(milliseconds / 1000)
    return durations
