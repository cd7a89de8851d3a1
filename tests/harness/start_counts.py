"""A pytest plugin that counts the slow starts of a run (Spark drivers and `make run` stacks)
and says how busy the machine's cores were meanwhile.

They are what a test run pays most for, so the run prints how many it made. The count comes
from the machine, not from the harness's own bookkeeping: a background thread reads the process
table (``/proc``) a few times a second and remembers every Spark driver JVM and every
``make run`` supervisor descended from this pytest process, whoever started it (a test, a
``make run``, the in-process Spark session); another run on the machine is not counted. Both
live for seconds at least, so a sample every 0.25 s misses none.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SAMPLE_SECONDS = 0.25
SPARK_DRIVER = b"org.apache.spark.deploy.SparkSubmit"
"""The main class of every Spark driver JVM (pyspark starts one per process that builds a
session; the stream worker is one). The scripts that start it (``spark-submit``, then
``spark-class`` and a subshell of it) name it too, so only a ``java`` process counts; the
script ``exec``s the JVM in its own process, which a later sample sees as ``java``."""
SPARK_LAUNCHER = b"org.apache.spark.launcher.Main"
"""The short-lived JVM ``spark-class`` runs first to build the driver's command line; its
arguments name ``SparkSubmit`` as well, and it is not a driver."""
MAKE_RUN_STACK = b"deploy.local.stack\x00run"
"""The argv of the process `make run` starts: ``python -m deploy.local.stack run``. Only one
whose parent is ``make`` counts: the tests of refused settings start it directly, and it exits
at once without starting anything."""
ANCESTRY_LIMIT = 64


def parent_of(pid: int) -> int:
    """The parent process id, from ``/proc/<pid>/stat`` (its name may hold spaces and parens)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def is_make(pid: int) -> bool:
    argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    return argv0 == b"make" or argv0.endswith(b"/make")


def descends_from(pid: int, ancestor: int) -> bool:
    for _ in range(ANCESTRY_LIMIT):
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
        pid = parent_of(pid)
    return False


@dataclass
class StartCounter:
    """The process ids of the Spark drivers and `make run` stacks seen so far."""

    root: int = field(default_factory=os.getpid)
    spark_drivers: set[int] = field(default_factory=set)
    make_run_stacks: set[int] = field(default_factory=set)
    stopped: threading.Event = field(default_factory=threading.Event)
    cpu_at_start: tuple[int, int] = field(default_factory=lambda: cpu_ticks())

    def sample(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if pid in self.spark_drivers or pid in self.make_run_stacks:
                continue
            try:
                argv = (entry / "cmdline").read_bytes()
                if (
                    argv.split(b"\0", 1)[0].endswith(b"java")
                    and SPARK_DRIVER in argv
                    and SPARK_LAUNCHER not in argv
                    and descends_from(pid, self.root)
                ):
                    self.spark_drivers.add(pid)
                elif (
                    MAKE_RUN_STACK in argv
                    and is_make(parent_of(pid))
                    and descends_from(pid, self.root)
                ):
                    self.make_run_stacks.add(pid)
            except (OSError, ValueError):  # it ended between the listing and the read
                continue

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_SECONDS):
            self.sample()

    def summary(self) -> list[str]:
        busy_start, total_start = self.cpu_at_start
        busy_end, total_end = cpu_ticks()
        busy = (busy_end - busy_start) / max(total_end - total_start, 1)
        return [
            f"coinstream: this run started {len(self.spark_drivers)} Spark driver(s) and "
            f"{len(self.make_run_stacks)} `make run` stack(s)",
            f"coinstream: the machine's {os.cpu_count()} cores were {busy:.0%} busy meanwhile "
            "(every process on it, this run's or not)",
        ]


def cpu_ticks() -> tuple[int, int]:
    """The machine's busy and total CPU time so far, in ticks (``/proc/stat``'s first line):
    how busy the cores were says whether a run waits on them or on something else."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split()[1:9]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + fields[4]  # idle and waiting for I/O
    return sum(fields) - idle, sum(fields)


_counter = StartCounter()


def pytest_sessionstart(session: pytest.Session) -> None:
    # With several test processes (pytest-xdist), the one that reports counts for all: they and
    # everything they start descend from it.
    if Path("/proc/self/cmdline").exists() and "PYTEST_XDIST_WORKER" not in os.environ:
        threading.Thread(target=_counter.run, name="start-counts", daemon=True).start()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    _counter.stopped.set()
    _counter.sample()
    terminalreporter.write_sep("-", "slow starts")
    for line in _counter.summary():
        terminalreporter.write_line(line)
