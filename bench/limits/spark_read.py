"""Spark reading the worker's topics and discarding them: the most the worker's Spark can
drain, measured on the same broker, topic and session settings as the worker.

``python -m bench.limits.spark_read`` (run by ``spark_read_and_discard`` with the worker's
environment) builds the session exactly as the worker does (``build_spark_session``, the
Kafka source's ``kafka_source_options``, so the same ``maxOffsetsPerTrigger``) and then:

1. streams the topics with a ``foreachBatch`` that only counts each micro-batch, triggered
   ``availableNow`` (back-to-back micro-batches of at most ``maxOffsetsPerTrigger`` records
   until the end offsets seen at the start): the worker's read path without its work;
2. reads the same topics as one batch query and counts them (no micro-batches at all).

It prints one JSON line of epoch-second timestamps; the parent turns them into rates.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame

from services.stream_worker.jars import worker_jars
from services.stream_worker.kafka_source import kafka_source_options
from services.stream_worker.spark import build_spark_session
from shared.settings import Settings
from tests.harness.processes import subprocess_environment

STREAMING_ONLY_OPTIONS = ("maxOffsetsPerTrigger",)


@dataclass(frozen=True)
class SparkReadResult:
    records: int
    """Records the streaming read counted."""
    records_per_second_from_first_batch: float
    records_per_second_from_start: float
    """From the process's start: the session's start included, as for the worker."""
    batches: int
    batch_query_records_per_second: float
    """The batch query's ``count``, from its start to its answer."""


def _measure(settings: Settings) -> dict[str, Any]:
    session = build_spark_session(settings, "coinstream-bench-read-discard", worker_jars(settings))
    session_ready_at = time.time()
    options = kafka_source_options(settings)
    counts: list[int] = []
    first_batch_at: list[float] = []

    def count(batch: DataFrame, batch_id: int) -> None:
        if not first_batch_at:
            first_batch_at.append(time.time())
        counts.append(batch.count())

    with tempfile.TemporaryDirectory(prefix="bench-spark-read-") as checkpoint:
        query = (
            session.readStream.format("kafka")
            .options(**options)
            .load()
            .writeStream.foreachBatch(count)
            .option("checkpointLocation", checkpoint)
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination()
    streamed_at = time.time()
    batch_options = {
        name: value for name, value in options.items() if name not in STREAMING_ONLY_OPTIONS
    }
    batch_started_at = time.time()
    batch_records = session.read.format("kafka").options(**batch_options).load().count()
    batch_finished_at = time.time()
    session.stop()
    return {
        "session_ready_at": session_ready_at,
        "first_batch_at": first_batch_at[0] if first_batch_at else streamed_at,
        "streamed_at": streamed_at,
        "records": sum(counts),
        "batches": len(counts),
        "batch_records": batch_records,
        "batch_started_at": batch_started_at,
        "batch_finished_at": batch_finished_at,
    }


def spark_read_and_discard(environment: dict[str, str]) -> SparkReadResult:
    """Run this module in a process of its own with the worker's ``environment``."""
    started_at = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "bench.limits.spark_read"],
        env=subprocess_environment(environment),
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"the Spark read-and-discard run exited with {result.returncode}: "
            f"{result.stderr[-800:]}"
        )
    times = json.loads(result.stdout.strip().splitlines()[-1])
    records = times["records"]
    return SparkReadResult(
        records=records,
        records_per_second_from_first_batch=records
        / (times["streamed_at"] - times["first_batch_at"]),
        records_per_second_from_start=records / (times["streamed_at"] - started_at),
        batches=times["batches"],
        batch_query_records_per_second=times["batch_records"]
        / (times["batch_finished_at"] - times["batch_started_at"]),
    )


def main() -> None:
    print(json.dumps(_measure(Settings())), flush=True)


if __name__ == "__main__":
    main()
