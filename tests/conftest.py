"""Session fixtures: the real local Kafka broker and BigQuery emulator, started once per run.

They run on their own ports and state folder (``.state/test``), so a developer's ``make run``
on the default ports can stay up while the tests run.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.structs import ConsumerRecord

from deploy.local import stack
from shared.settings import PROJECT_ROOT, Settings

TEST_STATE_DIR = PROJECT_ROOT / ".state" / "test"

# Readiness checks and outage tests expect refused connections; aiokafka logs each as an error.
logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

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
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


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

    def restart_kafka(self) -> None:
        self.kafka.stop()
        self.kafka.start()
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


SIMULATOR_PORT = 18090


@pytest.fixture(scope="session")
def simulator() -> Iterator[str]:
    """The CoinCap simulator as a process; yields its base URL (``.../v3``)."""
    process = ManagedProcess(
        "coincap-simulator",
        [
            sys.executable,
            "-m",
            "shared.coincap.simulator",
            "--port",
            str(SIMULATOR_PORT),
            "--seed",
            "7",
            "--tick-seconds",
            "1",
        ],
        {},
        TEST_STATE_DIR / "logs",
    )
    process.start()
    base = f"http://127.0.0.1:{SIMULATOR_PORT}"
    try:
        stack.wait_until(
            lambda: process.is_running() and _answers(f"{base}/healthz"), "the simulator", 30
        )
    except stack.StackError as error:
        pytest.fail(f"{error}\n{process.log_tail()}")
    yield f"{base}/v3"
    process.stop()


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def read_topic(
    bootstrap_servers: str, topic: str, expected: int | None = None, idle_seconds: float = 3.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message of ``topic`` from the start, in offset order per partition.

    Reads until ``expected`` messages arrived, or until nothing new came for ``idle_seconds``.
    """
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    messages: list[ConsumerRecord[bytes, bytes]] = []
    try:
        while expected is None or len(messages) < expected:
            batches = await consumer.getmany(timeout_ms=int(idle_seconds * 1000))
            if not batches:
                break
            for batch in batches.values():
                messages.extend(batch)
    finally:
        await consumer.stop()
    return messages
