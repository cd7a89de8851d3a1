"""Session fixtures: the real local Kafka broker and BigQuery emulator, started once per run.

They run on their own ports and state folder (``.state/test``), so a developer's ``make run``
on the default ports can stay up while the tests run.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from deploy.local.errors import StackError
from deploy.local.processes import (
    LocalStack,
    ManagedProcess,
    read_topic,
    settings_from,
    subprocess_environment,
)
from deploy.local.readiness import http_answers, wait_until
from shared.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["LocalStack", "ManagedProcess", "read_topic", "settings_from", "subprocess_environment"]

# Two test runs on one machine (two worktrees, say) keep apart by setting this to, e.g., 100:
# every test port moves by it, and the state folder is named after it.
PORT_OFFSET = int(os.environ.get("COINSTREAM_TEST_PORT_OFFSET", "0"))
TEST_STATE_DIR = PROJECT_ROOT / ".state" / (f"test-{PORT_OFFSET}" if PORT_OFFSET else "test")

# Readiness checks and outage tests expect refused connections; aiokafka logs each as an error.
logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def offset_port(port: int) -> int:
    return port + PORT_OFFSET


TEST_ENVIRONMENT = {
    "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{offset_port(19092)}",
    "COINSTREAM_KAFKA_CONTROLLER_PORT": str(offset_port(19093)),
    "COINSTREAM_BIGQUERY_EMULATOR_URL": f"http://127.0.0.1:{offset_port(19050)}",
    "COINSTREAM_BIGQUERY_EMULATOR_GRPC_PORT": str(offset_port(19060)),
    "COINSTREAM_BIGQUERY_DATASET": "coinstream_test",
    "COINSTREAM_STATE_DIR": str(TEST_STATE_DIR / "stack"),
}


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    """A running broker and emulator on test ports, with fresh state for this test run."""
    shutil.rmtree(TEST_STATE_DIR, ignore_errors=True)
    environment = dict(TEST_ENVIRONMENT)
    test_stack = LocalStack(environment, TEST_STATE_DIR)
    try:
        test_stack.start()
    except StackError as error:
        pytest.fail(str(error))
    yield test_stack
    test_stack.stop()


@pytest.fixture(scope="session")
def stack_settings(local_stack: LocalStack) -> Settings:
    return local_stack.settings


SIMULATOR_PORT = offset_port(18090)


@pytest.fixture(scope="session")
def simulator() -> Iterator[str]:
    """The CoinCap simulator as a process; yields its base URL (``.../v3``)."""
    process = ManagedProcess(
        "coincap-simulator",
        [
            sys.executable,
            "-m",
            "services.coincap_simulator",
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
        wait_until(
            lambda: process.is_running() and http_answers(f"{base}/healthz"),
            "the simulator",
            30,
        )
    except StackError as error:
        pytest.fail(f"{error}\n{process.log_tail()}")
    yield f"{base}/v3"
    process.stop()


def wait_for(condition: Callable[[], Any], what: str, timeout: float) -> float:
    """Poll ``condition`` until it is truthy; return the seconds it took.

    A refused or timed-out HTTP request counts as "not yet", so a condition can ask a service
    that is still starting.
    """
    started = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        assert time.monotonic() - started < timeout, (
            f"timed out after {timeout:.0f} s waiting: {what}"
        )
        time.sleep(0.1)


@pytest.fixture
def spark() -> SparkSession:
    """The in-process SparkSession for the tests that run the worker's transforms on small
    DataFrames: built once, then found again (a test that stops its own session gets a new one).
    Its JVM starts with the Kafka connector's jars: a JVM's classpath is fixed when it starts,
    so a later session in this process that reads Kafka finds them too."""
    from services.stream_worker.jars import spark_kafka_jars
    from services.stream_worker.spark import build_spark_session

    settings = Settings(_env_file=None)
    return build_spark_session(settings, "coinstream-transform-tests", spark_kafka_jars(settings))


def refusal_at_start(module: list[str], environment: dict[str, str]) -> str:
    """Run ``python -m <module...>`` with settings it must refuse: exit status 2 and exactly one
    line on stderr, which is returned for the caller to check what it names."""
    import subprocess

    from deploy.local.processes import subprocess_environment

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
