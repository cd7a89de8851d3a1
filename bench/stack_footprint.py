"""The local stack's footprint: ``make run`` to the first queryable row, and the peak RSS of
every process of the stack.

Each of ``--runs`` runs starts ``make run`` (exactly as a user does, its ``setup`` prerequisite
included) on benchmark ports with a fresh state folder, so Kafka is formatted, the emulator
starts empty and the worker creates its tables; then:

1. first row: queries the asset table through the emulator every 0.25 s, from the moment
   ``make run`` is started until a row answers (also noted: when the stack's "ready" line
   appears);
2. memory: lets the pipeline run for ``--hold-seconds`` more, sampling every process's RSS
   each second (the peak of their sum), then reads each process's peak RSS (VmHWM) and stops
   the stack with Ctrl-C's signal.

Figures go to docs/benchmarks/stack_footprint.json and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from google.api_core.exceptions import GoogleAPIError
from google.cloud import bigquery

from bench.process_memory import command_name, peak_rss_mib, process_tree, rss_mib
from bench.results import Figure, machine_info, publish
from shared.schemas import ASSETS
from shared.settings import PROJECT_ROOT, Settings
from shared.supervised_processes import read_supervisor_report, supervisor_report_path
from shared.warehouse import WarehouseUnavailable, create_bigquery_client, run_query, table_id
from tests.harness.processes import settings_from, subprocess_environment

BENCH_STATE_DIR = PROJECT_ROOT / ".state" / "bench-stack"
ENVIRONMENT = {
    "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:47292",
    "COINSTREAM_KAFKA_CONTROLLER_PORT": "47293",
    "COINSTREAM_BIGQUERY_EMULATOR_URL": "http://127.0.0.1:47250",
    "COINSTREAM_BIGQUERY_EMULATOR_GRPC_PORT": "47260",
    "COINSTREAM_COINCAP_SIMULATOR_PORT": "47290",
    "COINSTREAM_CONTROL_PORT": "47300",
    "COINSTREAM_ASSET_INGESTOR_PORT": "47301",
    "COINSTREAM_EXCHANGE_INGESTOR_PORT": "47302",
    "COINSTREAM_STREAM_WORKER_PORT": "47303",
    "COINSTREAM_DASHBOARD_PORT": "47304",
    "COINSTREAM_PROMETHEUS_PORT": "47309",
}
FIRST_ROW_TIMEOUT_SECONDS = 300.0
QUERY_EVERY_SECONDS = 0.25
QUERY_DEADLINE_SECONDS = 2.0
STOP_TIMEOUT_SECONDS = 90.0
READY_LINE = "ready: Kafka at"
MAKE_AND_SUPERVISOR = "make + supervisor"
RSS_TARGET = "whole stack < 2.5 GiB (2,560 MiB)"
COMPONENTS = {
    "kafka": "the broker's JVM (KRaft, one node)",
    "bigquery": "the BigQuery emulator (Python, DuckDB)",
    "coincap-simulator": "the CoinCap simulator",
    "asset-ingestor": "the asset ingestor",
    "exchange-ingestor": "the exchange ingestor",
    "stream-worker": "the stream worker's Python driver (with the shell that starts it)",
    "stream-worker JVM": "the stream worker's JVM, which pyspark starts (Spark in local mode)",
    "control": "the control service",
    "dashboard": "the dashboard",
    "prometheus": "Prometheus",
    "stack": "the readiness watcher (`deploy.local.stack watch`)",
    MAKE_AND_SUPERVISOR: "make and the supervisor (`deploy.local.stack run`)",
}
"""What each process tree is (the shell honcho starts it through included)."""


def progress(message: str) -> None:
    print(f"stack: {message}", flush=True)


@dataclass
class RunFootprint:
    """What one ``make run`` measured."""

    first_row_seconds: float
    ready_seconds: float | None
    peak_rss_mib: dict[str, float] = field(default_factory=dict)
    """Per component (and per executable where a component has several, e.g. the worker's
    Python and JVM), the peak RSS."""
    peak_of_sum_mib: float = 0.0


def run_environment(state_dir: Path) -> dict[str, str]:
    return ENVIRONMENT | {"COINSTREAM_STATE_DIR": str(state_dir)}


def start_make_run(
    state_dir: Path, extra: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    """``make run`` in a session of its own (as in a terminal), its output in a file; ``extra``
    settings on top of the benchmark's."""
    log_path = state_dir.parent / f"{state_dir.name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["make", "run"],
            cwd=PROJECT_ROOT,
            env=subprocess_environment(run_environment(state_dir) | (extra or {})),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, log_path


def asset_rows(client: bigquery.Client, settings: Settings) -> int:
    """Rows in the asset table now; 0 while the emulator or the table is not there yet."""
    sql = f"SELECT COUNT(*) AS n FROM `{table_id(settings, ASSETS)}`"
    try:
        rows = run_query(client, settings, sql, (), QUERY_DEADLINE_SECONDS)
    except (WarehouseUnavailable, GoogleAPIError):
        return 0
    return int(rows[0]["n"]) if rows else 0


def wait_for_first_row(
    settings: Settings, make: subprocess.Popen[bytes], log_path: Path, started: float
) -> tuple[float, float | None]:
    """Seconds from ``started`` to the first queryable asset row, and to the "ready" line."""
    ready_seconds = None
    client = create_bigquery_client(settings)
    while time.monotonic() - started < FIRST_ROW_TIMEOUT_SECONDS:
        if make.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"make run exited with {make.returncode}; its output ended:\n{tail}")
        if ready_seconds is None and READY_LINE in log_path.read_text(errors="replace"):
            ready_seconds = time.monotonic() - started
        if asset_rows(client, settings) > 0:
            return time.monotonic() - started, ready_seconds
        time.sleep(QUERY_EVERY_SECONDS)
    raise RuntimeError(
        f"no asset row was queryable {FIRST_ROW_TIMEOUT_SECONDS:.0f} s after make run started; "
        f"see {log_path}"
    )


def component_trees(settings: Settings, make_pid: int) -> dict[str, list[int]]:
    """Each supervised process's tree by name, and make with the supervisor (the rest)."""
    report = read_supervisor_report(supervisor_report_path(settings))
    trees: dict[str, list[int]] = {}
    if report is not None:
        for name, supervised in report.processes.items():
            if supervised.pid is not None:
                trees[name] = process_tree(supervised.pid)
    in_components = {pid for tree in trees.values() for pid in tree}
    trees[MAKE_AND_SUPERVISOR] = [pid for pid in process_tree(make_pid) if pid not in in_components]
    return trees


def peak_rss_by_component(trees: dict[str, list[int]]) -> dict[str, float]:
    """Peak RSS per component, each tree summed (with the shell honcho starts it through); the
    stream worker's JVM, which pyspark starts, is an entry of its own beside its Python."""
    peaks: dict[str, float] = defaultdict(float)
    for name, tree in trees.items():
        for pid in tree:
            is_worker_jvm = name == "stream-worker" and command_name(pid) == "java"
            peaks[f"{name} JVM" if is_worker_jvm else name] += peak_rss_mib(pid)
    return dict(peaks)


def hold_and_sample(make_pid: int, seconds: float) -> float:
    """Let the pipeline run ``seconds``; the highest sum of every process's RSS, each second."""
    peak = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, sum(rss_mib(pid) for pid in process_tree(make_pid)))
        time.sleep(1.0)
    return peak


def stop_make_run(make: subprocess.Popen[bytes], started_pids: set[int]) -> None:
    """Ctrl-C's signal to make's session; what is left after the stack's own stop is killed
    (only processes this run started)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(make.pid, signal.SIGINT)
    try:
        make.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        progress(f"make run did not stop within {STOP_TIMEOUT_SECONDS:.0f} s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(make.pid, signal.SIGKILL)
        make.wait()
    for pid in started_pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def measure_run(run: int, hold_seconds: float) -> RunFootprint:
    state_dir = BENCH_STATE_DIR / f"run-{run}"
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    settings = settings_from(run_environment(state_dir))
    started = time.monotonic()
    make, log_path = start_make_run(state_dir)
    started_pids: set[int] = set()
    try:
        progress(f"run {run}: make run started (fresh state in {state_dir}); querying for a row")
        first_row, ready = wait_for_first_row(settings, make, log_path, started)
        ready_text = f"{ready:.1f} s" if ready is not None else "not seen"
        progress(f"  first asset row queryable after {first_row:.1f} s (ready line: {ready_text})")
        progress(f"  holding the pipeline {hold_seconds:.0f} s, sampling RSS every second")
        peak_of_sum = hold_and_sample(make.pid, hold_seconds)
        trees = component_trees(settings, make.pid)
        started_pids = {pid for tree in trees.values() for pid in tree} - {make.pid}
        footprint = RunFootprint(first_row, ready, peak_rss_by_component(trees), peak_of_sum)
        progress(
            f"  peak RSS: sum of peaks {sum(footprint.peak_rss_mib.values()):,.0f} MiB, "
            f"peak of the sum {peak_of_sum:,.0f} MiB"
        )
    finally:
        progress(f"run {run}: stopping make run (SIGINT, as Ctrl-C)")
        if not started_pids:
            started_pids = set(process_tree(make.pid)) - {make.pid}
        stop_make_run(make, started_pids)
    return footprint


def footprint_figures(runs: list[RunFootprint]) -> list[Figure]:
    figures = [
        Figure(
            "make_run_to_first_row_seconds",
            "`make run` to first row queryable",
            "s",
            "from starting `make run` (with its `setup` prerequisite, on a set-up machine) with "
            "a fresh state folder to the first answer > 0 of `SELECT COUNT(*)` on the asset "
            "table, queried through the emulator every 0.25 s.",
            [run.first_row_seconds for run in runs],
            target="< 15 s",
        ),
    ]
    ready = [run.ready_seconds for run in runs if run.ready_seconds is not None]
    if len(ready) == len(runs):
        figures.append(
            Figure(
                "make_run_to_ready_seconds",
                "`make run` to its ready line",
                "s",
                'from starting `make run` to its "ready: Kafka at ..." line (every process '
                "answers its health check).",
                ready,
            )
        )
    figures += [
        Figure(
            "stack_sum_of_peak_rss_mib",
            "whole stack: sum of every process's peak RSS",
            "MiB",
            "VmHWM of every process in `make run`'s tree (make and the supervisor included), "
            "read after the hold, summed: an upper bound, as peaks need not coincide.",
            [sum(run.peak_rss_mib.values()) for run in runs],
            target=RSS_TARGET,
        ),
        Figure(
            "stack_peak_of_summed_rss_mib",
            "whole stack: peak of the summed RSS",
            "MiB",
            "VmRSS of every process in `make run`'s tree, summed once a second during the hold; "
            "the highest sum.",
            [run.peak_of_sum_mib for run in runs],
            target=RSS_TARGET,
        ),
    ]
    components = sorted({name for run in runs for name in run.peak_rss_mib})
    for name in components:
        figures.append(
            Figure(
                f"peak_rss_mib.{name}",
                f"peak RSS: {name}",
                "MiB",
                f"VmHWM of {COMPONENTS.get(name, f'the process tree started as `{name}`')}.",
                [run.peak_rss_mib.get(name, 0.0) for run in runs],
            )
        )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs to take the median of")
    parser.add_argument(
        "--hold-seconds",
        type=float,
        default=45.0,
        help="how long the pipeline runs after its first row before memory is read, each run",
    )
    arguments = parser.parse_args()
    started = time.monotonic()
    machine = machine_info()
    runs = [measure_run(run, arguments.hold_seconds) for run in range(1, arguments.runs + 1)]
    figures = footprint_figures(runs)
    json_path = publish(
        "stack_footprint",
        "The local stack: `make run` to first row, and memory",
        figures,
        [
            f"Each run: `make run` on benchmark ports with a fresh state folder, held "
            f"{arguments.hold_seconds:.0f} s after the first row (default settings: simulator, "
            "both ingestors, the worker at the default local trigger, control, dashboard, "
            "Prometheus), then stopped with SIGINT."
        ],
        {"hold_seconds": arguments.hold_seconds, "ports": ENVIRONMENT},
        machine,
    )
    for figure in figures:
        print(
            f"{figure.label}: median {figure.median:,.1f} {figure.unit} "
            f"(min {figure.low:,.1f}, max {figure.high:,.1f}, {len(figure.values)} runs)"
        )
    progress(f"done in {time.monotonic() - started:.0f} s; figures in {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
