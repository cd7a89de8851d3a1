"""`make run` brings the pipeline up, says so in readable output; Ctrl-C leaves no process."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from shared.settings import PROJECT_ROOT
from shared.supervised_processes import read_supervisor_report
from tests.conftest import offset_port, subprocess_environment

pytestmark = pytest.mark.integration


def processes_in_session(session_id: int) -> list[str]:
    listing = subprocess.run(
        ["ps", "-e", "-o", "sid=,pid=,args="], capture_output=True, text=True, check=True
    ).stdout
    return [
        line.strip() for line in listing.splitlines() if line.split(None, 1)[0] == str(session_id)
    ]


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_make_run_reports_ready_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    environment = subprocess_environment(
        {
            "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{offset_port(29092)}",
            "COINSTREAM_KAFKA_CONTROLLER_PORT": str(offset_port(29093)),
            "COINSTREAM_BIGQUERY_EMULATOR_URL": f"http://127.0.0.1:{offset_port(29050)}",
            "COINSTREAM_BIGQUERY_EMULATOR_GRPC_PORT": str(offset_port(29060)),
            "COINSTREAM_STATE_DIR": str(tmp_path / "state"),
            "COINSTREAM_COINCAP_SIMULATOR_PORT": str(offset_port(28090)),
            "COINSTREAM_ASSET_INGESTOR_PORT": str(offset_port(28101)),
            "COINSTREAM_EXCHANGE_INGESTOR_PORT": str(offset_port(28102)),
            "COINSTREAM_STREAM_WORKER_PORT": str(offset_port(28103)),
            "COINSTREAM_CONTROL_PORT": str(offset_port(28100)),
            "COINSTREAM_DASHBOARD_PORT": str(offset_port(28200)),
            "COINSTREAM_PROMETHEUS_PORT": str(offset_port(29090)),
        }
    )
    log_path = tmp_path / "make-run.log"
    with log_path.open("wb") as log:
        # A session of its own, like a terminal's foreground job, so SIGINT reaches every process.
        make = subprocess.Popen(
            ["make", "run"],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while f"ready: Kafka at 127.0.0.1:{offset_port(29092)}" not in log_path.read_text(
            errors="replace"
        ):
            assert make.poll() is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "make run did not report ready within 120 s"
            time.sleep(0.5)
        log_text = log_path.read_text(errors="replace")
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
        report = read_supervisor_report(tmp_path / "state" / "run-processes.json")
        assert report is not None
        supervised = [p.pid for p in report.processes.values() if p.pid is not None]
        assert len(supervised) >= 8
        assert all(process_exists(pid) for pid in supervised)

        # Records reach the warehouse, and what the terminal shows is our lines, not the
        # libraries' chatter: py4j logged a line on every trigger, the broker one per partition.
        deadline = time.monotonic() + 180
        while '"message": "batch 0: ' not in log_path.read_text(errors="replace"):
            assert make.poll() is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the stream worker wrote no batch within 180 s"
            time.sleep(0.5)
        log_text = log_path.read_text(errors="replace")
        assert "Received command" not in log_text
        assert "state.change.logger" not in log_text
        assert "Application startup complete" not in log_text

        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        make.wait(timeout=60)
        deadline = time.monotonic() + 15
        while processes_in_session(make.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_in_session(make.pid) == []
        assert [pid for pid in supervised if process_exists(pid)] == []
    finally:
        if make.poll() is None or processes_in_session(make.pid):
            os.killpg(make.pid, signal.SIGKILL)
