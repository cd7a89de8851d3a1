"""A long run (``COINSTREAM_CHAOS_LONG_MINUTES``, default 10) with a CoinCap fault storm now and
then, every process's resident memory sampled: none grows without bound, and every record
served is in the warehouse exactly once."""

from __future__ import annotations

import os
import random
import time

import pytest

from tests.chaos.memory import grows_without_bound, tree_rss_mib
from tests.harness.faults import fault_storm
from tests.harness.pipeline import Pipeline
from tests.harness.reckoning import reckon, report

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(0)]

MINUTES = float(os.environ.get("COINSTREAM_CHAOS_LONG_MINUTES", "10"))
SAMPLE_SECONDS = 10
STORM_EVERY_SAMPLES = 12


def test_a_long_run_stays_exact_and_bounded_in_memory(pipeline: Pipeline) -> None:
    rng = random.Random(7)
    samples: dict[str, list[float]] = {}
    deadline = time.monotonic() + MINUTES * 60
    sample = 0
    while time.monotonic() < deadline:
        for name, pid in pipeline.pids().items():
            rss = tree_rss_mib(pid)
            if rss is not None:
                samples.setdefault(name, []).append(rss)
        sample += 1
        if sample % STORM_EVERY_SAMPLES == 0 and rng.random() < 0.5:
            fault_storm(pipeline)
        pipeline.wait_polling(SAMPLE_SECONDS)
    pipeline.settle()
    reckoning = reckon(pipeline)
    peaks = {
        name: {
            "first_mib": round(values[0]),
            "peak_mib": round(max(values)),
            "last_mib": round(values[-1]),
        }
        for name, values in samples.items()
    }
    growing = [name for name, values in samples.items() if grows_without_bound(values)]
    report("long run", reckoning, minutes=MINUTES, samples=sample, memory=peaks, growing=growing)
    reckoning.assert_exactly_once()
    assert growing == [], peaks
