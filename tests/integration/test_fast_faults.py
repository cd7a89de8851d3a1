"""The fault suite's fast cases, which ``make test`` runs (``make chaos`` too): a few worker
kills, one CoinCap fault storm, 100 concurrent control commands, and no secret anywhere the stack
writes or answers, even after the kills and the storm.

The cases share one pipeline of their own (the fault suite's, ``tests.harness.faults``), in the
order written; each reckoning holds the warehouse against every record the simulator served so
far, so a case finds the pipeline as the one before it left it or fresh, and checks the same.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest

from tests.harness.faults import (
    STORM_ABSURD_RECORDS,
    STORM_OVERSIZED_BODIES,
    STORM_POISON_RECORDS,
    STORM_RECORDS_WITHOUT_ID,
    concurrent_commands,
    fault_storm,
    fault_suite_pipeline,
    kill_worker_at_random_points,
)
from tests.harness.pipeline import INGESTORS, Pipeline
from tests.harness.processes import LocalStack
from tests.harness.reckoning import reckon, report
from tests.harness.waiting import wait_for

WORKER_KILLS = 2


@pytest.fixture(scope="module")
def pipeline(local_stack: LocalStack) -> Iterator[Pipeline]:
    with fault_suite_pipeline("fast-faults") as running:
        yield running


def test_the_worker_killed_at_random_points_loses_and_duplicates_nothing(
    pipeline: Pipeline,
) -> None:
    # Seed 4 kills 3.5 s into a running query, then 5.9 s after the restart, while Spark starts
    # (random.Random(4) drawn as kill_worker_at_random_points draws): both kinds of point in
    # little time; `make chaos` draws 20 (tests/chaos/test_worker_kills.py).
    rng = random.Random(4)
    pipeline.wait_polling(5)
    # The last restart is not waited for: settling pauses the ingestors while Spark starts,
    # then waits until the restarted worker has processed every record.
    kill_worker_at_random_points(pipeline, WORKER_KILLS, rng, wait_running=False)
    pipeline.settle()
    reckoning = reckon(pipeline)
    report("fast: worker SIGKILLed at random points", reckoning, kills=pipeline.worker_kills)
    assert reckoning.expected > 0
    reckoning.assert_exactly_once()


def test_a_coincap_fault_storm_loses_nothing_it_does_not_count(pipeline: Pipeline) -> None:
    pipeline.resume_ingestors()
    knobs = fault_storm(pipeline)
    pipeline.wait_polling(3)
    pipeline.settle()
    reckoning = reckon(pipeline)
    report("fast: one CoinCap fault storm", reckoning, knobs=knobs)
    assert reckoning.served_without_id == STORM_RECORDS_WITHOUT_ID
    assert reckoning.served_absurd == STORM_ABSURD_RECORDS
    assert reckoning.served_poison == STORM_POISON_RECORDS
    assert reckoning.refused_too_large == STORM_OVERSIZED_BODIES
    reckoning.assert_exactly_once()


def test_concurrent_commands_end_in_the_last_acknowledged_state(pipeline: Pipeline) -> None:
    storm = asyncio.run(concurrent_commands(pipeline, "asset-ingestor", 100, random.Random(5)))
    assert storm.acknowledged, f"no command acknowledged: {storm.refused}"
    assert set(storm.refused) <= {409}, storm.refused
    final = pipeline.api.component("asset-ingestor")
    # The stored state is the one the last acknowledged change asked for.
    changes = [ack for ack in storm.acknowledged if ack["changed"]]
    last = max(changes, key=lambda ack: ack["requested_at"]) if changes else None
    if last is not None:
        assert final["requested_by"] == last["requested_by"], (final, last)
        assert final["desired_state"] == last["desired_state"], (final, last)
    # Never a state its requester did not ask for: pause is PAUSED, resume is RUNNING.
    asked = {f"chaos-{n}": None for n in range(100)}
    for ack in storm.acknowledged:
        asked[ack["requested_by"]] = ack["desired_state"]
        expected = "PAUSED" if ack["command"] == "pause" else "RUNNING"
        assert ack["desired_state"] == expected, ack
    contradictions = [
        seen
        for seen in storm.observed
        if seen["requested_by"] in asked
        and asked[seen["requested_by"]] not in (None, seen["desired_state"])
    ]
    report(
        "fast: 100 concurrent control commands",
        acknowledged=len(storm.acknowledged),
        changed=len(changes),
        refused=len(storm.refused),
        reads=len(storm.observed),
        contradictions=len(contradictions),
    )
    assert contradictions == []


def test_no_secret_in_any_log_metric_health_or_error(pipeline: Pipeline) -> None:
    """The API key and the control token, both in use, appear nowhere the stack writes."""
    # Error paths too: a refused command, a wrong token, CoinCap errors in the ingestors' health.
    pipeline.set_fault(mode="server_error", count=12, status=502)
    pipeline.resume_ingestors()
    wait_for(
        lambda: any("502" in str(pipeline.health(name).get("last_error")) for name in INGESTORS),
        "an ingestor to report CoinCap's 502",
        120,
    )
    wrong = pipeline.api.command("asset-ingestor", "pause", token="x" * 32)
    assert wrong.status_code in (401, 403), wrong.text
    outputs = {**pipeline.outputs(), "refused command": wrong.text}
    leaks = pipeline.secret_leaks(outputs)
    report("fast: secrets in outputs", places_checked=len(outputs), leaks=len(leaks))
    assert leaks == []
