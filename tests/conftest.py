"""Session fixtures: the real local Kafka broker and BigQuery emulator, started once per run.

They run on their own ports and state folder (``.state/test``), so a developer's ``make run``
on the default ports can stay up while the tests run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local import stack
from shared.settings import PROJECT_ROOT, Settings

TEST_STATE_DIR = PROJECT_ROOT / ".state" / "test"

TEST_ENVIRONMENT = {
    "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092",
    "COINSTREAM_KAFKA_CONTROLLER_PORT": "19093",
    "COINSTREAM_BIGQUERY_EMULATOR_URL": "http://127.0.0.1:19050",
    "COINSTREAM_BIGQUERY_EMULATOR_GRPC_PORT": "19060",
    "COINSTREAM_BIGQUERY_DATASET": "coinstream_test",
    "COINSTREAM_STATE_DIR": str(TEST_STATE_DIR / "stack"),
}


def settings_from(environment: dict[str, str]) -> Settings:
    """Settings as a subprocess started with ``environment`` would read them."""
    values = {key.removeprefix("COINSTREAM_").lower(): value for key, value in environment.items()}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def subprocess_environment(overrides: dict[str, str]) -> dict[str, str]:
    """Our environment without any COINSTREAM_ setting of the developer's, plus ``overrides``."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("COINSTREAM_")}
    return {**base, "PYTHONUNBUFFERED": "1", "COINSTREAM_ENV_FILE": os.devnull, **overrides}


class StackProcess:
    """One local-stack component (``kafka`` or ``bigquery``) run as ``make run`` runs it."""

    def __init__(self, component: str, environment: dict[str, str], log_dir: Path) -> None:
        self.component = component
        self.environment = subprocess_environment(environment)
        self.log_path = log_dir / f"{component}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "deploy.local.stack", self.component],
                cwd=PROJECT_ROOT,
                env=self.environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class LocalStack:
    """The broker and the emulator, with the settings that reach them."""

    def __init__(self, environment: dict[str, str], state_dir: Path) -> None:
        self.environment = environment
        self.settings = settings_from(environment)
        self.kafka = StackProcess("kafka", environment, state_dir / "logs")
        self.bigquery = StackProcess("bigquery", environment, state_dir / "logs")
        self.start_seconds: dict[str, float] = {}

    def start(self) -> None:
        self.kafka.start()
        self.bigquery.start()
        self.wait_ready()

    def wait_ready(self) -> None:
        for name, process, wait in (
            ("kafka", self.kafka, stack.wait_for_kafka),
            ("bigquery", self.bigquery, stack.wait_for_bigquery_emulator),
        ):
            try:
                self.start_seconds[name] = wait(self.settings, 90.0, process.is_running)
            except stack.StackError as error:
                pytest.fail(f"{error}\n--- {process.log_path} ---\n{process.log_tail()}")

    def stop(self) -> None:
        self.kafka.stop()
        self.bigquery.stop()


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    """A running broker and emulator on test ports, with fresh state for this test run."""
    shutil.rmtree(TEST_STATE_DIR, ignore_errors=True)
    environment = dict(TEST_ENVIRONMENT)
    test_stack = LocalStack(environment, TEST_STATE_DIR)
    test_stack.start()
    yield test_stack
    test_stack.stop()


@pytest.fixture(scope="session")
def stack_settings(local_stack: LocalStack) -> Settings:
    return local_stack.settings
