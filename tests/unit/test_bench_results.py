"""The benchmarks' bookkeeping: the producer tool's version and output, figures and the page."""

from __future__ import annotations

import os

import pytest

from bench.limits.kafka_tools import KAFKA_TOOLS_POM, parse_producer_performance
from bench.process_memory import peak_rss_mib, process_tree, rss_mib
from bench.results import KAFKA_BROKER_POM, Figure, figures_table, pom_property, replace_section

PRODUCER_PERFORMANCE_OUTPUT = """\
72901 records sent, 14571.2 records/sec (7.94 MB/sec), 1529.4 ms avg latency, 2436.0 ms max latency.
100000 records sent, 14449.1 records/sec (7.87 MB/sec), 1873.43 ms avg latency, 2804.00 ms max \
latency, 1925 ms 50th, 2677 ms 95th, 2781 ms 99th, 2801 ms 99.9th.
"""


def test_the_producer_tool_is_the_brokers_kafka_version() -> None:
    """A limit measured with another Kafka version's client would not be this broker's."""
    assert pom_property(KAFKA_TOOLS_POM, "kafka.version") == pom_property(
        KAFKA_BROKER_POM, "kafka.version"
    )


def test_the_producer_tools_summary_is_its_last_line() -> None:
    result = parse_producer_performance(PRODUCER_PERFORMANCE_OUTPUT)
    assert result.records == 100_000
    assert result.records_per_second == 14449.1
    assert result.megabytes_per_second == 7.87
    assert result.average_latency_ms == 1873.43


def test_no_summary_from_the_producer_tool_says_what_it_printed() -> None:
    with pytest.raises(ValueError, match="no summary line; its output ended with: boom"):
        parse_producer_performance("boom")


def test_a_figure_is_the_median_and_range_of_its_runs_beside_its_limit() -> None:
    limit = Figure("tool", "the tool", "records/s", "its own summary", [100.0, 300.0, 200.0])
    ours = Figure("ours", "ours", "records/s", "counted", [10.0, 40.0, 20.0], limit_key="tool")
    assert (ours.median, ours.low, ours.high) == (20.0, 10.0, 40.0)
    assert ours.summary()["median"] == 20.0
    table = figures_table([ours, limit])
    row = "| ours | 20.0 records/s | 10.0 - 40.0 records/s | the tool: 200 records/s (this is 10 % "
    assert row + "of it) |" in table


def test_a_section_is_replaced_between_its_markers_and_nothing_else_changes() -> None:
    page = (
        "# Benchmarks\n\nintro\n\n## Ingest\n\n<!-- bench:ingest -->\nold\n<!-- /bench:ingest -->\n"
    )
    page += "\n## Worker\n\nwritten by hand\n"
    updated = replace_section(page, "ingest", "new", "Ingest")
    assert updated == page.replace("\nold\n", "\nnew\n")


def test_a_missing_section_is_added_at_the_end_under_its_title() -> None:
    updated = replace_section("# Benchmarks\n\nintro\n", "stack", "figures", "Stack")
    section = "<!-- bench:stack -->\nfigures\n<!-- /bench:stack -->\n"
    assert updated == "# Benchmarks\n\nintro\n\n## Stack\n\n" + section


def test_this_process_has_a_peak_rss_at_least_its_current_one() -> None:
    pid = os.getpid()
    assert process_tree(pid)[0] == pid
    assert peak_rss_mib(pid) >= rss_mib(pid) > 0
