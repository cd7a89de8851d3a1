"""Kafka's own consumer benchmark (``org.apache.kafka.tools.ConsumerPerformance``) on a topic:
the fastest a consumer on this broker and machine reads what the stream worker reads.

It reads ``records`` messages from the earliest offset with a fresh group and prints one line
of figures; ``fetch.nMsg.sec`` counts from the first fetch (after the group joined), and
``nMsg.sec`` from the tool's start, its consumer's start included.
"""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass

from bench.limits.kafka_tools import kafka_tools_classpath
from deploy.local.prerequisites import require_java
from shared.settings import Settings

CONSUMER_PERFORMANCE = "org.apache.kafka.tools.ConsumerPerformance"


@dataclass(frozen=True)
class ConsumerPerformanceResult:
    records: int
    records_per_second: float
    """From the tool's start (``nMsg.sec``)."""
    fetch_records_per_second: float
    """From the first fetch (``fetch.nMsg.sec``): the reading alone."""
    megabytes_per_second: float


def parse_consumer_performance(output: str) -> ConsumerPerformanceResult:
    """The tool's header and figures lines (``start.time, end.time, data.consumed.in.MB, ...``)
    read as a mapping."""
    lines = [line for line in output.splitlines() if line.strip()]
    headers = [number for number, line in enumerate(lines) if line.startswith("start.time")]
    if not headers or headers[-1] + 1 >= len(lines):
        raise ValueError(
            f"ConsumerPerformance printed no figures; its output ended with: {output[-500:]}"
        )
    names = [name.strip() for name in lines[headers[-1]].split(",")]
    values = [value.strip() for value in lines[headers[-1] + 1].split(",")]
    figures = dict(zip(names, values, strict=True))
    return ConsumerPerformanceResult(
        records=int(figures["data.consumed.in.nMsg"]),
        records_per_second=float(figures["nMsg.sec"]),
        fetch_records_per_second=float(figures["fetch.nMsg.sec"]),
        megabytes_per_second=float(figures["fetch.MB.sec"]),
    )


def consumer_performance(settings: Settings, topic: str, records: int) -> ConsumerPerformanceResult:
    """Read ``records`` messages of ``topic`` from the start with Kafka's own consumer tool."""
    command = [
        require_java(),
        "-Xmx512m",
        "-cp",
        kafka_tools_classpath(settings),
        CONSUMER_PERFORMANCE,
        "--bootstrap-server",
        settings.kafka_bootstrap_servers,
        "--topic",
        topic,
        "--messages",
        str(records),
        "--group",
        f"bench-consumer-performance-{uuid.uuid4().hex[:8]}",
        "--timeout",
        "60000",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(
            f"ConsumerPerformance exited with {result.returncode}: {result.stderr[-500:]}"
        )
    return parse_consumer_performance(result.stdout)
