"""What the cluster tests share: the stream worker as a process, what the warehouse holds, what
the processes cost (peak memory from /proc), and a report of the measurements."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.envelope import PollContext, record_message
from shared.kafka import create_producer, ensure_topics, pipeline_topics
from shared.settings import Settings
from tests.harness.environment import TEST_STATE_DIR
from tests.harness.processes import ManagedProcess
from tests.harness.stream_worker import StreamWorkerProcess

LOG_DIR = TEST_STATE_DIR / "logs"
REPORT = TEST_STATE_DIR / "cluster-report.jsonl"
FIGURES: dict[str, Any] = {}
"""What the run measured, for the terminal summary (conftest)."""


# --- processes, as /proc sees them -------------------------------------------------------------


def peak_memory_mib(pid: int) -> float | None:
    """The process's peak resident memory (VmHWM) in MiB; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def child_pids(parent: int, command_contains: str) -> list[int]:
    """Children of ``parent`` whose command line contains ``command_contains``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name in /proc/N/stat is in parentheses and may hold spaces.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == parent and command_contains in command:
            found.append(int(entry.name))
    return sorted(found)


def process_pid(process: ManagedProcess) -> int:
    assert process.process is not None
    return process.process.pid


# --- the stream worker -----------------------------------------------------------------------


# --- what the warehouse holds ------------------------------------------------------------------


@dataclass
class Reckoning:
    """Records expected against rows found, keyed as the worker deduplicates them."""

    checked: int
    lost: int
    duplicated: int
    unexpected: int
    out_of_order_keys: int

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def reckon(
    worker: StreamWorkerProcess, table: str, key: str, expected: set[tuple[str, int]]
) -> Reckoning:
    """Compare the table with ``expected`` (key, source timestamp in ms) pairs.

    Order per key: sorted by source timestamp, a key's rows must have been written in that order,
    so their processing timestamps (the micro-batch's time) may not go back.
    """
    rows = worker.query(
        f"SELECT `{key}` AS k, UNIX_MILLIS(source_timestamp) AS ts, "
        f"UNIX_MICROS(processing_timestamp) AS processed FROM `{{d}}.{table}`"
    )
    found: dict[tuple[str, int], int] = {}
    processed_by_key: dict[str, list[tuple[int, int]]] = {}
    for row in rows:
        pair = (row["k"], int(row["ts"]))
        found[pair] = found.get(pair, 0) + 1
        processed_by_key.setdefault(row["k"], []).append((int(row["ts"]), int(row["processed"])))
    out_of_order = 0
    for timeline in processed_by_key.values():
        processed = [stamp for _, stamp in sorted(timeline)]
        if any(later < earlier for earlier, later in itertools.pairwise(processed)):
            out_of_order += 1
    return Reckoning(
        checked=len(expected),
        lost=len(expected - set(found)),
        duplicated=sum(count - 1 for count in found.values() if count > 1),
        unexpected=len(set(found) - expected),
        out_of_order_keys=out_of_order,
    )


def report(test: str, **measurements: Any) -> None:
    """Keep the test's measurements for the terminal summary, and append them to ``REPORT``."""
    FIGURES[test] = measurements
    line = json.dumps({"test": test, **measurements}, default=str)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    with REPORT.open("a") as file:
        file.write(line + "\n")


def sample_peaks(peaks: dict[str, float], pids: Callable[[], dict[str, int]]) -> None:
    """Keep the highest VmHWM seen per name (a killed process keeps its last reading)."""
    for name, pid in pids().items():
        peak = peak_memory_mib(pid)
        if peak is not None:
            peaks[name] = max(peaks.get(name, 0.0), round(peak, 1))


# --- records, as the asset ingestor writes them -----------------------------------------------


def asset_record(number: int, price: float) -> dict[str, Any]:
    return {
        "id": f"coin-{number}",
        "rank": str(number + 1),
        "symbol": f"C{number}",
        "name": f"Coin {number}",
        "supply": "1000.0",
        "maxSupply": "2000.0",
        "marketCapUsd": "1904557171625.0952172577833640",
        "volumeUsd24Hr": "12724040223.1452060699561802",
        "priceUsd": str(price),
        "changePercent24Hr": "-0.25",
        "vwap24Hr": None,
        "explorer": None,
        "tokens": {},
    }


def produce_asset_polls(
    settings: Settings, polls: int, assets: int, first_source_ms: int
) -> set[tuple[str, int]]:
    """Publish ``polls`` polls of ``assets`` assets, one second apart in source time, as the
    asset ingestor would; return the (id, source timestamp) pairs published."""
    messages = []
    for poll in range(polls):
        source_ms = first_source_ms + poll * 1000
        context = PollContext(
            poll_id=uuid.uuid4().hex,
            endpoint="assets",
            source="coincap-simulator",
            source_timestamp_ms=source_ms,
            fetched_at_ms=source_ms + 50,
        )
        messages += [
            record_message(context, settings.topic_assets, f"coin-{n}", asset_record(n, 1.0 + poll))
            for n in range(assets)
        ]

    async def send() -> None:
        await ensure_topics(settings, pipeline_topics(settings))
        producer = create_producer(settings, client_id="cluster-test")
        await producer.start()
        try:
            for message in messages:
                await producer.send(message.topic, message.value, key=message.key)
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(send())
    return {
        (f"coin-{n}", first_source_ms + poll * 1000) for poll in range(polls) for n in range(assets)
    }
