"""The stream worker's per-batch profile: where a steady micro-batch's time goes.

Starts a fresh broker and BigQuery emulator on ports of its own and one worker process with
the local default trigger (5 s), publishes what ``make run`` publishes every 5 s (one poll of
165 assets and one of 40 exchanges, in the ingestors' envelope; the next only once the worker
has processed the last, so every batch profiled holds exactly one of each), and reads the
worker's batch log lines, which list each phase of the batch
(``services/stream_worker/batch_phases.py``) and Spark's own timing of the trigger before it.
Prints the median of each phase over ``--batches`` steady batches (the first ``--warmup`` are
left out), as a Markdown table, and writes the medians to ``--json`` if given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from deploy.local.readiness import wait_until
from shared.envelope import OutgoingMessage, PollContext, record_message
from shared.kafka import ensure_topics, pipeline_topics
from shared.settings import PROJECT_ROOT, Settings
from tests.harness.processes import LocalStack, ManagedProcess

BENCH_STATE_DIR = PROJECT_ROOT / ".state" / "bench-batch-profile"
ASSETS_PER_POLL = 165
EXCHANGES_PER_POLL = 40
PERIOD_SECONDS = 5.0


def environment(port_offset: int) -> dict[str, str]:
    def port(base: int) -> str:
        return str(base + port_offset)

    return {
        "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port(39292)}",
        "COINSTREAM_KAFKA_CONTROLLER_PORT": port(39293),
        "COINSTREAM_BIGQUERY_EMULATOR_URL": f"http://127.0.0.1:{port(39250)}",
        "COINSTREAM_BIGQUERY_EMULATOR_GRPC_PORT": port(39260),
        "COINSTREAM_STATE_DIR": str(BENCH_STATE_DIR / "stack"),
        "COINSTREAM_STREAM_WORKER_PORT": port(38203),
        "COINSTREAM_BIGQUERY_DATASET": "batch_profile",
        "COINSTREAM_STREAM_CHECKPOINT_LOCATION": str(BENCH_STATE_DIR / "checkpoint"),
    }


def poll_messages(settings: Settings, source_ms: int) -> list[OutgoingMessage]:
    """One asset poll and one exchange poll, with every field CoinCap sends."""
    assets = PollContext(uuid.uuid4().hex, "assets", "bench", source_ms, source_ms + 40)
    exchanges = PollContext(uuid.uuid4().hex, "exchanges", "bench", source_ms, source_ms + 40)
    messages = []
    for n in range(ASSETS_PER_POLL):
        record: dict[str, Any] = {
            "id": f"coin-{n}",
            "rank": str(n + 1),
            "symbol": f"C{n}",
            "name": f"Coin {n}",
            "supply": "19788862.0000000000000000",
            "maxSupply": "21000000.0000000000000000" if n % 2 else None,
            "marketCapUsd": "1904557171625.0952172577833640",
            "volumeUsd24Hr": "12724040223.1452060699561802",
            "priceUsd": f"{n + 1}.{source_ms % 100000:05d}",
            "changePercent24Hr": "0.9762522061124105",
            "vwap24Hr": "95583.4674577419449477",
            "explorer": "https://blockchain.info/",
            "tokens": {},
        }
        messages.append(record_message(assets, settings.topic_assets, f"coin-{n}", record))
    for n in range(EXCHANGES_PER_POLL):
        record = {
            "exchangeId": f"exchange-{n}",
            "name": f"Exchange {n}",
            "rank": str(n + 1),
            "percentTotalVolume": "2.946801735133553120000000000000000000",
            "volumeUsd": "84969370.4499608426167365",
            "tradingPairs": "52",
            "socket": False,
            "exchangeUrl": "https://example.com",
            "updated": source_ms,
        }
        messages.append(
            record_message(exchanges, settings.topic_exchanges, f"exchange-{n}", record)
        )
    return messages


def batch_lines(log: Path) -> list[dict[str, Any]]:
    """The worker's batch log lines that carry phases, in order."""
    lines = []
    for text in log.read_text(errors="replace").splitlines():
        if '"phases"' not in text:
            continue
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            continue
    return lines


def steady(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batches of exactly one poll of each: what ``make run`` gives a worker that keeps up."""
    return [
        line
        for line in lines
        if line["rows"].get("assets") == ASSETS_PER_POLL
        and line["rows"].get("exchanges") == EXCHANGES_PER_POLL
    ]


async def publish_until(settings: Settings, log: Path, wanted: int) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        compression_type="gzip",
    )
    await producer.start()
    try:
        next_poll = time.monotonic()
        while len(steady(batch_lines(log))) < wanted:
            batches = len(batch_lines(log))
            for message in poll_messages(settings, int(time.time() * 1000)):
                await producer.send(message.topic, message.value, key=message.key)
            await producer.flush()
            # The next poll once this one is processed: on a machine too busy for the worker
            # to keep up, polls would pile up into bigger batches, which are not what is
            # profiled here.
            while len(batch_lines(log)) == batches:  # noqa: ASYNC110 - polling another process
                await asyncio.sleep(0.2)
            next_poll = max(next_poll + PERIOD_SECONDS, time.monotonic())
            await asyncio.sleep(next_poll - time.monotonic())
    finally:
        await producer.stop()


def medians(batches: list[dict[str, Any]]) -> dict[str, float]:
    """Per phase, the median seconds over ``batches`` (0 where a batch did not run it)."""
    names: dict[str, None] = {}
    for batch in batches:
        names.update(dict.fromkeys(batch["phases"]))
    result = {
        name: statistics.median(batch["phases"].get(name, 0.0) for batch in batches)
        for name in names
    }
    result["phases in all"] = statistics.median(sum(b["phases"].values()) for b in batches)
    result["batch (wall)"] = statistics.median(batch["seconds"] for batch in batches)
    triggers = [b["previous_trigger_ms"] for b in batches if b.get("previous_trigger_ms")]
    for name in triggers[0] if triggers else {}:
        result[f"spark trigger: {name}"] = statistics.median(t[name] for t in triggers) / 1000
    return result


def main() -> int:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--port-offset", type=int, default=0)
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()

    shutil.rmtree(BENCH_STATE_DIR, ignore_errors=True)
    settings_environment = environment(arguments.port_offset)
    local_stack = LocalStack(settings_environment, BENCH_STATE_DIR)
    settings = local_stack.settings
    worker = ManagedProcess(
        "stream-worker",
        [sys.executable, "-m", "services.stream_worker"],
        # Every batch's line, which the worker logs at DEBUG after its first.
        {**settings_environment, "COINSTREAM_LOG_LEVEL": "DEBUG"},
        BENCH_STATE_DIR / "logs",
    )
    health = f"http://127.0.0.1:{settings.stream_worker_port}/healthz"

    def running() -> bool:
        try:
            return bool(httpx.get(health, timeout=2).json()["state"] == "RUNNING")
        except httpx.HTTPError:
            return False

    local_stack.start()
    try:
        asyncio.run(ensure_topics(settings, pipeline_topics(settings)))
        worker.start()
        wait_until(running, "the worker", 180)
        wanted = arguments.warmup + arguments.batches
        asyncio.run(publish_until(settings, worker.log_path, wanted))
        batches = steady(batch_lines(worker.log_path))[arguments.warmup : wanted]
    finally:
        worker.stop()
        local_stack.stop()
    result = medians(batches)
    print(f"median of {len(batches)} steady batches ({ASSETS_PER_POLL} assets + ")
    print(f"{EXCHANGES_PER_POLL} exchanges every {PERIOD_SECONDS:g} s, trigger 5 s):\n")
    print("| phase | median s |\n|---|---|")
    for name, seconds in result.items():
        print(f"| {name} | {seconds:.3f} |")
    if arguments.json:
        arguments.json.write_text(json.dumps({"batches": len(batches), "median": result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
