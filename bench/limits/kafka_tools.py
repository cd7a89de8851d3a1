"""Kafka's own performance tools (the ``kafka-tools`` jar), at the broker's version.

The jars come from Maven Central through ``deploy/local/maven/kafka-tools/pom.xml`` the first
time a benchmark needs them, the way ``make setup`` fetches the broker's; after that nothing
needs the network. ``producer_performance`` runs ``org.apache.kafka.tools.ProducerPerformance``
and reads its summary line.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deploy.local.maven import MAVEN_DIR, fetch_maven_jars
from deploy.local.prerequisites import require_java
from shared.settings import Settings

KAFKA_TOOLS_POM = MAVEN_DIR / "kafka-tools" / "pom.xml"
PRODUCER_PERFORMANCE = "org.apache.kafka.tools.ProducerPerformance"
# "500000 records sent, 112410.5 records/sec (61.12 MB/sec), 245.3 ms avg latency, ..."
SUMMARY_LINE = re.compile(
    r"^(?P<records>\d+) records sent, (?P<rate>[\d.]+) records/sec "
    r"\((?P<megabytes>[\d.]+) MB/sec\), (?P<latency>[\d.]+) ms avg latency",
    re.MULTILINE,
)


def kafka_tools_jars_dir(settings: Settings) -> Path:
    return settings.cache_dir / "jars" / "kafka-tools"


def kafka_tools_classpath(settings: Settings) -> str:
    """The tools' classpath, fetching the jars first if this pom's have not been fetched."""
    jars = kafka_tools_jars_dir(settings)
    fetch_maven_jars(KAFKA_TOOLS_POM, jars)
    return f"{jars}/*"


@dataclass(frozen=True)
class ProducerPerformanceResult:
    """ProducerPerformance's own summary of one run."""

    records: int
    records_per_second: float
    megabytes_per_second: float
    average_latency_ms: float


def parse_producer_performance(output: str) -> ProducerPerformanceResult:
    """The final summary line (the last match: progress lines come before it)."""
    matches = list(SUMMARY_LINE.finditer(output))
    if not matches:
        raise ValueError(
            f"ProducerPerformance printed no summary line; its output ended with: {output[-500:]}"
        )
    summary = matches[-1]
    return ProducerPerformanceResult(
        records=int(summary["records"]),
        records_per_second=float(summary["rate"]),
        megabytes_per_second=float(summary["megabytes"]),
        average_latency_ms=float(summary["latency"]),
    )


def producer_performance(
    settings: Settings,
    topic: str,
    payload_file: Path,
    records: int,
    producer_properties: dict[str, str],
) -> ProducerPerformanceResult:
    """Send ``records`` messages drawn from ``payload_file`` (one per line) as fast as the
    producer can, and return the tool's summary."""
    properties = {"bootstrap.servers": settings.kafka_bootstrap_servers, **producer_properties}
    command = [
        require_java(),
        "-Xmx512m",
        "-cp",
        kafka_tools_classpath(settings),
        PRODUCER_PERFORMANCE,
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--throughput",
        "-1",
        "--payload-file",
        str(payload_file),
        "--producer-props",
        *(f"{name}={value}" for name, value in properties.items()),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(
            f"ProducerPerformance exited with {result.returncode}: {result.stderr[-500:]}"
        )
    return parse_producer_performance(result.stdout)
