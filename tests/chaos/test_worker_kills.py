"""The stream worker SIGKILLed over and over, at random and at each named fault point, while
both ingestors keep polling: every record served is in the warehouse exactly once."""

from __future__ import annotations

import os
import random

import pytest

from tests.harness.faults import kill_worker_at_fault_point, kill_worker_at_random_points
from tests.harness.pipeline import Pipeline
from tests.harness.reckoning import reckon, report

RANDOM_KILLS = int(os.environ.get("COINSTREAM_CHAOS_WORKER_KILLS", "20"))
FAULT_POINTS = ("after-merge", "after-commit")

SECONDS_PER_KILL = 180
"""A kill, the Spark start after it and the batches it replays, on a heavily loaded machine
(a start alone took up to three minutes at a load average of 20)."""
TIMEOUT_SECONDS = 600 + SECONDS_PER_KILL * (RANDOM_KILLS + 2 * len(FAULT_POINTS))
"""The pipeline's start and the settling, plus each kill (a fault point kills twice: the
restart with the fault point, and the one without it)."""

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(TIMEOUT_SECONDS)]


def test_random_kills_and_each_fault_point(pipeline: Pipeline) -> None:
    pipeline.wait_polling(5)
    kill_worker_at_random_points(pipeline, RANDOM_KILLS, random.Random(2026))
    for point in FAULT_POINTS:
        kill_worker_at_fault_point(pipeline, point)
    pipeline.settle()
    reckoning = reckon(pipeline)
    report(
        "worker SIGKILLed at random points and at each fault point",
        reckoning,
        random_kills=RANDOM_KILLS,
        fault_point_kills=len(FAULT_POINTS),
        kills=pipeline.worker_kills,
    )
    assert reckoning.expected > 0
    reckoning.assert_exactly_once()
