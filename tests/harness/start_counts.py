"""A pytest plugin that counts the slow starts of a run: Spark drivers and `make run` stacks.

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
session; the stream worker is one)."""
MAKE_RUN_STACK = b"deploy.local.stack\x00run"
"""The argv of the process `make run` starts: ``python -m deploy.local.stack run``."""
ANCESTRY_LIMIT = 64


def parent_of(pid: int) -> int:
    """The parent process id, from ``/proc/<pid>/stat`` (its name may hold spaces and parens)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


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

    def sample(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if pid in self.spark_drivers or pid in self.make_run_stacks:
                continue
            try:
                argv = (entry / "cmdline").read_bytes()
                if SPARK_DRIVER in argv and descends_from(pid, self.root):
                    self.spark_drivers.add(pid)
                elif MAKE_RUN_STACK in argv and descends_from(pid, self.root):
                    self.make_run_stacks.add(pid)
            except (OSError, ValueError):  # it ended between the listing and the read
                continue

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_SECONDS):
            self.sample()

    def summary(self) -> str:
        return (
            f"coinstream: this run started {len(self.spark_drivers)} Spark driver(s) and "
            f"{len(self.make_run_stacks)} `make run` stack(s)"
        )


_counter = StartCounter()


def pytest_sessionstart(session: pytest.Session) -> None:
    if Path("/proc/self/cmdline").exists():
        threading.Thread(target=_counter.run, name="start-counts", daemon=True).start()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    _counter.stopped.set()
    _counter.sample()
    terminalreporter.write_sep("-", "slow starts")
    terminalreporter.write_line(_counter.summary())
