"""`make run`, one run for the whole module: it comes up and says so in readable lines, a
killed service comes back while nothing else stops, records reach the warehouse, and Ctrl-C
stops every process in order, each within its time, leaving none behind.

A whole stack is what these tests pay most for, so they share one, in phases: each test brings
the run to the state it needs from whatever state it finds (so each passes alone), and the test
that ends the run comes last in the file. The kill comes as soon as the stack is ready,
usually while the worker's Spark still starts, so that one wait for the restarted worker's
first batch serves both the records check and Ctrl-C's. That a process which keeps failing
stops the stack is checked on the same supervisor with small processes
(``test_make_run_supervision.py``).
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator

import httpx
import pytest

from deploy.local.run_policy import stop_stage
from tests.harness.environment import KAFKA_TEST_JVM_OPTIONS, SPARK_TEST_CONF, offset_port
from tests.harness.make_run import MakeRun, is_alive, processes_in_session, start_make_run
from tests.harness.waiting import wait_for

PORT_BASE = 19200
READY_SECONDS = 240
BATCH_SECONDS = 240
STOPPED_LINE = re.compile(r"coinstream: (\S+) stopped \(exit (-?\d+)\) in [\d.]+ s \((.+)\)")
STARTED_LINE = re.compile(r"coinstream: (\S+) started \(pid \d+")
WORKER_STARTED = "coinstream: stream-worker started (pid "
BATCH_LINE = '"message": "batch '


@pytest.fixture(scope="module")
def module_make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeRun]:
    """The whole pipeline under `make run`, ready; killed for good at the end of the module,
    whatever a failed test left running."""
    run = start_make_run(
        tmp_path_factory.mktemp("make-run"),
        PORT_BASE,
        # The JVM options of every other test's broker and driver (compiler, collector, class
        # archive): nothing this module checks depends on them, and they save it about a fifth
        # of its CPU. The shipped defaults run in `make test-docker` and `make bench`.
        {
            "COINSTREAM_KAFKA_JVM_OPTIONS": KAFKA_TEST_JVM_OPTIONS,
            "COINSTREAM_SPARK_CONF": json.dumps(SPARK_TEST_CONF),
        },
    )
    try:
        run.wait_for_output(
            f"ready: Kafka at 127.0.0.1:{offset_port(PORT_BASE + 1092)}", READY_SECONDS
        )
        run.report()  # remember every process id, for stop_for_good
        yield run
    finally:
        run.stop_for_good()


@pytest.fixture
def make_run(module_make_run: MakeRun) -> MakeRun:
    """The module's run, still up: only the last test of the file stops it."""
    assert module_make_run.process.poll() is None, (
        "the module's make run has stopped: its tests share it in file order, Ctrl-C last"
    )
    return module_make_run


def test_make_run_says_it_is_ready_and_where_everything_is(make_run: MakeRun) -> None:
    output = make_run.output()
    assert f"asset-ingestor at http://127.0.0.1:{offset_port(PORT_BASE + 101)}/healthz" in output
    assert "data is SIMULATED" in output
    assert f"control at http://127.0.0.1:{make_run.control_port}/healthz" in output
    assert f"Prometheus at http://127.0.0.1:{offset_port(PORT_BASE + 1090)}/-/ready" in output
    # The control service's token: generated, private, and only its path is printed.
    token_file = make_run.report_path.parent / "control-token"
    assert f"commands need the token in {token_file}" in output
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert token_file.read_text().strip() not in output
    # make and the supervisor; the supervisor's processes (broker, emulator, simulator, two
    # ingestors, the watcher, ...) run in sessions of their own, so it lists them.
    assert len(processes_in_session(make_run.process.pid)) >= 2
    supervised = make_run.supervised_pids()
    assert len(supervised) >= 8
    assert all(is_alive(pid) for pid in supervised)


def test_a_killed_service_comes_back_and_nothing_else_stops(make_run: MakeRun) -> None:
    worker_pid = make_run.pid_of("stream-worker")
    assert worker_pid is not None, "the stream worker is not running"
    before = make_run.report().processes
    others = {name: p.pid for name, p in before.items() if name != "stream-worker"}
    restarts = before["stream-worker"].restarts

    os.kill(worker_pid, signal.SIGKILL)

    make_run.wait_for_output(
        "coinstream: stream-worker exited with status -9; restarting in 1 s "
        f"(restart {restarts + 1})",
        30,
    )
    wait_for(
        lambda: make_run.pid_of("stream-worker") not in (None, worker_pid),
        "the stream worker started again",
        30,
    )
    worker_health = f"http://127.0.0.1:{make_run.worker_port}/healthz"
    wait_for(lambda: httpx.get(worker_health).status_code == 200, "the worker answers", 120)
    assert make_run.process.poll() is None
    after = make_run.report().processes
    assert {name: p.pid for name, p in after.items() if name != "stream-worker"} == others
    assert all(pid is not None and is_alive(pid) for pid in others.values())

    components = httpx.get(f"http://127.0.0.1:{make_run.control_port}/components").json()
    by_name = {component["name"]: component for component in components["components"]}
    assert by_name["stream-worker"]["restarts"] == restarts + 1
    assert by_name["stream-worker"]["last_exit_status"] == -9
    assert by_name["asset-ingestor"]["restarts"] == 0
    assert by_name["asset-ingestor"]["last_exit_status"] is None


def test_records_reach_the_warehouse_and_the_terminal_shows_our_lines_only(
    make_run: MakeRun,
) -> None:
    make_run.wait_for_output(BATCH_LINE, BATCH_SECONDS)
    # What the terminal shows is our lines, not the libraries' chatter: py4j logged a line on
    # every trigger, the broker one per partition, uvicorn one per start.
    output = make_run.output()
    assert "Received command" not in output
    assert "state.change.logger" not in output
    assert "Application startup complete" not in output
    # Nor the warnings every start printed, none of which a person acts on: Spark's banner and
    # its native-library, adaptive-execution, truncated-plan and falling-behind warnings, the
    # broker's first controller activation, the emulator's list of its translation rules.
    for start_chatter in (
        "Using Spark's default log4j profile",
        "NativeCodeLoader",
        "spark.sql.adaptive.enabled is not supported",
        "Truncated the string representation",
        "is falling behind",
        "Performing controller activation",
        "sql.translator.init",
    ):
        assert start_chatter not in output


def test_ctrl_c_stops_in_order_each_within_its_time_leaving_no_process(make_run: MakeRun) -> None:
    """The last test of the module: it ends the run."""
    # Let the worker (restarted or not) write a batch, so that Ctrl-C finds its query running.
    latest_worker_start = max(0, make_run.output().rfind(WORKER_STARTED))
    make_run.wait_for_output(BATCH_LINE, BATCH_SECONDS, after=latest_worker_start)
    supervised = make_run.supervised_pids()
    make = make_run.process

    os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    make.wait(timeout=300)
    wait_for(lambda: not processes_in_session(make.pid), "make's session to be empty", 15)

    output = make_run.output()
    stopped = [match.groups() for match in STOPPED_LINE.finditer(output)]
    names = [name for name, _, _ in stopped]
    assert sorted(names) == sorted(set(STARTED_LINE.findall(output))), output[-5000:]
    assert [stop_stage(name) for name in names] == sorted(stop_stage(name) for name in names)
    assert all(how.startswith("stopped within its") for _, _, how in stopped), stopped
    assert "Traceback" not in output
    assert "Task was destroyed" not in output
    assert [pid for pid in supervised if is_alive(pid)] == []
    assert not make_run.report_path.exists()
