"""`make run` brings the pipeline up, says so in readable output; Ctrl-C leaves no process."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.harness.environment import offset_port
from tests.harness.make_run import processes_in_session, start_make_run
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.integration


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_make_run_reports_ready_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    run = start_make_run(tmp_path, 28000, {})
    make = run.process
    try:
        run.wait_for_output(f"ready: Kafka at 127.0.0.1:{offset_port(29092)}", 120)
        log_text = run.output()
        assert f"asset-ingestor at http://127.0.0.1:{offset_port(28101)}/healthz" in log_text
        assert "data is SIMULATED" in log_text
        assert f"control at http://127.0.0.1:{offset_port(28100)}/healthz" in log_text
        assert f"Prometheus at http://127.0.0.1:{offset_port(29090)}/-/ready" in log_text
        # The control service's token: generated, private, and only its path is printed.
        token_file = tmp_path / "state" / "control-token"
        assert f"commands need the token in {token_file}" in log_text
        assert token_file.stat().st_mode & 0o777 == 0o600
        assert token_file.read_text().strip() not in log_text
        # make and the supervisor; the supervisor's processes (broker, emulator, simulator, two
        # ingestors, the watcher, ...) run in sessions of their own, so it lists them.
        assert len(processes_in_session(make.pid)) >= 2
        supervised = [p.pid for p in run.report().processes.values() if p.pid is not None]
        assert len(supervised) >= 8
        assert all(process_exists(pid) for pid in supervised)

        # Records reach the warehouse, and what the terminal shows is our lines, not the
        # libraries' chatter: py4j logged a line on every trigger, the broker one per partition.
        run.wait_for_output('"message": "batch 0: ', 180)
        log_text = run.output()
        assert "Received command" not in log_text
        assert "state.change.logger" not in log_text
        assert "Application startup complete" not in log_text

        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        make.wait(timeout=60)
        wait_for(lambda: not processes_in_session(make.pid), "make's session to be empty", 15)
        assert [pid for pid in supervised if process_exists(pid)] == []
    finally:
        if make.poll() is None or processes_in_session(make.pid):
            os.killpg(make.pid, signal.SIGKILL)
