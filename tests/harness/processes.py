"""Our processes, run the way ``make run`` runs them, for tests and benchmarks.

``ManagedProcess`` starts one command with its output in a log file; ``LocalStack`` is the broker
and the emulator with the settings that reach them. ``make run`` itself uses honcho instead
(``deploy.local.supervisor``); these exist so that a test can stop and restart one piece at a
time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from deploy.local.errors import StackError
from deploy.local.readiness import http_answers, wait_for_bigquery_emulator, wait_for_kafka
from shared.settings import PROJECT_ROOT, Settings
from tests.harness.environment import SIMULATOR_PORT, TEST_STATE_DIR
from tests.harness.waiting import wait_for


def settings_from(environment: dict[str, str]) -> Settings:
    """Settings as a subprocess started with ``environment`` would read them."""
    values: dict[str, Any] = {
        key.removeprefix("COINSTREAM_").lower(): value for key, value in environment.items()
    }
    return Settings(_env_file=None, **values)


def subprocess_environment(overrides: dict[str, str]) -> dict[str, str]:
    """Our environment without any COINSTREAM_ setting of the developer's, plus ``overrides``."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("COINSTREAM_")}
    return {**base, "PYTHONUNBUFFERED": "1", "COINSTREAM_ENV_FILE": os.devnull, **overrides}


class ManagedProcess:
    """One of our processes, started as ``make run`` starts it, with its output in a log file."""

    def __init__(
        self, name: str, argv: list[str], environment: dict[str, str], log_dir: Path
    ) -> None:
        self.name = name
        self.argv = argv
        self.environment = subprocess_environment(environment)
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=PROJECT_ROOT,
                env=self.environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def exit_status(self, timeout: float) -> int | None:
        """The process's exit status once it ends within ``timeout`` seconds, else None: a test
        asserting on it then fails with its own message (the log's tail) rather than a
        ``TimeoutExpired`` that shows nothing of what the process was doing."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send_signal(self, sig: signal.Signals) -> None:
        """Signal the process if it still runs, without waiting for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def stop_together(processes: list[ManagedProcess], timeout: float = 30.0) -> None:
    """SIGTERM every process first, then wait for each: the nodes of a cluster shut down side by
    side. One after another, the last Kafka node has no controller quorum left to shut down
    with and waits out its timeout (30 s of every cluster teardown, before this)."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        if process.process is not None:
            process.stop(timeout=timeout)


def stack_process(component: str, environment: dict[str, str], log_dir: Path) -> ManagedProcess:
    """A local-stack component (``kafka`` or ``bigquery``)."""
    argv = [sys.executable, "-m", "deploy.local.stack", component]
    return ManagedProcess(component, argv, environment, log_dir)


class LocalStack:
    """The broker and the emulator, with the settings that reach them."""

    def __init__(self, environment: dict[str, str], state_dir: Path) -> None:
        self.environment = environment
        self.settings = settings_from(environment)
        self.kafka = stack_process("kafka", environment, state_dir / "logs")
        self.bigquery = stack_process("bigquery", environment, state_dir / "logs")
        self.start_seconds: dict[str, float] = {}

    def start(self) -> None:
        self.kafka.start()
        self.bigquery.start()
        self.wait_ready()

    def wait_ready(self) -> None:
        for name, process, wait in (
            ("kafka", self.kafka, wait_for_kafka),
            ("bigquery", self.bigquery, wait_for_bigquery_emulator),
        ):
            try:
                self.start_seconds[name] = wait(self.settings, 90.0, process.is_running)
            except StackError as error:
                raise StackError(
                    f"{error}\n--- {process.log_path} ---\n{process.log_tail()}"
                ) from None

    def ensure_running(self) -> None:
        """Start whichever of the two is stopped (a test that stops them may have failed
        before starting them again), and wait until both answer."""
        for process in (self.kafka, self.bigquery):
            if not process.is_running():
                process.start()
        self.wait_ready()

    def stop(self) -> None:
        self.kafka.stop()
        self.bigquery.stop()


def launch(
    name: str,
    module: str,
    environment: dict[str, str],
    log_dir: Path,
    arguments: tuple[str, ...] = (),
) -> ManagedProcess:
    """``python -m module [arguments]``, started; see ``wait_until_answering``."""
    argv = [sys.executable, "-m", module, *arguments]
    process = ManagedProcess(name, argv, environment, log_dir)
    process.start()
    return process


def wait_until_answering(process: ManagedProcess, health_url: str) -> None:
    def up() -> bool:
        assert process.is_running(), f"{process.name} exited:\n{process.log_tail(30)}"
        return http_answers(health_url)

    wait_for(up, f"for {process.name} to answer {health_url}", 60)


def start_process(
    name: str,
    module: str,
    environment: dict[str, str],
    log_dir: Path,
    health_url: str,
    arguments: tuple[str, ...] = (),
) -> ManagedProcess:
    """``python -m module [arguments]`` started and answering ``health_url``."""
    process = launch(name, module, environment, log_dir, arguments)
    wait_until_answering(process, health_url)
    return process


def simulator_process(port: int = SIMULATOR_PORT) -> ManagedProcess:
    """The CoinCap simulator on ``port``, seeded so that every run sees the same market, with a
    one-second tick; not started yet. It answers ``/healthz``; its API is under ``/v3``."""
    return ManagedProcess(
        "coincap-simulator",
        [
            sys.executable,
            "-m",
            "services.coincap_simulator",
            "--port",
            str(port),
            "--seed",
            "7",
            "--tick-seconds",
            "1",
        ],
        {},
        TEST_STATE_DIR / "logs",
    )


def refusal_at_start(module: list[str], environment: dict[str, str]) -> str:
    """Run ``python -m <module...>`` with settings it must refuse: exit status 2 and exactly one
    line on stderr, which is returned for the caller to check what it names."""
    result = subprocess.run(
        [sys.executable, "-m", *module],
        cwd=PROJECT_ROOT,
        env=subprocess_environment(environment),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coinstream: "), result.stderr[-2000:]
    return lines[0]
