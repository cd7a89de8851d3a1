"""The stream worker benchmark's measurements, turned into figures beside their limits.

Every figure has a value per run (the backlog's) or per window (freshness, one window of
``--freshness-seconds`` per sink and trigger), says how it was timed, and names the limit it is
compared with; ratios to the limits are figures of their own, so the table shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.limits.consumer_performance import ConsumerPerformanceResult
from bench.limits.spark_read import SparkReadResult
from bench.results import Figure
from bench.worker_backlog import BacklogResult
from bench.worker_freshness import FreshnessResult


@dataclass
class Measurements:
    consumer_performance: list[ConsumerPerformanceResult] = field(default_factory=list)
    spark: list[SparkReadResult] = field(default_factory=list)
    backlog: dict[str, list[tuple[BacklogResult, float]]] = field(default_factory=dict)
    """Per sink, per run: the drain, and Spark's read-and-discard rate of the same run."""
    freshness: dict[tuple[str, float], FreshnessResult] = field(default_factory=dict)
    """Per sink and trigger seconds."""
    failures: list[str] = field(default_factory=list)
    """What failed (a worker that exited, say), in one line each; the rest is still reported."""


BACKLOG_TARGET = ">= 100,000 rows/s and >= 50 % of Spark's read-and-discard"


def limit_figures(measured: Measurements) -> list[Figure]:
    return [
        Figure(
            "kafka_consumer_performance",
            "Kafka ConsumerPerformance on the backlog topic",
            "records/s",
            "Kafka's own consumer tool (kafka-tools, the broker's version) reads the whole "
            "backlog with a fresh group; its fetch.nMsg.sec, from its first fetch.",
            [result.fetch_records_per_second for result in measured.consumer_performance],
        ),
        Figure(
            "spark_read_discard",
            "Spark read-and-discard (streaming, from first batch)",
            "rows/s",
            "The worker's session (build_spark_session) and Kafka source options "
            "(kafka_source_options, the same maxOffsetsPerTrigger) with a foreachBatch that "
            "only counts, triggered availableNow (batches back to back); from the first "
            "batch's start to the last batch's end.",
            [result.records_per_second_from_first_batch for result in measured.spark],
        ),
        Figure(
            "spark_read_discard_from_start",
            "Spark read-and-discard (streaming, from process start)",
            "rows/s",
            "The same, from the start of its Python process (session start included).",
            [result.records_per_second_from_start for result in measured.spark],
        ),
        Figure(
            "spark_batch_count",
            "Spark batch read + count of the same topics",
            "rows/s",
            "spark.read of the same topics with the same options (no maxOffsetsPerTrigger), "
            "count(); from the query's start to its answer, in the same session.",
            [result.batch_query_records_per_second for result in measured.spark],
        ),
    ]


def backlog_figures(sink: str, runs: list[tuple[BacklogResult, float]]) -> list[Figure]:
    results = [result for result, _ in runs]
    ratios = [100 * result.rate_from_first_batch / spark_rate for result, spark_rate in runs]
    return [
        Figure(
            f"backlog_{sink}",
            f"backlog drain, {sink} sink (from first batch)",
            "rows/s",
            "Records written before the worker started, divided by the time from the start of "
            "its first batch with rows (its log line's time minus the batch's duration) to the "
            "end of the batch that committed the log end to its group (lag 0 at the broker).",
            [result.rate_from_first_batch for result in results],
            limit_key="spark_read_discard",
            target=BACKLOG_TARGET,
        ),
        Figure(
            f"backlog_{sink}_share_of_spark",
            f"backlog drain, {sink} sink, share of Spark's read-and-discard",
            "%",
            "The drain rate above over Spark's read-and-discard rate of the same run.",
            ratios,
            target=">= 50 %",
        ),
        Figure(
            f"backlog_{sink}_from_start",
            f"backlog drain, {sink} sink (from process start)",
            "rows/s",
            "The same records over the time from just before the worker's process started "
            "(JVM, Spark session, warehouse checks and query start included) to the same end.",
            [result.rate_from_start for result in results],
            limit_key="spark_read_discard_from_start",
        ),
        Figure(
            f"backlog_{sink}_start_to_first_batch",
            f"worker start to first batch, {sink} sink",
            "s",
            "From just before the worker's process started to the start of its first batch.",
            [result.start_to_first_batch_seconds for result in results],
        ),
        Figure(
            f"backlog_{sink}_batch_seconds",
            f"backlog micro-batch time, {sink} sink",
            "s",
            "Median of the worker's logged batch times during the drain (batches of "
            "maxOffsetsPerTrigger records).",
            [result.median_batch_seconds for result in results],
        ),
        Figure(
            f"backlog_{sink}_python_peak_rss",
            f"worker Python driver peak RSS during the backlog, {sink} sink",
            "MiB",
            "VmHWM of the worker's Python process when the backlog was drained.",
            [result.memory.python_peak_mib for result in results],
        ),
        Figure(
            f"backlog_{sink}_jvm_peak_rss",
            f"worker JVM peak RSS during the backlog, {sink} sink",
            "MiB",
            "VmHWM of the JVM the worker started (Spark's driver and local executor).",
            [result.memory.jvm_peak_mib for result in results],
        ),
    ]


def freshness_figures(
    sink: str, trigger: float, result: FreshnessResult, default: bool
) -> list[Figure]:
    name = f"freshness_{sink}_{trigger:g}s".replace(".", "_")
    which = f"{sink} sink, trigger {trigger:g} s" + (" (local default)" if default else "")
    how = (
        f"Over {len(result.latencies)} polls ({result.missing} never arrived): from handing a "
        "poll's first record to the producer to the answer of the first warehouse query that "
        "returned all its rows (queried every 0.25 s)."
    )
    figures = [
        Figure(
            f"{name}_p{percent}",
            f"freshness p{percent}, {which}",
            "s",
            how,
            [result.percentile(percent)],
            target="< 3 s" if default and percent == 95 else None,
        )
        for percent in (50, 95, 99)
    ]
    if result.steady_batch_seconds is not None:
        figures.append(
            Figure(
                f"{name}_steady_batch",
                f"steady micro-batch (165 assets + 40 exchanges), {which}",
                "s",
                "Median of the worker's logged `batch N: ... in X s` times for batches with "
                "rows, after the first two.",
                [result.steady_batch_seconds],
                target="< 0.5 s",
            )
        )
    return figures


def report(
    measured: Measurements,
    default_trigger: float,
    max_records_per_batch: int,
    settings: dict[str, Any],
) -> tuple[list[Figure], list[str]]:
    """The figures, and notes that say what bounds them."""
    figures = limit_figures(measured)
    for sink, runs in measured.backlog.items():
        figures += backlog_figures(sink, runs)
    for (sink, trigger), result in measured.freshness.items():
        figures += freshness_figures(sink, trigger, result, trigger == default_trigger)
    trigger_cap = max_records_per_batch / default_trigger
    notes = [
        f"A processingTime trigger waits for the next interval when a batch ends early: at the "
        f"local default ({default_trigger:g} s, maxOffsetsPerTrigger "
        f"{max_records_per_batch:,}) the worker cannot drain faster than "
        f"{trigger_cap:,.0f} rows/s, whatever a batch costs. The read-and-discard limit runs "
        "its batches back to back (availableNow).",
        "Setup: "
        + ", ".join(f"{name} {value}" for name, value in settings.items())
        + ". Each worker starts from a fresh consumer group, checkpoint and dataset; the "
        "datasets are dropped after each worker.",
    ]
    notes += [f"Failed, so missing above: {failure}" for failure in measured.failures]
    return [figure for figure in figures if figure.values], notes
