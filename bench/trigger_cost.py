"""What the local stack costs in CPU at each stream trigger: CPU-seconds a minute, at the default
load and idle, for ``COINSTREAM_STREAM_TRIGGER_SECONDS`` of 1, 2 and 5.

For each trigger (``--triggers``), ``make run`` starts on benchmark ports with a fresh state
folder (as ``bench.stack_footprint`` starts it), and once the first asset row is queryable and
``--warmup-seconds`` have passed:

1. at the default load (the simulator polled by both ingestors at their default interval), the
   CPU time (user + system, ``/proc/<pid>/stat``) of every process of the stack is read at the
   start and the end of ``--window-seconds``; the difference, per minute, is the figure;
2. the same load with one dashboard page open: the page checks ``/api/status`` once per
   trigger (its ``refresh_seconds``), here from a thread of the benchmark, and the window is
   read again;
3. idle: both ingestors are paused through the control service (``coinstream pause``), the
   worker's triggers find nothing new, and the same window is read again.

Processes that end inside a window are left out of it (none do in a steady run). The limit
beside the figures is the machine: a minute of one core is 60 CPU-seconds. Figures go to
docs/benchmarks/trigger_cost.json and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from bench.process_memory import process_tree
from bench.results import Figure, machine_info, publish
from bench.stack_footprint import (
    BENCH_STATE_DIR,
    progress,
    run_environment,
    start_make_run,
    stop_make_run,
    wait_for_first_row,
)
from shared.settings import PROJECT_ROOT
from tests.harness.processes import settings_from, subprocess_environment

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
INGESTORS = ("asset-ingestor", "exchange-ingestor")


def cpu_seconds(pid: int) -> float | None:
    """The process's user + system CPU time so far; None once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


def cpu_per_minute(make_pid: int, seconds: float) -> float:
    """CPU-seconds a minute of every process under make, over the next ``seconds``."""
    before = {pid: cpu_seconds(pid) for pid in process_tree(make_pid)}
    time.sleep(seconds)
    spent = 0.0
    for pid, start in before.items():
        end = cpu_seconds(pid)
        if start is not None and end is not None:
            spent += end - start
    return spent * 60.0 / seconds


class DashboardPage:
    """What an open dashboard page asks while nothing changes: ``/api/status`` every
    ``seconds`` (the page's ``refresh_seconds``, the trigger)."""

    def __init__(self, port: int, seconds: float) -> None:
        self.url = f"http://127.0.0.1:{port}/api/status"
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._check_forever, daemon=True)

    def __enter__(self) -> DashboardPage:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _check_forever(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.wait(self.seconds):
                with contextlib.suppress(httpx.HTTPError):
                    client.get(self.url)


def pause_ingestors(environment: dict[str, str]) -> None:
    """``coinstream pause`` for both ingestors, against this run's control service."""
    for name in INGESTORS:
        subprocess.run(
            [sys.executable, "-m", "coinstream", "pause", name],
            cwd=PROJECT_ROOT,
            env=subprocess_environment(environment),
            check=True,
            capture_output=True,
        )


def measure_trigger(trigger: float, warmup: float, window: float) -> tuple[float, float, float]:
    """(at the default load, the same with a dashboard page open, idle) CPU-seconds a minute
    with the worker's trigger at ``trigger``."""
    state_dir = BENCH_STATE_DIR / f"trigger-{trigger:g}"
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    trigger_setting = {"COINSTREAM_STREAM_TRIGGER_SECONDS": f"{trigger:g}"}
    environment = run_environment(state_dir) | trigger_setting
    settings = settings_from(environment)
    started = time.monotonic()
    make, log_path = start_make_run(state_dir, trigger_setting)
    try:
        wait_for_first_row(settings, make, log_path, started)
        progress(f"trigger {trigger:g} s: first row; {warmup:.0f} s of warm-up")
        time.sleep(warmup)
        loaded = cpu_per_minute(make.pid, window)
        progress(f"  at the default load: {loaded:.1f} CPU-s a minute")
        with DashboardPage(settings.dashboard_port, trigger):
            with_page = cpu_per_minute(make.pid, window)
        progress(f"  the same, a dashboard page open: {with_page:.1f} CPU-s a minute")
        pause_ingestors(environment)
        time.sleep(warmup / 2)  # the last polls and batches drain
        idle = cpu_per_minute(make.pid, window)
        progress(f"  idle (ingestors paused): {idle:.1f} CPU-s a minute")
    finally:
        stop_make_run(make, set(process_tree(make.pid)) - {make.pid})
    return loaded, with_page, idle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="make runs per trigger")
    parser.add_argument("--triggers", type=float, nargs="+", default=[1.0, 2.0, 5.0])
    parser.add_argument("--warmup-seconds", type=float, default=30.0)
    parser.add_argument("--window-seconds", type=float, default=60.0)
    arguments = parser.parse_args()
    machine = machine_info()
    figures = []
    for trigger in arguments.triggers:
        measured = [
            measure_trigger(trigger, arguments.warmup_seconds, arguments.window_seconds)
            for _ in range(arguments.runs)
        ]
        loaded_how = (
            "every process under `make run` (user + system time from /proc), over "
            f"{arguments.window_seconds:.0f} s once the first row was queryable and "
            f"{arguments.warmup_seconds:.0f} s had passed; both ingestors polling."
        )
        windows = [
            ("loaded", "at the default load", loaded_how),
            (
                "page_open",
                "with a dashboard page open",
                "the same, while a thread asks `/api/status` once per trigger, as an open page "
                "does.",
            ),
            ("idle", "idle", "the same, with both ingestors paused (`coinstream pause`)."),
        ]
        figures += [
            Figure(
                f"cpu_{key}_trigger_{trigger:g}s",
                f"the stack's CPU {label}, trigger {trigger:g} s",
                "CPU-s/min",
                how,
                [run[index] for run in measured],
                limit_key="one_core",
            )
            for index, (key, label, how) in enumerate(windows)
        ]
    figures.append(
        Figure(
            "one_core",
            "one core, a whole minute",
            "CPU-s/min",
            "60 by definition.",
            [60.0] * arguments.runs,
        )
    )
    json_path = publish(
        "trigger_cost",
        "The stream trigger: what the whole stack costs in CPU",
        figures,
        ["One `make run` per trigger, default settings otherwise, on benchmark ports."],
        {
            "triggers": arguments.triggers,
            "warmup_seconds": arguments.warmup_seconds,
            "window_seconds": arguments.window_seconds,
        },
        machine,
    )
    progress(f"figures in {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
