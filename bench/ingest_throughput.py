"""How many records a second one ingestor delivers to the local broker, and its memory.

Starts a fresh broker and the CoinCap simulator on benchmark ports, runs the asset ingestor's
loop in this process with no pause between polls for ``--seconds``, and reports records
acknowledged by Kafka per second and this process's peak RSS (which is the ingestor's: the
simulator and the broker run in processes of their own, reported separately).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import shutil
import sys
import time
import uuid
from pathlib import Path

import httpx
from prometheus_client import REGISTRY

from deploy.local.processes import LocalStack, ManagedProcess, settings_from
from deploy.local.readiness import http_answers, wait_for_kafka, wait_until
from services.ingestor.loop import Ingestor
from services.ingestor.specs import IngestorSpec
from shared.coincap.client import CoinCapClient
from shared.settings import PROJECT_ROOT

BENCH_STATE_DIR = PROJECT_ROOT / ".state" / "bench"
SIMULATOR_PORT = 38090
ENVIRONMENT = {
    "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:39092",
    "COINSTREAM_KAFKA_CONTROLLER_PORT": "39093",
    "COINSTREAM_BIGQUERY_EMULATOR_URL": "http://127.0.0.1:39050",
    "COINSTREAM_BIGQUERY_EMULATOR_GRPC_PORT": "39060",
    "COINSTREAM_STATE_DIR": str(BENCH_STATE_DIR / "stack"),
    "COINSTREAM_COINCAP_SIMULATOR_PORT": str(SIMULATOR_PORT),
    "COINSTREAM_POLL_INTERVAL_SECONDS": "0.001",
}


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def measure(seconds: float) -> tuple[int, int, int, float]:
    settings = settings_from(ENVIRONMENT | {"COINSTREAM_TOPIC_ASSETS": f"bench.{uuid.uuid4().hex}"})
    spec = IngestorSpec("bench-ingestor", "assets", "id", settings.topic_assets)
    ingestor = Ingestor(spec, settings, CoinCapClient.from_settings(settings))
    run = asyncio.create_task(ingestor.run())
    await asyncio.sleep(2)  # warm up: topics created, producer connected
    labels = {"ingestor": spec.name, "topic": spec.topic}
    start_count = REGISTRY.get_sample_value("coinstream_records_produced_total", labels) or 0
    started = time.monotonic()
    await asyncio.sleep(seconds)
    end_count = REGISTRY.get_sample_value("coinstream_records_produced_total", labels) or 0
    elapsed = time.monotonic() - started
    await ingestor.stop()
    await run
    await ingestor.client.aclose()
    polls, dropped = ingestor.polls_succeeded, ingestor.delivery.dropped_records
    return int(end_count - start_count), polls, dropped, elapsed


def main() -> int:
    # Refused connections while the broker starts, and buffer-overflow drops, are expected here;
    # the drops are reported as a count below.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("services.ingestor").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to measure")
    arguments = parser.parse_args()

    shutil.rmtree(BENCH_STATE_DIR, ignore_errors=True)
    local_stack = LocalStack(ENVIRONMENT, BENCH_STATE_DIR)
    simulator = ManagedProcess(
        "coincap-simulator",
        [sys.executable, "-m", "services.coincap_simulator", "--port", str(SIMULATOR_PORT)],
        {},
        BENCH_STATE_DIR / "logs",
    )
    local_stack.kafka.start()
    simulator.start()
    try:
        wait_for_kafka(local_stack.settings, 90, local_stack.kafka.is_running)
        wait_until(
            lambda: http_answers(f"http://127.0.0.1:{SIMULATOR_PORT}/healthz"),
            "the simulator",
            30,
        )
        records, polls, dropped, elapsed = asyncio.run(measure(arguments.seconds))
        per_poll = len(
            httpx.get(f"http://127.0.0.1:{SIMULATOR_PORT}/v3/assets?limit=2000").json()["data"]
        )
        ingestor_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        assert local_stack.kafka.process is not None and simulator.process is not None
        print(f"ingest throughput: {records / elapsed:,.0f} records/s acknowledged by Kafka")
        print(f"  {records:,} records in {elapsed:.1f} s; {polls} polls of {per_poll} assets")
        print(
            f"  polling outran delivery: {dropped:,} records dropped from the full buffer "
            "(counted and logged, as in production)"
            if dropped
            else "  nothing dropped"
        )
        print(f"  ingestor peak RSS: {ingestor_rss:.0f} MiB (this process)")
        print(f"  broker peak RSS: {peak_rss_mib(local_stack.kafka.process.pid):.0f} MiB")
        print(f"  simulator peak RSS: {peak_rss_mib(simulator.process.pid):.0f} MiB")
        print("  setup: one asset ingestor, no pause between polls, simulator over HTTP on")
        print("  loopback, single-node broker, acks=all, idempotent, gzip, 3 partitions")
    finally:
        simulator.stop()
        local_stack.kafka.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
