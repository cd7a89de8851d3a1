"""Stream worker figures beside the limits of the parts it runs on, measured in the same run.

Starts a fresh broker and BigQuery emulator on benchmark ports, then:

1. backlog: writes ``--backlog`` real-sized asset records (whole polls) to a topic BEFORE any
   worker starts; then, ``--runs`` times on that same topic: Kafka's ConsumerPerformance reads
   it, Spark reads and discards it with the worker's session and source settings, and one
   worker per ``--sink`` drains it from a fresh group, checkpoint and dataset, timed from its
   start and from its first batch to the commit of the log end (``worker_backlog``), with the
   peak RSS of its Python driver and JVM;
2. freshness: per sink, one worker at each ``--trigger`` (the default trigger and 1 s unless
   given), on topics of their own, each for ``--freshness-seconds`` of polls published as the
   ingestors publish them; p50/p95/p99 from publish to queryable (``worker_freshness``), and
   the time of a steady micro-batch from the worker's log.

Figures go to ``docs/benchmarks/stream_worker.json`` and the stream worker's section of
``docs/benchmarks.md`` (``bench.results``), each as median and spread of the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import time

from bench.limits.consumer_performance import consumer_performance
from bench.limits.kafka_tools import kafka_tools_classpath
from bench.limits.spark_read import spark_read_and_discard
from bench.results import figures_table, machine_info, publish
from bench.worker_backlog import drain_backlog
from bench.worker_freshness import measure_freshness
from bench.worker_input import ASSETS_PER_POLL, EXCHANGES_PER_POLL, prefill
from bench.worker_process import BenchWorker
from bench.worker_report import Measurements, report
from shared.kafka import ensure_topics, pipeline_topics
from shared.settings import PROJECT_ROOT, Settings
from tests.harness.processes import LocalStack, settings_from

BENCH_STATE_DIR = PROJECT_ROOT / ".state" / "bench-worker"
WORKER_PORT = 38103
ENVIRONMENT = {
    "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:39192",
    "COINSTREAM_KAFKA_CONTROLLER_PORT": "39193",
    "COINSTREAM_BIGQUERY_EMULATOR_URL": "http://127.0.0.1:39150",
    "COINSTREAM_BIGQUERY_EMULATOR_GRPC_PORT": "39160",
    "COINSTREAM_STATE_DIR": str(BENCH_STATE_DIR / "stack"),
}
SINKS = ("merge", "storage-write")
FAST_TRIGGER = 1.0


def topics_named(prefix: str) -> dict[str, str]:
    return {
        "COINSTREAM_TOPIC_ASSETS": f"{prefix}.assets",
        "COINSTREAM_TOPIC_EXCHANGES": f"{prefix}.exchanges",
        "COINSTREAM_TOPIC_HISTORY": f"{prefix}.history",
        "COINSTREAM_TOPIC_DEADLETTER": f"{prefix}.deadletter",
    }


class Progress:
    """Timestamped progress lines, so a long run says where it is."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed / 60:5.1f} min] {message}", flush=True)


def sink_environment(sink: str) -> dict[str, str]:
    """The worker's sink setting; refuses a sink this checkout's worker does not have yet."""
    if sink != "merge" and "stream_sink" not in Settings.model_fields:
        raise SystemExit(
            f"coinstream: --sink {sink}: this worker has no COINSTREAM_STREAM_SINK setting yet; "
            "measure with --sink merge"
        )
    return {"COINSTREAM_STREAM_SINK": sink}


def measure_backlog(
    arguments: argparse.Namespace, progress: Progress, measured: Measurements
) -> tuple[int, float]:
    """Prefill once, then ``--runs`` rounds of the limits and each sink's worker on it."""
    environment = ENVIRONMENT | topics_named("bench.backlog")
    settings = settings_from(environment)
    asyncio.run(ensure_topics(settings, pipeline_topics(settings)))
    progress(f"prefilling {arguments.backlog:,} asset records (no worker is running)")
    written, seconds, message_bytes = asyncio.run(
        prefill(
            settings,
            arguments.backlog,
            lambda count, elapsed: progress(f"  prefill: {count:,} records in {elapsed:.0f} s"),
        )
    )
    progress(
        f"prefilled {written:,} records of {message_bytes:.0f} B in {seconds:.0f} s "
        f"({written / seconds:,.0f}/s)"
    )
    for run in range(1, arguments.runs + 1):
        progress(f"run {run}/{arguments.runs}: Kafka ConsumerPerformance")
        kafka = consumer_performance(settings, settings.topic_assets, written)
        measured.consumer_performance.append(kafka)
        progress(f"  {kafka.fetch_records_per_second:,.0f} records/s (from its first fetch)")
        progress(f"run {run}/{arguments.runs}: Spark read-and-discard")
        spark = spark_read_and_discard(environment)
        if spark.records != written:
            raise RuntimeError(f"Spark counted {spark.records:,} records, not {written:,}")
        measured.spark.append(spark)
        progress(
            f"  streaming {spark.records_per_second_from_first_batch:,.0f} rows/s from its first "
            f"batch ({spark.batches} batches); batch count "
            f"{spark.batch_query_records_per_second:,.0f} rows/s"
        )
        for sink in arguments.sink:
            progress(f"run {run}/{arguments.runs}: the worker ({sink}) drains the backlog")
            worker = BenchWorker(
                f"r{run}_{sink.replace('-', '_')}",
                environment,
                BENCH_STATE_DIR,
                WORKER_PORT,
                sink_environment(sink),
            )
            try:
                result = drain_backlog(worker, written, lambda line: progress(f"  {line}"))
            except RuntimeError as error:
                failure = f"run {run}, {sink} sink, backlog: {str(error).splitlines()[0]}"
                measured.failures.append(failure)
                progress(f"  FAILED: {failure} (see {worker.process.log_path})")
                continue
            finally:
                worker.stop()
                worker.drop_dataset()
            spark_rate = spark.records_per_second_from_first_batch
            measured.backlog.setdefault(sink, []).append((result, spark_rate))
            progress(
                f"  {result.rate_from_first_batch:,.0f} rows/s from its first batch "
                f"({result.batches} batches, median {result.median_batch_seconds:.2f} s), "
                f"{result.rate_from_start:,.0f} rows/s from its start; "
                f"{result.rate_from_first_batch / spark_rate:.0%} of Spark's read-and-discard; "
                f"peak RSS Python {result.memory.python_peak_mib:.0f} MiB, "
                f"JVM {result.memory.jvm_peak_mib:.0f} MiB"
            )
    return written, message_bytes


def measure_freshness_all(
    arguments: argparse.Namespace, progress: Progress, measured: Measurements
) -> None:
    for sink in arguments.sink:
        for trigger in arguments.trigger:
            name = f"fresh_{sink.replace('-', '_')}_{trigger:g}s".replace(".", "_")
            environment = ENVIRONMENT | topics_named(f"bench.{name}")
            overrides = sink_environment(sink) | {
                "COINSTREAM_STREAM_TRIGGER_SECONDS": f"{trigger:g}"
            }
            progress(
                f"freshness ({sink}, trigger {trigger:g} s): {arguments.freshness_seconds:.0f} s "
                f"of polls every ~{arguments.poll_interval:g} s"
            )
            worker = BenchWorker(name, environment, BENCH_STATE_DIR, WORKER_PORT, overrides)
            try:
                result = measure_freshness(
                    worker,
                    arguments.freshness_seconds,
                    arguments.poll_interval,
                    lambda line: progress(f"  {line}"),
                )
            except RuntimeError as error:
                failure = f"{sink} sink, trigger {trigger:g} s: {str(error).splitlines()[0]}"
                measured.failures.append(failure)
                progress(f"  FAILED: {failure} (see {worker.process.log_path})")
                continue
            finally:
                worker.stop()
                worker.drop_dataset()
            measured.freshness[(sink, trigger)] = result
            steady = result.steady_batch_seconds
            progress(
                f"  p50 {result.percentile(50):.2f} s, p95 {result.percentile(95):.2f} s, "
                f"p99 {result.percentile(99):.2f} s over {len(result.latencies)} polls "
                f"({result.missing} missing); steady batch "
                + (f"{steady:.2f} s" if steady is not None else "n/a")
            )


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        help="backlog rounds on the same topic (default 3); 0 skips the backlog",
    )
    parser.add_argument(
        "--backlog", type=int, default=1_000_000, help="asset records written before any worker"
    )
    parser.add_argument(
        "--freshness-seconds",
        type=float,
        default=300.0,
        help="seconds of publishing per sink and trigger (default 300); 0 skips freshness",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=2.5, help="mean seconds between published polls"
    )
    parser.add_argument(
        "--sink",
        action="append",
        choices=SINKS,
        help="a sink to measure (COINSTREAM_STREAM_SINK); repeat for both side by side "
        "(default merge; each extra sink adds about 13 min at the defaults)",
    )
    parser.add_argument(
        "--trigger",
        action="append",
        type=float,
        help="a trigger (seconds) to measure freshness at; repeat for several "
        f"(default: the local default and {FAST_TRIGGER:g} s)",
    )
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write docs/benchmarks/stream_worker.json and the docs/benchmarks.md section",
    )
    arguments = parser.parse_args()
    arguments.sink = list(dict.fromkeys(arguments.sink or ["merge"]))
    default_trigger = settings_from(ENVIRONMENT).stream_trigger_seconds
    arguments.trigger = list(dict.fromkeys(arguments.trigger or [default_trigger, FAST_TRIGGER]))
    for sink in arguments.sink:
        sink_environment(sink)
    return arguments


def main() -> int:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    arguments = parse_arguments()
    progress = Progress()
    machine = machine_info()
    shutil.rmtree(BENCH_STATE_DIR, ignore_errors=True)
    kafka_tools_classpath(settings_from(ENVIRONMENT))  # fetched once, before any clock runs
    local_stack = LocalStack(ENVIRONMENT, BENCH_STATE_DIR)
    progress("starting the broker and the BigQuery emulator")
    measured = Measurements()
    try:
        # Inside the try: a broker that fails to start must not leave the emulator running.
        local_stack.start()
        written, message_bytes = 0, 0.0
        if arguments.runs > 0:
            written, message_bytes = measure_backlog(arguments, progress, measured)
        if arguments.freshness_seconds > 0:
            measure_freshness_all(arguments, progress, measured)
    finally:
        local_stack.stop()
    worker_settings = settings_from(ENVIRONMENT)
    setup = {
        "backlog records": f"{written:,} ({message_bytes:.0f} B each)" if written else "none",
        "backlog runs": arguments.runs,
        "sinks": "/".join(arguments.sink),
        "freshness triggers": " and ".join(f"{trigger:g} s" for trigger in arguments.trigger),
        "maxOffsetsPerTrigger": f"{worker_settings.stream_max_records_per_batch:,}",
        "Spark master": worker_settings.spark_master_url,
        "driver memory": worker_settings.spark_driver_memory,
        "partitions": worker_settings.topic_partitions,
        "freshness window": f"{arguments.freshness_seconds:g} s per sink and trigger",
        "polls": f"{ASSETS_PER_POLL} assets + {EXCHANGES_PER_POLL} exchanges every "
        f"~{arguments.poll_interval:g} s",
    }
    figures, notes = report(
        measured,
        worker_settings.stream_trigger_seconds,
        worker_settings.stream_max_records_per_batch,
        setup,
    )
    print(figures_table(figures))
    for note in notes:
        print(note)
    if arguments.write:
        path = publish("stream_worker", "Stream worker", figures, notes, setup, machine)
        progress(f"wrote {path} and the stream worker's section of docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
