"""The faults the fault suite does to a running pipeline, each repeatable and counted, and the
pipeline it does them to."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.coincap_simulator.faults import ABSURD_VALUES, POISON_VALUES
from tests.harness.pipeline import EVERY_SERVICE, Pipeline
from tests.harness.waiting import wait_for

FAULT_SUITE_BASE_PORT = 18410


def fault_suite_pipeline(name: str) -> Pipeline:
    """The pipeline the fault suite kills pieces of: a simulator of its own (demanding a
    real-looking API key), both ingestors, the stream worker, control (with a token) and the
    dashboard, on the session's broker and emulator; not started yet."""
    services = [service for service in EVERY_SERVICE if service != "prometheus"]
    # The kills are timed by each poll's "fetched" line, logged at DEBUG after the first.
    debug = {"COINSTREAM_LOG_LEVEL": "DEBUG"}
    return Pipeline(name, FAULT_SUITE_BASE_PORT, services=services, overrides=debug)


STORM: list[dict[str, Any]] = [
    {"mode": "rate_limit", "count": 3, "retry_after": 0.5},
    {"mode": "server_error", "count": 2, "status": 500},
    {"mode": "server_error", "count": 1, "status": 503},
    # Longer than the ingestors' 5 s request timeout: the client gives up and asks again.
    {"mode": "slow", "seconds": 7, "count": 1},
    {"mode": "malformed_json", "count": 1},
    {"mode": "missing_id", "count": 2},
    # A negative supply, rank 0, prices of "1e400" and "NaN", ... on one page of each listing.
    {"mode": "absurd_values", "count": 1, "endpoint": "assets"},
    {"mode": "absurd_values", "count": 1, "endpoint": "exchanges"},
    # 10 MB, past the ingestors' COINSTREAM_COINCAP_MAX_RESPONSE_BYTES (8 MiB): refused.
    {"mode": "oversized_body", "count": 1, "size_bytes": 10_000_000},
    # Beside healthy records: an exchange `updated` of 9999999999999999, lone surrogates, a 2 MB
    # URL, a record over Kafka's 1 MiB, a field nested 200 deep, a 300-character id.
    {"mode": "poison", "count": 1, "endpoint": "assets"},
    {"mode": "poison", "count": 1, "endpoint": "exchanges"},
    # Whole pages refused as malformed: a timestamp of 1e16, JSON nested 100,000 deep.
    {"mode": "poison_page", "count": 1, "poison": "timestamp"},
    {"mode": "poison_page", "count": 1, "poison": "nesting"},
]
"""One CoinCap fault storm: 429 bursts, 5xx, a timeout, malformed JSON, records without ids,
absurd values, a 10 MB body, poison records and poison pages. The knobs queue, so both
ingestors take turns suffering them."""

STORM_RECORDS_WITHOUT_ID = 2
STORM_ABSURD_RECORDS = sum(len(values) for values in ABSURD_VALUES.values())
STORM_POISON_RECORDS = len(POISON_VALUES["assets"]) + len(POISON_VALUES["exchanges"])
STORM_OVERSIZED_BODIES = 1


def kill_worker_at_random_points(
    pipeline: Pipeline, kills: int, rng: random.Random, wait_running: bool = True
) -> None:
    """SIGKILL the worker and start it again, ``kills`` times; then (with ``wait_running``)
    wait until it runs.

    Kills alternate: the first, third, ... come 0 to 15 s after the query runs (mid-batch,
    between batches, in the commit), the others 2 to 40 s after the process was started again
    (while Spark starts, while the query plans its first batch), whatever the machine's speed
    makes of that window. So each pair waits for Spark to start once, not twice.
    """
    for kill in range(kills):
        if kill % 2 == 0:
            pipeline.wait_worker_running()
            deadline = time.monotonic() + rng.uniform(0, 15)
        else:
            deadline = time.monotonic() + rng.uniform(2, 40)
        while time.monotonic() < deadline:
            worker = pipeline.worker.process
            assert worker.is_running(), f"the worker exited by itself:\n{worker.log_tail(40)}"
            time.sleep(0.2)
        pipeline.kill_worker()
        pipeline.restart_worker_without_waiting()
    if wait_running:
        pipeline.wait_worker_running()


def kill_worker_at_fault_point(pipeline: Pipeline, point: str) -> None:
    """Restart the worker with ``COINSTREAM_WORKER_FAULT_POINT=point``; it kills itself there
    in its first batch with rows. Then start it again without the fault."""
    pipeline.kill_worker()
    pipeline.restart_worker_without_waiting({"COINSTREAM_WORKER_FAULT_POINT": point})
    process = pipeline.worker.process.process
    assert process is not None
    assert process.wait(300) == -9, pipeline.worker.process.log_tail(40)
    assert f"fault point {point} reached" in pipeline.worker.process.log_text()
    pipeline.worker_kills += 1
    pipeline.restart_worker()


def fault_storm(pipeline: Pipeline) -> int:
    """Queue one storm, wait until the ingestors have taken every knob; return knobs taken."""
    for knob in STORM:
        pipeline.set_fault(**knob)
    wait_for(
        lambda: httpx.get(f"{pipeline.simulator_url}/_simulator/faults").json()["faults"] == [],
        "the ingestors to take every fault knob",
        120,
    )
    return len(STORM)


@dataclass
class CommandStorm:
    """What concurrent commands were answered, and what readers saw meanwhile."""

    acknowledged: list[dict[str, Any]] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    observed: list[dict[str, Any]] = field(default_factory=list)


async def concurrent_commands(
    pipeline: Pipeline, component: str, count: int, rng: random.Random
) -> CommandStorm:
    """``count`` pause/resume commands at once, each signed ``chaos-<n>``, while a reader
    keeps asking for the component's state."""
    storm = CommandStorm()
    base = pipeline.api.base_url
    headers = {"Authorization": f"Bearer {pipeline.token}"}
    commands = [rng.choice(["pause", "resume"]) for _ in range(count)]
    done = asyncio.Event()

    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:

        async def send(number: int, command: str) -> None:
            response = await client.put(
                f"/components/{component}/{command}",
                json={"requested_by": f"chaos-{number}", "reason": command},
            )
            if response.status_code == 202:
                storm.acknowledged.append(response.json())
            else:
                storm.refused.append(response.status_code)

        async def read() -> None:
            while not done.is_set():
                response = await client.get(f"/components/{component}")
                if response.status_code == 200:
                    storm.observed.append(response.json())
                await asyncio.sleep(0.05)

        reader = asyncio.create_task(read())
        await asyncio.gather(*(send(n, command) for n, command in enumerate(commands)))
        done.set()
        await reader
    return storm
