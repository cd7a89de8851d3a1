"""CoinCap fault storms, repeated; then ingestors and control restarted while paused, repeated:
they stay paused (nothing polled, nothing produced) and resume when told."""

from __future__ import annotations

import httpx
import pytest

from tests.harness.broker import topic_end_total
from tests.harness.faults import (
    STORM_ABSURD_RECORDS,
    STORM_OVERSIZED_BODIES,
    STORM_POISON_RECORDS,
    STORM_RECORDS_WITHOUT_ID,
    fault_storm,
)
from tests.harness.pipeline import Pipeline
from tests.harness.reckoning import reckon, report

pytestmark = pytest.mark.chaos

STORMS = 5
PAUSED_RESTARTS = 3
INGESTORS = ("asset-ingestor", "exchange-ingestor")


def test_repeated_coincap_fault_storms(pipeline: Pipeline) -> None:
    knobs = 0
    for _ in range(STORMS):
        knobs += fault_storm(pipeline)
        pipeline.wait_polling(5)
    pipeline.settle()
    reckoning = reckon(pipeline)
    report("CoinCap fault storms", reckoning, storms=STORMS, knobs=knobs)
    assert reckoning.served_without_id == STORM_RECORDS_WITHOUT_ID * STORMS
    assert reckoning.served_absurd == STORM_ABSURD_RECORDS * STORMS
    assert reckoning.served_poison == STORM_POISON_RECORDS * STORMS
    assert reckoning.refused_too_large == STORM_OVERSIZED_BODIES * STORMS
    reckoning.assert_exactly_once()


def served_count(pipeline: Pipeline) -> int:
    pages = httpx.get(f"{pipeline.simulator_url}/_simulator/served", timeout=60).json()["pages"]
    return len(pages)


def test_ingestors_and_control_restarted_while_paused_stay_paused(
    pipeline: Pipeline,
) -> None:
    pipeline.settle()  # both ingestors paused, everything delivered
    settings = pipeline.settings
    topics = [settings.topic_assets, settings.topic_exchanges]
    for _ in range(PAUSED_RESTARTS):
        served = served_count(pipeline)
        produced = [topic_end_total(settings, topic) for topic in topics]
        for name in (*INGESTORS, "control"):
            pipeline.restart_service(name)
        pipeline.wait_polling(5)
        for name in INGESTORS:
            assert pipeline.health(name)["state"] == "PAUSED", pipeline.health(name)
            assert pipeline.api.component(name)["desired_state"] == "PAUSED"
        assert served_count(pipeline) == served, "a paused ingestor polled after a restart"
        assert [topic_end_total(settings, topic) for topic in topics] == produced
    pipeline.resume_ingestors()
    pipeline.wait_polling(5)
    assert served_count(pipeline) > served, "the ingestors did not resume"
    pipeline.settle()
    reckoning = reckon(pipeline)
    report("restarted while paused", reckoning, restarts_of_each=PAUSED_RESTARTS)
    reckoning.assert_exactly_once()
