"""`make run`'s supervisor gives up on a process that keeps failing: it stops the whole stack
with one line naming that process, and `make run` exits with a failure.

This runs ``python -m deploy.local.stack run``'s own code in this process (``stack.main``, the
supervisor, its restart policy), with small real processes in place of the pipeline's: what is
checked is how the supervisor treats exits, which needs no broker or Spark. The rest of `make
run` (a killed service comes back, Ctrl-C stops in order) is checked on the real stack in
``test_make_run.py``.
"""

from __future__ import annotations

import errno
import io
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local import stack, supervisor
from shared.settings import Settings
from tests.harness.make_run import is_alive
from tests.harness.waiting import wait_for

FAILING = "coincap-simulator"
# One process for each stage of the shutdown: ingestors, readers, infrastructure.
STEADY = ("asset-ingestor", "dashboard", "kafka")
STARTED_PID = re.compile(r"coinstream: (\S+) started \(pid (\d+)")
STOPPED_LINE = re.compile(r"coinstream: (\S+) stopped \(exit (-?\d+)\) in [\d.]+ s \((.+)\)")


def small_processes(settings: Settings) -> dict[str, str]:
    """In place of the pipeline: one process that kills itself at once (as a process that
    crashes on start does), and steady ones that run until they get SIGTERM."""
    return {FAILING: "sh -c 'kill -KILL $$'", **dict.fromkeys(STEADY, "sleep 300")}


@pytest.fixture
def signal_handlers_kept() -> Iterator[None]:
    """The supervisor installs its own SIGINT, SIGTERM and SIGHUP handlers; give pytest back
    its own afterwards."""
    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for sig, handler in kept.items():
        signal.signal(sig, handler)


def test_a_service_that_keeps_failing_stops_the_stack_naming_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    signal_handlers_kept: None,
) -> None:
    for name in [name for name in os.environ if name.startswith("COINSTREAM_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("COINSTREAM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COINSTREAM_RUN_RESTART_LIMIT", "2")
    monkeypatch.setattr(supervisor, "local_processes", small_processes)

    exit_status = stack.main(["run"])

    output = capsys.readouterr().out
    assert exit_status == 1, output
    assert f"coinstream: {FAILING} exited with status -9; restarting in 1 s (restart 1)" in output
    assert (
        f"coinstream: {FAILING} keeps failing (2 exits within 300 s, last exit status -9); "
        "stopping everything"
    ) in output
    # Everything else was stopped, in order, each within its time.
    stopped = {name: how for name, _, how in STOPPED_LINE.findall(output)}
    assert sorted(stopped) == sorted(STEADY), output
    assert all(how.startswith("stopped within its") for how in stopped.values()), stopped
    order = [name for name, _, _ in STOPPED_LINE.findall(output)]
    assert order == ["asset-ingestor", "dashboard", "kafka"], order
    started = [int(pid) for _, pid in STARTED_PID.findall(output)]
    assert len(started) == len(STEADY) + 2  # the failing one twice
    assert [pid for pid in started if is_alive(pid)] == []
    assert not (tmp_path / "state" / "run-processes.json").exists()


class ClosingTerminal(io.StringIO):
    """A terminal window that is closed: once ``closed_window`` is set, every write fails as
    writes to a hung-up terminal do (EIO)."""

    def __init__(self) -> None:
        super().__init__()
        self.closed_window = threading.Event()

    def write(self, text: str) -> int:
        if self.closed_window.is_set():
            raise OSError(errno.EIO, "Input/output error")
        return super().write(text)

    def isatty(self) -> bool:
        return True


def test_a_closed_terminal_still_stops_every_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signal_handlers_kept: None
) -> None:
    """Closing the terminal sends SIGHUP, and nothing can be written to it any more: the stop
    goes on to the last process all the same."""
    for name in [name for name in os.environ if name.startswith("COINSTREAM_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("COINSTREAM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(
        supervisor, "local_processes", lambda settings: dict.fromkeys(STEADY, "sleep 300")
    )
    terminal = ClosingTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)

    def close_the_window() -> None:
        wait_for(
            lambda: len(STARTED_PID.findall(terminal.getvalue())) == len(STEADY),
            "every process to start",
            30,
        )
        terminal.closed_window.set()
        os.kill(os.getpid(), signal.SIGHUP)

    closer = threading.Thread(target=close_the_window)
    closer.start()
    exit_status = stack.main(["run"])
    closer.join()

    assert exit_status == 0
    started = [int(pid) for _, pid in STARTED_PID.findall(terminal.getvalue())]
    assert len(started) == len(STEADY)
    wait_for(lambda: not any(is_alive(pid) for pid in started), "every process to be gone", 10)
    assert not (tmp_path / "state" / "run-processes.json").exists()
