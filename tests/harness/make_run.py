"""`make run` under test: one run in a session of its own, as in a terminal, with its output
in a file and its supervisor's report beside it; and the processes left in that session."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from shared.settings import PROJECT_ROOT
from shared.supervised_processes import SupervisorReport
from tests.harness.environment import offset_port
from tests.harness.processes import subprocess_environment
from tests.harness.waiting import wait_for


@dataclass
class MakeRun:
    """One `make run` in a session of its own, as in a terminal, with its output in a file."""

    process: subprocess.Popen[bytes]
    log_path: Path
    report_path: Path
    control_port: int
    worker_port: int

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def report(self) -> SupervisorReport:
        return SupervisorReport.model_validate_json(self.report_path.read_text())

    def wait_for_output(self, text: str, timeout: float) -> float:
        """Wait until make run has printed ``text``; return the seconds it took."""

        def seen() -> bool:
            assert self.process.poll() is None or text in self.output(), self.output()[-3000:]
            return text in self.output()

        return wait_for(seen, f"{text!r} in the output of make run", timeout)

    def pid_of(self, name: str) -> int | None:
        try:
            return self.report().processes[name].pid
        except (OSError, ValueError, KeyError):
            return None


def start_make_run(tmp_path: Path, port_base: int, extra: dict[str, str]) -> MakeRun:
    def port(number: int) -> int:
        return offset_port(port_base + number)

    environment = subprocess_environment(
        {
            "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port(1092)}",
            "COINSTREAM_KAFKA_CONTROLLER_PORT": str(port(1093)),
            "COINSTREAM_BIGQUERY_EMULATOR_URL": f"http://127.0.0.1:{port(1050)}",
            "COINSTREAM_BIGQUERY_EMULATOR_GRPC_PORT": str(port(1060)),
            "COINSTREAM_STATE_DIR": str(tmp_path / "state"),
            "COINSTREAM_COINCAP_SIMULATOR_PORT": str(port(90)),
            "COINSTREAM_ASSET_INGESTOR_PORT": str(port(101)),
            "COINSTREAM_EXCHANGE_INGESTOR_PORT": str(port(102)),
            "COINSTREAM_STREAM_WORKER_PORT": str(port(103)),
            "COINSTREAM_CONTROL_PORT": str(port(100)),
            "COINSTREAM_DASHBOARD_PORT": str(port(200)),
            "COINSTREAM_PROMETHEUS_PORT": str(port(1090)),
            **extra,
        }
    )
    log_path = tmp_path / "make-run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["make", "run"],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return MakeRun(
        process, log_path, tmp_path / "state" / "run-processes.json", port(100), port(103)
    )


def processes_in_session(session_id: int) -> list[str]:
    """``ps`` lines of every process in session ``session_id`` (a `make run` and all it
    started, whoever their parent is now)."""
    listing = subprocess.run(
        ["ps", "-e", "-o", "sid=,pid=,args="], capture_output=True, text=True, check=True
    ).stdout
    return [
        line.strip() for line in listing.splitlines() if line.split(None, 1)[0] == str(session_id)
    ]
