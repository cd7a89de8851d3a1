"""Freshness: from a poll's records being published to their rows being queryable.

A publisher does what the two ingestors do: every ``poll_interval`` seconds (jittered by up
to a quarter either way, so polls fall at every phase of the trigger) it publishes one poll of
165 assets and one of 40 exchanges. A watcher asks the warehouse every 0.25 s which of the
polls not seen yet have all their rows in ``assets`` / ``exchanges``.

Each poll's freshness runs from the moment its first record was handed to the producer
(Kafka's acknowledgement included) to the moment the warehouse query that first returned all
its rows answered: what an analyst querying as often would see. The watcher's own cycle
(0.25 s plus a query) bounds the resolution.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from bench.worker_input import Poll, PollMaker, send_poll
from bench.worker_process import BenchWorker, steady_batch_seconds
from shared.kafka import create_producer
from shared.schemas import ASSETS, EXCHANGES
from shared.warehouse import create_bigquery_client, table_id

WATCH_INTERVAL_SECONDS = 0.25
DRAIN_SECONDS = 90.0
"""How long after publishing ends a poll may still arrive before it counts as missing."""
WARM_UP_SECONDS = 180.0


@dataclass(frozen=True)
class FreshnessResult:
    latencies: list[float]
    """Seconds per poll (asset and exchange polls alike)."""
    missing: int
    """Polls published whose rows never became queryable within ``DRAIN_SECONDS``."""
    steady_batch_seconds: float | None

    def percentile(self, percent: int) -> float:
        """The ``percent``-th percentile (inclusive method: p100 is the worst)."""
        return percentile(self.latencies, percent)


def percentile(values: list[float], percent: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


class Watcher:
    """Which pending polls have all their rows in the warehouse now."""

    def __init__(self, worker: BenchWorker) -> None:
        self.client = create_bigquery_client(worker.settings)
        self.tables = [table_id(worker.settings, ASSETS), table_id(worker.settings, EXCHANGES)]

    def complete(self, expected: dict[str, int]) -> set[str]:
        if not expected:
            return set()
        # Poll ids are hex uuids of our own making: safe to inline.
        ids = ", ".join(f"'{poll_id}'" for poll_id in expected)
        sql = " UNION ALL ".join(
            f"SELECT poll_id, COUNT(*) AS n FROM `{table}` WHERE poll_id IN ({ids}) GROUP BY 1"
            for table in self.tables
        )
        rows = self.client.query(sql).result()
        return {row["poll_id"] for row in rows if row["n"] >= expected[row["poll_id"]]}


async def _publish(producer: AIOKafkaProducer, poll: Poll) -> None:
    await asyncio.gather(*await send_poll(producer, poll))


async def _measure(
    worker: BenchWorker, seconds: float, poll_interval: float, progress: Callable[[str], None]
) -> tuple[list[float], int]:
    maker = PollMaker(worker.settings)
    watcher = Watcher(worker)
    producer = create_producer(worker.settings, "bench-freshness")
    await producer.start()
    published: dict[str, float] = {}
    expected: dict[str, int] = {}
    latencies: list[float] = []
    try:
        # Warm up: the first batches of a fresh JVM are slow and not what this measures.
        warm_up = maker.assets(int(time.time() * 1000))
        await _publish(producer, warm_up)
        deadline = time.monotonic() + WARM_UP_SECONDS
        while not await asyncio.to_thread(watcher.complete, {warm_up.poll_id: 165}):
            if time.monotonic() > deadline:
                raise RuntimeError("the warm-up poll never reached the warehouse")
            await asyncio.sleep(WATCH_INTERVAL_SECONDS)

        async def publisher() -> None:
            next_at = time.monotonic()
            end_at = next_at + seconds
            while next_at < end_at:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                now_ms = int(time.time() * 1000)
                for poll in (maker.assets(now_ms), maker.exchanges(now_ms)):
                    published[poll.poll_id] = time.monotonic()
                    expected[poll.poll_id] = len(poll.messages)
                    await _publish(producer, poll)
                next_at += poll_interval * random.uniform(0.75, 1.25)

        publishing = asyncio.create_task(publisher())
        last_report = time.monotonic()
        drain_deadline: float | None = None
        while drain_deadline is None or time.monotonic() < drain_deadline:
            pending = {poll_id: expected[poll_id] for poll_id in list(expected)}
            done = await asyncio.to_thread(watcher.complete, pending)
            answered = time.monotonic()
            for poll_id in done:
                latencies.append(answered - published[poll_id])
                del expected[poll_id]
            if publishing.done():
                publishing.result()
                if drain_deadline is None:
                    drain_deadline = time.monotonic() + DRAIN_SECONDS
                if not expected:
                    break
            if time.monotonic() - last_report >= 30:
                last_report = time.monotonic()
                median = statistics.median(latencies) if latencies else float("nan")
                progress(f"{len(latencies)} polls queryable so far, median {median:.2f} s")
            await asyncio.sleep(WATCH_INTERVAL_SECONDS)
    finally:
        await producer.stop()
    return latencies, len(expected)


def measure_freshness(
    worker: BenchWorker, seconds: float, poll_interval: float, progress: Callable[[str], None]
) -> FreshnessResult:
    """Start ``worker`` on fresh topics, publish for ``seconds`` and measure each poll."""
    worker.start(timeout=300.0)
    latencies, missing = asyncio.run(_measure(worker, seconds, poll_interval, progress))
    if not latencies:
        raise RuntimeError(f"no poll became queryable; see {worker.process.log_path}")
    return FreshnessResult(latencies, missing, steady_batch_seconds(worker.batches()))
