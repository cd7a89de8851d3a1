"""Benchmark figures as median and spread of several runs, written where readers find them.

Each benchmark module collects one ``Figure`` per quantity (a value per run), and
``publish`` writes them twice: ``docs/benchmarks/<name>.json`` for machines, with the machine and
every run's value, and the module's own section of ``docs/benchmarks.md`` for people, between
markers that only that module rewrites, so the rest of the page (and other modules' sections)
stay as they are.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from shared.settings import PROJECT_ROOT

BENCHMARKS_PAGE = PROJECT_ROOT / "docs" / "benchmarks.md"
RESULTS_DIR = PROJECT_ROOT / "docs" / "benchmarks"
KAFKA_BROKER_POM = PROJECT_ROOT / "deploy" / "local" / "maven" / "kafka-broker" / "pom.xml"
MACHINE_SECTION = "machine"


@dataclass
class Figure:
    """One measured quantity: a value per run, how it was measured, and what it is held to."""

    key: str
    label: str
    unit: str
    how: str
    """How it was measured and timed, in one or two sentences."""
    values: list[float] = field(default_factory=list)
    limit_key: str | None = None
    """The ``key`` of the figure it is compared with (the limit of the part it runs on)."""
    target: str | None = None
    """The target from the performance issue, as text (``>= 50 % of Kafka's producer``)."""

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def summary(self) -> dict[str, Any]:
        return {**asdict(self), "median": self.median, "min": self.low, "max": self.high}


def pom_property(pom: Path, name: str) -> str:
    """A ``<properties>`` value of a Maven pom (``kafka.version``)."""
    namespace = {"maven": "http://maven.apache.org/POM/4.0.0"}
    # Our own pom, from the repository, not untrusted input.
    document = ElementTree.parse(pom)  # noqa: S314
    element = document.find(f"maven:properties/maven:{name}", namespace)
    if element is None or not element.text:
        raise ValueError(f"{pom} has no <properties><{name}>; add it")
    return element.text.strip()


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _java_version() -> str:
    try:
        result = subprocess.run(
            ["java", "-version"], capture_output=True, text=True, check=False, timeout=30
        )
    except OSError:
        return "not installed"
    lines = (result.stderr or result.stdout).splitlines()
    return lines[0].strip() if lines else "unknown"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024**2, 1)
    return float("nan")


def machine_info() -> dict[str, Any]:
    """The machine and the versions a figure depends on, and how busy the machine was."""
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": _java_version(),
        "kafka": pom_property(KAFKA_BROKER_POM, "kafka.version"),
        "spark": _package_version("pyspark"),
        "aiokafka": _package_version("aiokafka"),
        "bqemulator": _package_version("bqemulator"),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def _number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _quantity(value: float, unit: str) -> str:
    return f"{_number(value)} {unit}"


def _beside(figure: Figure, limit: Figure) -> str:
    """The limit's median, and this figure's median as a share of it."""
    share = f" (this is {100 * figure.median / limit.median:.0f} % of it)" if limit.median else ""
    return f"{limit.label}: {_quantity(limit.median, limit.unit)}{share}"


def figures_table(figures: list[Figure]) -> str:
    """One row per figure: median, spread, its limit beside it, our share of it, the target."""
    by_key = {figure.key: figure for figure in figures}
    rows = [
        "| figure | median | min - max | limit beside it (median) | target |",
        "|---|---|---|---|---|",
    ]
    for figure in figures:
        limit = by_key[figure.limit_key] if figure.limit_key else None
        rows.append(
            f"| {figure.label} | {_quantity(figure.median, figure.unit)} "
            f"| {_number(figure.low)} - {_quantity(figure.high, figure.unit)} "
            f"| {_beside(figure, limit) if limit else '-'} "
            f"| {figure.target or '-'} |"
        )
    return "\n".join(rows)


def how_measured(figures: list[Figure]) -> str:
    return "\n".join(f"- **{figure.label}**: {figure.how}" for figure in figures)


def machine_markdown(machine: dict[str, Any]) -> str:
    return (
        f"{machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB memory, "
        f"{machine['os']}; Python {machine['python']}, {machine['java']}, Kafka "
        f"{machine['kafka']}, Spark {machine['spark']}, aiokafka {machine['aiokafka']}, "
        f"bqemulator {machine['bqemulator']}."
    )


def replace_section(page: str, name: str, body: str, title: str) -> str:
    """``page`` with the text between ``name``'s markers replaced by ``body``; a page without
    them gets a new ``## title`` section with the markers at its end."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(page):
        return pattern.sub(lambda _: block, page, count=1)
    return f"{page.rstrip()}\n\n## {title}\n\n{block}\n"


def publish(
    name: str,
    title: str,
    figures: list[Figure],
    notes: list[str],
    settings: dict[str, Any],
    machine: dict[str, Any],
) -> Path:
    """Write ``docs/benchmarks/<name>.json`` and ``name``'s section of ``docs/benchmarks.md``."""
    runs = len(figures[0].values) if figures else 0
    measured_at = datetime.now(UTC).replace(microsecond=0)
    machine = {**machine, "load_average_1m_at_end": round(os.getloadavg()[0], 2)}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS_DIR / f"{name}.json"
    document = {
        "benchmark": name,
        "measured_at": measured_at.isoformat(),
        "runs": runs,
        "machine": machine,
        "settings": settings,
        "figures": [figure.summary() for figure in figures],
        "notes": notes,
    }
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    body = "\n\n".join(
        [
            f"Measured {measured_at:%Y-%m-%d %H:%M} UTC with `python -m bench.{name} "
            f"{' '.join(sys.argv[1:]) or f'--runs {runs}'}`; load average "
            f"{machine['load_average_1m']} at the start, "
            f"{machine['load_average_1m_at_end']} at the end. Every run's value: "
            f"[`docs/benchmarks/{name}.json`](benchmarks/{name}.json).",
            figures_table(figures),
            how_measured(figures),
            *notes,
        ]
    )
    page = BENCHMARKS_PAGE.read_text() if BENCHMARKS_PAGE.exists() else "# Benchmarks\n"
    page = replace_section(page, MACHINE_SECTION, machine_markdown(machine), "Machine")
    BENCHMARKS_PAGE.write_text(replace_section(page, name, body, title))
    return json_path
