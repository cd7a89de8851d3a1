"""The stream worker as the benchmark runs it (``tests.harness.stream_worker``, on the
benchmark's topics), with what the benchmark reads back from it: the per-batch log lines, the
peak RSS of its Python driver and of its JVM.

Several workers read the same topics one after another (one per sink and run), so each gets a
fresh group, checkpoint and dataset: each starts from the earliest offset, as a worker that was
down while the backlog built up would.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.process_memory import command_name, peak_rss_mib, process_tree
from tests.harness.stream_worker import StreamWorkerProcess

BATCH_LINE = re.compile(r"^batch (?P<batch>\d+): (?P<rows>.*) in (?P<seconds>[\d.]+) s$")
"""The worker's line after each micro-batch: ``batch 7: 165 assets, 40 exchanges in 0.84 s``."""
LOG_TIME_FORMAT = "%Y-%m-%d %H:%M:%S,%f"


@dataclass(frozen=True)
class BatchLine:
    """One micro-batch as the worker logged it."""

    batch_id: int
    ended_at: float
    """Epoch seconds (the log line's time)."""
    seconds: float
    rows: int
    """Rows written to every table, the quarantine included."""

    @property
    def started_at(self) -> float:
        return self.ended_at - self.seconds


def parse_batch_lines(log_text: str) -> list[BatchLine]:
    """Every ``batch N: ... in X s`` line of a worker log of JSON lines, in log order."""
    batches = []
    for line in log_text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        match = BATCH_LINE.match(str(entry.get("message", "")))
        if match is None or "time" not in entry:
            continue
        rows = sum(int(count) for count in re.findall(r"(\d+) \w+", match["rows"]))
        ended_at = datetime.strptime(entry["time"], LOG_TIME_FORMAT).timestamp()
        batches.append(BatchLine(int(match["batch"]), ended_at, float(match["seconds"]), rows))
    return batches


def steady_batch_seconds(batches: list[BatchLine], skip: int = 2) -> float | None:
    """Median time of the batches that wrote rows, after the first ``skip`` such batches (the
    JVM warming up); None when too few."""
    seconds = [batch.seconds for batch in batches if batch.rows > 0][skip:]
    return statistics.median(seconds) if seconds else None


@dataclass(frozen=True)
class WorkerMemory:
    python_peak_mib: float
    jvm_peak_mib: float


class BenchWorker(StreamWorkerProcess):
    """One worker process on the bench's topics, with a dataset, checkpoint and group of its
    own (named ``name``), the settings' own defaults, and the sink and trigger given."""

    def __init__(
        self,
        name: str,
        environment: dict[str, str],
        state_dir: Path,
        port: int,
        overrides: dict[str, str],
    ) -> None:
        super().__init__(
            name,
            environment,
            port,
            # The bench reads every batch's line, which the worker logs at DEBUG after its first.
            {"COINSTREAM_LOG_LEVEL": "DEBUG", **overrides},
            state_dir=state_dir,
            label="bench",
            own_topics=False,
            defaults={},
        )

    def batches(self) -> list[BatchLine]:
        return parse_batch_lines(self.process.log_text())

    def memory(self) -> WorkerMemory:
        """Peak RSS so far of the worker's Python process and of the JVM it started."""
        assert self.process.process is not None
        pid = self.process.process.pid
        jvms = [each for each in process_tree(pid) if command_name(each) == "java"]
        return WorkerMemory(peak_rss_mib(pid), max((peak_rss_mib(j) for j in jvms), default=0.0))
