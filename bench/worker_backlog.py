"""How fast a worker drains a backlog that was in Kafka before it started.

The backlog is written first (``worker_input.prefill``); only then is the worker started, so
nothing is consumed while it is being written, and the clock is the worker's alone:

- from start: from just before the worker's process is started to the end of the batch that
  committed the log end offset to its consumer group (its ``batch N: ... in X s`` log line;
  the group's lag, polled at the broker every 0.5 s, confirms it reached 0). Includes the JVM,
  the Spark session, the warehouse checks and the query's start.
- from first batch: from the start of the first batch that wrote rows (its log line's time
  minus its duration) to the same end: the drain itself.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.worker_process import BenchWorker, WorkerMemory
from services.control.consumer_lag import measure_lag

LAG_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class BacklogResult:
    records: int
    seconds_from_start: float
    seconds_from_first_batch: float
    start_to_first_batch_seconds: float
    batches: int
    median_batch_seconds: float
    median_batch_rows: float
    memory: WorkerMemory

    @property
    def rate_from_start(self) -> float:
        return self.records / self.seconds_from_start

    @property
    def rate_from_first_batch(self) -> float:
        return self.records / self.seconds_from_first_batch


async def _lag(worker: BenchWorker, topic: str) -> int | None:
    report = await measure_lag(worker.settings, worker.settings.stream_consumer_group, [topic])
    return report.lag_records if report.topics else None


def drain_backlog(
    worker: BenchWorker, records: int, progress: Callable[[str], None], timeout: float = 1800.0
) -> BacklogResult:
    """Start ``worker`` on the backlog of ``records`` asset records and time it to the end."""
    topic = worker.settings.topic_assets
    worker.launch()
    last_report = time.monotonic()
    while True:
        if not worker.process.is_running():
            raise RuntimeError(
                f"the stream worker exited while draining; the end of {worker.process.log_path}:"
                f"\n{worker.process.log_tail(30)}"
            )
        lag = asyncio.run(_lag(worker, topic))
        if lag == 0:
            break
        if time.time() - worker.started_at > timeout:
            raise RuntimeError(f"the worker did not drain the backlog in {timeout:.0f} s")
        if time.monotonic() - last_report >= 15:
            last_report = time.monotonic()
            progress(
                f"lag {lag:,} records after {time.time() - worker.started_at:.0f} s"
                if lag is not None
                else "waiting for the topic's metadata"
            )
        time.sleep(LAG_POLL_SECONDS)
    memory = worker.memory()
    with_rows = [batch for batch in worker.batches() if batch.rows > 0]
    if not with_rows:
        raise RuntimeError(f"the worker logged no batch with rows; see {worker.process.log_path}")
    first_started = with_rows[0].started_at
    ended = with_rows[-1].ended_at
    return BacklogResult(
        records=records,
        seconds_from_start=ended - worker.started_at,
        seconds_from_first_batch=ended - first_started,
        start_to_first_batch_seconds=first_started - worker.started_at,
        batches=len(with_rows),
        median_batch_seconds=statistics.median(batch.seconds for batch in with_rows),
        median_batch_rows=statistics.median(batch.rows for batch in with_rows),
        memory=memory,
    )
