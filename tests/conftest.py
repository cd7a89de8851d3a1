"""Session fixtures: the real local Kafka broker and BigQuery emulator, started once per run.

They run on their own ports and state folder (``tests.harness.environment``), so a developer's
``make run`` on the default ports can stay up while the tests run. What the fixtures start is
described in ``tests.harness``; this file only builds fixtures from it.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from deploy.local.errors import StackError
from deploy.local.readiness import http_answers, wait_until
from shared.settings import Settings
from tests.harness.environment import (
    OUTAGE_STACK_ENVIRONMENT,
    OUTAGE_STACK_STATE_DIR,
    SIMULATOR_PORT,
    SPARK_TEST_CONF,
    TEST_ENVIRONMENT,
    TEST_STATE_DIR,
)
from tests.harness.processes import LocalStack, simulator_process
from tests.harness.spark_class_archive import DUMP_SECONDS, ensure_archive

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Every test's marker follows its directory; the run ends by counting its slow starts.
# pytester runs those plugins on test files of its own (tests/unit/test_harness_plugins.py).
pytest_plugins = [
    "tests.harness.directory_markers",
    "tests.harness.unique_ids",
    "tests.harness.start_counts",
    "pytester",
]

# Readiness checks and outage tests expect refused connections; aiokafka logs each as an error.
logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    """A running broker and emulator on test ports, with fresh state for this test run."""
    shutil.rmtree(TEST_STATE_DIR, ignore_errors=True)
    # Made beside the stack's start; the drivers that start before it is whole do without.
    archiving = threading.Thread(target=ensure_archive, name="spark-class-archive", daemon=True)
    archiving.start()
    environment = dict(TEST_ENVIRONMENT)
    test_stack = LocalStack(environment, TEST_STATE_DIR)
    try:
        test_stack.start()
    except StackError as error:
        pytest.fail(str(error))
    yield test_stack
    test_stack.stop()
    archiving.join(DUMP_SECONDS)


@pytest.fixture(scope="session")
def stack_settings(local_stack: LocalStack) -> Settings:
    return local_stack.settings


@pytest.fixture(scope="session")
def outage_stack(local_stack: LocalStack) -> Iterator[LocalStack]:
    """A broker and an emulator of their own, on other ports, for the tests that stop or
    restart them: the session's ``local_stack`` is never stopped. Those tests use it in turn,
    each asking for it running (``stoppable_stack``), so the session pays for one more start
    rather than one per module. After ``local_stack``, which empties the state folder that
    this one's lives in."""
    shutil.rmtree(OUTAGE_STACK_STATE_DIR, ignore_errors=True)
    stack = LocalStack(dict(OUTAGE_STACK_ENVIRONMENT), OUTAGE_STACK_STATE_DIR)
    try:
        stack.start()
    except StackError as error:
        pytest.fail(str(error))
    yield stack
    stack.stop()


@pytest.fixture
def stoppable_stack(outage_stack: LocalStack) -> LocalStack:
    """``outage_stack``, running and answering whatever the test before left it in."""
    try:
        outage_stack.ensure_running()
    except StackError as error:
        pytest.fail(str(error))
    return outage_stack


@pytest.fixture(scope="session")
def simulator() -> Iterator[str]:
    """The CoinCap simulator as a process; yields its base URL (``.../v3``)."""
    process = simulator_process(SIMULATOR_PORT)
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


@pytest.fixture
def spark() -> SparkSession:
    """The in-process SparkSession for the tests that run the worker's transforms on small
    DataFrames: built once, then found again (a test that stops its own session gets a new one).
    Its JVM starts with the Kafka connector's jars: a JVM's classpath is fixed when it starts,
    so a later session in this process that reads Kafka finds them too."""
    from services.stream_worker.jars import spark_kafka_jars
    from services.stream_worker.spark import build_spark_session

    settings = Settings(_env_file=None, spark_conf=SPARK_TEST_CONF)
    return build_spark_session(settings, "coinstream-transform-tests", spark_kafka_jars(settings))
