"""The stream worker benchmark reads the worker's log lines, Kafka's consumer tool and its own
latencies correctly, and times the backlog from the worker's start, not from publishing."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from bench.limits.consumer_performance import (
    ConsumerPerformanceResult,
    parse_consumer_performance,
)
from bench.limits.spark_read import SparkReadResult
from bench.worker_backlog import BacklogResult
from bench.worker_freshness import percentile
from bench.worker_process import WorkerMemory, parse_batch_lines, steady_batch_seconds
from bench.worker_report import Measurements, report


def log_line(time: str, message: str) -> str:
    return json.dumps({"time": time, "level": "INFO", "logger": "w", "message": message})


def test_batch_lines_are_read_with_their_start_and_rows() -> None:
    log = "\n".join(
        [
            "not json: a JVM warning",
            log_line("2026-11-28 10:00:00,000", "streaming a and b into c every 5 s"),
            log_line("2026-11-28 10:00:05,500", "batch 0: 0 assets, 0 exchanges in 0.50 s"),
            log_line(
                "2026-11-28 10:00:10,250",
                "batch 1: 165 assets, 40 exchanges, 0 asset_history, 1 quarantine in 2.25 s",
            ),
        ]
    )
    batches = parse_batch_lines(log)
    assert [(batch.batch_id, batch.rows) for batch in batches] == [(0, 0), (1, 206)]
    ended = datetime(2026, 11, 28, 10, 0, 10, 250_000).timestamp()
    assert batches[1].ended_at == pytest.approx(ended)
    assert batches[1].started_at == pytest.approx(ended - 2.25)


def test_a_steady_batch_skips_empty_and_warm_up_batches() -> None:
    lines = [log_line("2026-11-28 10:00:00,000", "batch 0: 0 assets in 9.00 s")]
    lines += [
        log_line(f"2026-11-28 10:00:0{n},000", f"batch {n}: 165 assets in {seconds} s")
        for n, seconds in enumerate(["5.0", "3.0", "0.4", "0.6", "0.5"], start=1)
    ]
    assert steady_batch_seconds(parse_batch_lines("\n".join(lines))) == pytest.approx(0.5)
    assert steady_batch_seconds(parse_batch_lines("\n".join(lines[:3]))) is None


def test_consumer_performance_figures_are_read_by_name() -> None:
    output = (
        "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
        "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n"
        "2026-11-28 10:00:00:000, 2026-11-28 10:00:03:000, 543.2, 181.1, 1000065, 333355.0, "
        "1500, 1500, 362.1, 666710.0\n"
    )
    result = parse_consumer_performance(output)
    assert result.records == 1_000_065
    assert result.records_per_second == 333_355.0
    assert result.fetch_records_per_second == 666_710.0


def test_consumer_performance_without_figures_says_what_it_printed() -> None:
    with pytest.raises(ValueError, match=r"no figures.*Exception"):
        parse_consumer_performance("Exception in thread main\n")


def test_percentiles_are_inclusive_of_the_extremes() -> None:
    latencies = [float(n) for n in range(1, 101)]
    assert percentile(latencies, 50) == pytest.approx(50.5)
    assert percentile(latencies, 99) == pytest.approx(99.01)
    assert percentile([2.0], 95) == 2.0


def test_the_backlog_is_reported_beside_spark_and_bounded_by_the_trigger() -> None:
    drained = BacklogResult(
        records=1_000_000,
        seconds_from_start=80.0,
        seconds_from_first_batch=50.0,
        start_to_first_batch_seconds=30.0,
        batches=10,
        median_batch_seconds=5.0,
        median_batch_rows=100_000,
        memory=WorkerMemory(250.0, 1400.0),
    )
    spark = SparkReadResult(1_000_000, 100_000.0, 40_000.0, 10, 120_000.0)
    kafka = ConsumerPerformanceResult(1_000_000, 500_000.0, 900_000.0, 400.0)
    measured = Measurements([kafka], [spark], {"merge": [(drained, 100_000.0)]})
    measured.failures.append("run 2, storage-write sink, backlog: the worker exited")
    figures, notes = report(measured, 5.0, 100_000, {"runs": 1})
    by_key = {figure.key: figure for figure in figures}
    assert by_key["backlog_merge"].values == [20_000]
    assert by_key["backlog_merge"].limit_key == "spark_read_discard"
    assert by_key["backlog_merge_share_of_spark"].values == [pytest.approx(20.0)]
    assert by_key["backlog_merge_from_start"].values == [12_500]
    assert by_key["backlog_merge_jvm_peak_rss"].values == [1400.0]
    assert by_key["kafka_consumer_performance"].values == [900_000.0]
    assert "cannot drain faster than 20,000 rows/s" in notes[0]
    assert (
        notes[-1]
        == "Failed, so missing above: run 2, storage-write sink, backlog: the worker exited"
    )
