"""Stream worker figures: record-to-queryable latency, backlog throughput, peak memory.

Starts a fresh broker and BigQuery emulator on benchmark ports and one worker process with the
local default trigger (5 s), then:

1. latency: publishes one poll of 165 asset records every 2 s for ``--latency-seconds`` and, by
   querying the warehouse every 0.25 s, notes when each poll's rows are first queryable;
2. throughput: publishes a backlog of ``--backlog`` records at once and times the worker until
   its consumer group has committed the log end (every record processed and merged);
3. memory: the peak RSS (VmHWM) of the worker's Python process and of its JVM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import statistics
import subprocess
import sys
import time
import uuid

import httpx
from aiokafka import AIOKafkaProducer

from bench.ingest_throughput import peak_rss_mib
from deploy.local.processes import LocalStack, ManagedProcess
from deploy.local.readiness import wait_until
from services.control.consumer_lag import measure_lag
from shared.envelope import OutgoingMessage, PollContext, record_message
from shared.kafka import ensure_topics, pipeline_topics
from shared.schemas import ASSETS
from shared.settings import PROJECT_ROOT, Settings
from shared.warehouse import create_bigquery_client, table_id

BENCH_STATE_DIR = PROJECT_ROOT / ".state" / "bench-worker"
WORKER_PORT = 38103
ENVIRONMENT = {
    "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:39192",
    "COINSTREAM_KAFKA_CONTROLLER_PORT": "39193",
    "COINSTREAM_BIGQUERY_EMULATOR_URL": "http://127.0.0.1:39150",
    "COINSTREAM_BIGQUERY_EMULATOR_GRPC_PORT": "39160",
    "COINSTREAM_STATE_DIR": str(BENCH_STATE_DIR / "stack"),
    "COINSTREAM_STREAM_WORKER_PORT": str(WORKER_PORT),
    "COINSTREAM_BIGQUERY_DATASET": "bench",
}
RECORDS_PER_POLL = 165


def poll_messages(settings: Settings, source_ms: int) -> tuple[str, list[OutgoingMessage]]:
    context = PollContext(uuid.uuid4().hex, "assets", "bench", source_ms, source_ms)
    records = [
        {
            "id": f"coin-{n}",
            "rank": str(n + 1),
            "symbol": f"C{n}",
            "priceUsd": "0.000000000012345678" if n == 0 else f"{n}.123456789",
            "marketCapUsd": "1904557171625.0952172577833640",
            "supply": "1000",
            "maxSupply": None,
        }
        for n in range(RECORDS_PER_POLL)
    ]
    messages = [record_message(context, settings.topic_assets, str(r["id"]), r) for r in records]
    return context.poll_id, messages


async def publish(producer: AIOKafkaProducer, messages: list[OutgoingMessage]) -> None:
    for message in messages:
        await producer.send(message.topic, message.value, key=message.key)
    await producer.flush()


async def caught_up(settings: Settings) -> bool:
    """Everything in the asset topic processed: the worker group's lag, as /lag measures it."""
    report = await measure_lag(settings, settings.stream_consumer_group, [settings.topic_assets])
    return bool(report.topics) and report.lag_records == 0


async def measure_latency(settings: Settings, seconds: float) -> list[float]:
    client = create_bigquery_client(settings)
    table = table_id(settings, ASSETS)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    published: dict[str, float] = {}
    seen: dict[str, float] = {}
    started = time.monotonic()
    next_publish = started
    try:
        while time.monotonic() - started < seconds or len(seen) < len(published):
            now = time.monotonic()
            if now >= next_publish and now - started < seconds:
                poll_id, messages = poll_messages(settings, int(time.time() * 1000))
                await publish(producer, messages)
                published[poll_id] = time.monotonic()
                next_publish += 2.0
            rows = await asyncio.to_thread(
                lambda: list(client.query(f"SELECT DISTINCT poll_id FROM `{table}`").result())
            )
            for row in rows:
                if row["poll_id"] in published and row["poll_id"] not in seen:
                    seen[row["poll_id"]] = time.monotonic()
            if time.monotonic() - started > seconds + 120:
                break
            await asyncio.sleep(0.25)
    finally:
        await producer.stop()
    return [seen[poll_id] - published[poll_id] for poll_id in seen]


async def measure_backlog(settings: Settings, records: int) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
    )
    await producer.start()
    try:
        base_ms = int(time.time() * 1000)
        for poll in range(records // RECORDS_PER_POLL):
            await publish(producer, poll_messages(settings, base_ms + poll)[1])
    finally:
        await producer.stop()
    started = time.monotonic()
    while not await caught_up(settings):  # noqa: ASYNC110 - polling another process
        await asyncio.sleep(0.5)
    return time.monotonic() - started


def worker_state() -> str:
    try:
        state: str = httpx.get(f"http://127.0.0.1:{WORKER_PORT}/healthz", timeout=2).json()["state"]
    except httpx.HTTPError:
        return ""
    return state


def jvm_child_of(pid: int) -> int | None:
    children = subprocess.run(
        ["ps", "--ppid", str(pid), "-o", "pid=,comm="], capture_output=True, text=True
    ).stdout.split("\n")
    for line in children:
        if "java" in line:
            return int(line.split()[0])
    return None


def main() -> int:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-seconds", type=float, default=70.0)
    parser.add_argument("--backlog", type=int, default=100_000)
    arguments = parser.parse_args()

    shutil.rmtree(BENCH_STATE_DIR, ignore_errors=True)
    local_stack = LocalStack(ENVIRONMENT, BENCH_STATE_DIR)
    settings = local_stack.settings
    worker = ManagedProcess(
        "stream-worker",
        [sys.executable, "-m", "services.stream_worker"],
        ENVIRONMENT,
        BENCH_STATE_DIR / "logs",
    )
    local_stack.start()
    try:
        asyncio.run(ensure_topics(settings, pipeline_topics(settings)))
        worker.start()
        wait_until(lambda: worker_state() == "RUNNING", "the worker", 120)
        latencies = asyncio.run(measure_latency(settings, arguments.latency_seconds))
        backlog_seconds = asyncio.run(measure_backlog(settings, arguments.backlog))
        assert worker.process is not None
        jvm = jvm_child_of(worker.process.pid)
        backlog = arguments.backlog // RECORDS_PER_POLL * RECORDS_PER_POLL
        print("stream worker (trigger 5 s, local Spark local[2], BigQuery emulator):")
        print(
            f"  record -> queryable: median {statistics.median(latencies):.1f} s, "
            f"worst {max(latencies):.1f} s over {len(latencies)} polls of {RECORDS_PER_POLL} "
            f"records published every 2 s for {arguments.latency_seconds:.0f} s"
        )
        print(
            f"  backlog: {backlog:,} records processed in {backlog_seconds:.1f} s = "
            f"{backlog / backlog_seconds:,.0f} rows/s (until the group committed the log end)"
        )
        print(f"  peak RSS: Python driver {peak_rss_mib(worker.process.pid):.0f} MiB", end="")
        print(f", JVM {peak_rss_mib(jvm):.0f} MiB" if jvm else "")
    finally:
        worker.stop()
        local_stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
