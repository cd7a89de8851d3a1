"""The warehouse unreachable for 30 s (the worker reports FAILED, then recovers), and the broker
stopped and restarted while the ingestors poll and the worker consumes: every record served is
in the warehouse exactly once."""

from __future__ import annotations

import functools
import time

import pytest

from tests.harness.pipeline import Pipeline
from tests.harness.processes import LocalStack
from tests.harness.reckoning import reckon, report
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.chaos

EMULATOR_OUTAGES = 2
EMULATOR_DOWN_SECONDS = 30
BROKER_RESTARTS = 3
BROKER_DOWN_SECONDS = 15


def writing_again(pipeline: Pipeline, batches_before: int) -> bool:
    health = pipeline.worker.health()
    return health.get("state") == "RUNNING" and int(health.get("batches", 0)) > batches_before


def test_warehouse_outages(pipeline: Pipeline, local_stack: LocalStack) -> None:
    stack = local_stack
    pipeline.wait_polling(5)
    failed_seen = 0
    for _ in range(EMULATOR_OUTAGES):
        batches_before = int(pipeline.worker.health().get("batches", 0))
        stack.bigquery.stop()
        down_at = time.monotonic()
        wait_for(
            lambda: pipeline.worker.health().get("state") == "FAILED",
            "the worker to report FAILED with the warehouse gone",
            EMULATOR_DOWN_SECONDS + 60,
        )
        failed_seen += 1
        time.sleep(max(0.0, EMULATOR_DOWN_SECONDS - (time.monotonic() - down_at)))
        stack.bigquery.start()
        stack.wait_ready()
        wait_for(
            functools.partial(writing_again, pipeline, batches_before),
            "the worker to recover and write again",
            300,
        )
    pipeline.settle()
    reckoning = reckon(pipeline)
    report(
        "warehouse outages",
        reckoning,
        emulator_outages=EMULATOR_OUTAGES,
        emulator_down_seconds=EMULATOR_DOWN_SECONDS,
        worker_failed_reports=failed_seen,
    )
    reckoning.assert_exactly_once()


def test_broker_restarts(pipeline: Pipeline, local_stack: LocalStack) -> None:
    stack = local_stack
    pipeline.resume_ingestors()
    pipeline.wait_polling(5)
    for _ in range(BROKER_RESTARTS):
        stack.kafka.stop()
        time.sleep(BROKER_DOWN_SECONDS)
        stack.kafka.start()
        stack.wait_ready()
        pipeline.wait_polling(20)
    pipeline.settle()
    reckoning = reckon(pipeline)
    report(
        "broker restarts",
        reckoning,
        broker_restarts=BROKER_RESTARTS,
        broker_down_seconds=BROKER_DOWN_SECONDS,
    )
    reckoning.assert_exactly_once()
