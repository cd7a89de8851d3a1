"""Both ingestors SIGKILLed during broker outages, several times: every record they had fetched
is in the warehouse exactly once, delivered from their durable spools when they run again.

Each round stops the broker, lets the ingestors poll into their buffers and spools, SIGKILLs
each of them 0 to 0.5 s after it logged a poll as fetched (polls are 1 s apart, so between two
fetches: a page the simulator answered to a process killed before it wrote the poll to its spool
was never fetched, and nothing would be owed for it), and starts them again: while the broker is
still down in even rounds, after it is back in odd ones. Then the broker starts.
"""

from __future__ import annotations

import json
import os
import random
import time

import pytest

from tests.harness.pipeline import Pipeline
from tests.harness.processes import LocalStack
from tests.harness.reckoning import reckon, report
from tests.harness.waiting import wait_for

INGESTOR_KILL_ROUNDS = int(os.environ.get("COINSTREAM_CHAOS_INGESTOR_KILLS", "3"))
INGESTORS = ("asset-ingestor", "exchange-ingestor")
POLLS_DURING_OUTAGE = 5
"""Polls each ingestor fetches with the broker down before it is killed."""
KILL_AFTER_POLL_SECONDS = 0.5

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900 + 120 * INGESTOR_KILL_ROUNDS)]


def fetched_polls(log: str) -> int:
    """How many polls the ingestor's log (every run of it) reports as fetched, hence spooled."""
    fetched = 0
    for line in log.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            fetched += "fetched" in entry.get("message", "") and "poll_id" in entry
    return fetched


def recovered_records(log: str) -> int:
    """Records the ingestor's runs found in its spool at start (each run logs its own)."""
    recovered = 0
    for line in log.splitlines():
        if line.startswith("{"):
            recovered += int(json.loads(line).get("recovered_records", 0))
    return recovered


def wait_polls(pipeline: Pipeline, name: str, polls: int) -> None:
    wait_for(
        lambda: int(pipeline.health(name).get("polls_succeeded", 0)) >= polls,
        f"{name} to poll with the broker down",
        60,
    )


def kill_between_polls(pipeline: Pipeline, name: str, rng: random.Random) -> int:
    """SIGKILL ``name`` just after it spooled a poll; return the records its spool held."""
    process = pipeline.services[name]
    before = fetched_polls(process.log_text())
    wait_for(lambda: fetched_polls(process.log_text()) > before, f"{name} to fetch a poll", 30)
    held = int(pipeline.health(name).get("spooled_records", 0))
    time.sleep(rng.uniform(0, KILL_AFTER_POLL_SECONDS))
    pipeline.kill_service(name)
    return held


def test_ingestors_killed_during_broker_outages(
    pipeline: Pipeline, local_stack: LocalStack
) -> None:
    stack = local_stack
    rng = random.Random(2020)
    pipeline.wait_polling(5)
    kills = 0
    held_at_kills = 0
    for round_number in range(INGESTOR_KILL_ROUNDS):
        stack.kafka.stop()
        polls = {name: int(pipeline.health(name)["polls_succeeded"]) for name in INGESTORS}
        for name in INGESTORS:
            wait_polls(pipeline, name, polls[name] + POLLS_DURING_OUTAGE)
        for name in INGESTORS:
            held_at_kills += kill_between_polls(pipeline, name, rng)
            kills += 1
        restart_during_outage = round_number % 2 == 0
        if restart_during_outage:
            for name in INGESTORS:
                pipeline.start_service(name)
        stack.kafka.start()
        stack.wait_ready()
        if not restart_during_outage:
            for name in INGESTORS:
                pipeline.start_service(name)
        pipeline.wait_polling(10)
    pipeline.settle()
    reckoning = reckon(pipeline)
    report(
        "ingestors SIGKILLed during broker outages",
        reckoning,
        rounds=INGESTOR_KILL_ROUNDS,
        ingestor_kills=kills,
        records_spooled_at_kills=held_at_kills,
        records_recovered=sum(
            recovered_records(pipeline.services[name].log_text()) for name in INGESTORS
        ),
    )
    reckoning.assert_exactly_once()
    assert reckoning.counted_as_lost == 0
    assert held_at_kills > 0, "the kills found nothing spooled: the case tested nothing"
