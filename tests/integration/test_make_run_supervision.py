"""`make run` keeps the pipeline up through a crash, gives up on a process that keeps failing,
and stops in order on Ctrl-C, with one line per process and no traceback.

The tests of the shared stack run in file order: the kill first, Ctrl-C last.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.local.run_policy import stop_stage
from tests.harness.environment import offset_port
from tests.harness.make_run import MakeRun, start_make_run
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.integration

STOPPED_LINE = re.compile(r"coinstream: (\S+) stopped \(exit (-?\d+)\) in [\d.]+ s \((.+)\)")


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_for_good(run: MakeRun, pids: list[int]) -> None:
    """Whatever a failed test left running."""
    if run.process.poll() is None:
        os.killpg(run.process.pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeRun]:
    """The whole pipeline under `make run`, ready."""
    run = start_make_run(tmp_path_factory.mktemp("make-run"), 26000, {})
    seen: list[int] = []
    try:
        run.wait_for_output(f"ready: Kafka at 127.0.0.1:{offset_port(27092)}", 180)
        seen = [p.pid for p in run.report().processes.values() if p.pid]
        yield run
    finally:
        seen += (
            [p.pid for p in run.report().processes.values() if p.pid]
            if (run.report_path.exists())
            else []
        )
        stop_for_good(run, seen)


def test_a_killed_service_comes_back_and_nothing_else_stops(make_run: MakeRun) -> None:
    before = make_run.report().processes
    worker_pid = before["stream-worker"].pid
    assert worker_pid is not None
    others = {name: p.pid for name, p in before.items() if name != "stream-worker"}

    os.kill(worker_pid, signal.SIGKILL)

    make_run.wait_for_output(
        "coinstream: stream-worker exited with status -9; restarting in 1 s (restart 1)", 30
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
    assert by_name["stream-worker"]["restarts"] == 1
    assert by_name["stream-worker"]["last_exit_status"] == -9
    assert by_name["asset-ingestor"]["restarts"] == 0
    assert by_name["asset-ingestor"]["last_exit_status"] is None


def test_ctrl_c_stops_in_order_each_within_its_time_without_a_traceback(
    make_run: MakeRun,
) -> None:
    # Let the worker write a batch, so that Ctrl-C finds its query running.
    make_run.wait_for_output('"message": "batch ', 180)
    pids = [p.pid for p in make_run.report().processes.values() if p.pid is not None]

    os.killpg(make_run.process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    make_run.process.wait(timeout=300)

    output = make_run.output()
    stopped = [match.groups() for match in STOPPED_LINE.finditer(output)]
    names = [name for name, _, _ in stopped]
    assert sorted(names) == sorted(make_run_names(output)), output[-5000:]
    assert [stop_stage(name) for name in names] == sorted(stop_stage(name) for name in names)
    assert all(how.startswith("stopped within its") for _, _, how in stopped), stopped
    assert "Traceback" not in output
    assert "Task was destroyed" not in output
    assert not [pid for pid in pids if is_alive(pid)]
    assert not make_run.report_path.exists()


def make_run_names(output: str) -> set[str]:
    return set(re.findall(r"coinstream: (\S+) started \(pid \d+", output))


def test_a_service_that_keeps_failing_stops_the_stack_naming_it(tmp_path: Path) -> None:
    run = start_make_run(tmp_path, 24000, {"COINSTREAM_RUN_RESTART_LIMIT": "2"})
    seen: list[int] = []
    try:
        wait_for(lambda: run.pid_of("coincap-simulator"), "the simulator started", 60)
        seen = [p.pid for p in run.report().processes.values() if p.pid is not None]
        first = run.pid_of("coincap-simulator")
        assert first is not None
        os.kill(first, signal.SIGKILL)
        wait_for(
            lambda: run.pid_of("coincap-simulator") not in (None, first),
            "the simulator started again",
            30,
        )
        second = run.pid_of("coincap-simulator")
        assert second is not None
        os.kill(second, signal.SIGKILL)

        assert run.process.wait(timeout=300) != 0
        output = run.output()
        assert (
            "coinstream: coincap-simulator keeps failing (2 exits within 300 s, "
            "last exit status -9); stopping everything"
        ) in output
        assert "coinstream: dashboard stopped (exit" in output
        assert not [pid for pid in seen if is_alive(pid)]
    finally:
        stop_for_good(run, seen)
