"""`make run` under test: one run in a session of its own, as in a terminal, with its output
in a file and its supervisor's report beside it; and the processes left in that session."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import PROJECT_ROOT
from shared.supervised_processes import SupervisorReport
from tests.harness.environment import offset_port
from tests.harness.processes import subprocess_environment
from tests.harness.waiting import wait_for


def is_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process took the number
        return True
    return True


@dataclass
class MakeRun:
    """One `make run` in a session of its own, as in a terminal, with its output in a file."""

    process: subprocess.Popen[bytes]
    log_path: Path
    report_path: Path
    control_port: int
    worker_port: int
    seen_pids: set[int] = field(default_factory=set)
    """Every supervised process id a report has named, for ``stop_for_good``."""

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def report(self) -> SupervisorReport:
        report = SupervisorReport.model_validate_json(self.report_path.read_text())
        self.seen_pids.update(p.pid for p in report.processes.values() if p.pid is not None)
        return report

    def supervised_pids(self) -> list[int]:
        """The process ids of what the supervisor runs now."""
        return [p.pid for p in self.report().processes.values() if p.pid is not None]

    def wait_for_output(self, text: str, timeout: float, after: int = 0) -> float:
        """Wait until make run has printed ``text`` (past the first ``after`` characters of
        its output); return the seconds it took."""

        def seen() -> bool:
            printed = text in self.output()[after:]
            assert self.process.poll() is None or printed, self.output()[-3000:]
            return printed

        return wait_for(seen, f"{text!r} in the output of make run", timeout)

    def pid_of(self, name: str) -> int | None:
        try:
            return self.report().processes[name].pid
        except (OSError, ValueError, KeyError):
            return None

    def stop_for_good(self) -> None:
        """SIGKILL to make's session and to every supervised process seen (each runs in a
        session of its own): whatever a failed test left running."""
        with contextlib.suppress(OSError, ValueError):
            self.report()
        if self.process.poll() is None or processes_in_session(self.process.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        for pid in self.seen_pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)


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
