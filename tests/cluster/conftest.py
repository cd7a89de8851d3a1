"""The clusters of the `cluster` tests: a Spark standalone cluster (a master and two workers) and
a three-node Kafka cluster, from the same jars and commands as ``make run``, on test ports.

Their settings are ``tests.harness.cluster``'s, small for a two-core machine. Both write their
figures (start times, peak memory, records checked) into the terminal summary and
``.state/test*/cluster-report.jsonl``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from deploy.local.errors import StackError
from tests.cluster.support import FIGURES, LOG_DIR
from tests.harness.cluster import (
    KAFKA_CLUSTER_ENVIRONMENT,
    SPARK_ENVIRONMENT,
    KafkaCluster,
    SparkStandalone,
)
from tests.harness.environment import TEST_ENVIRONMENT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("cluster figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session")
def spark_cluster() -> Iterator[SparkStandalone]:
    shutil.rmtree(SPARK_ENVIRONMENT["COINSTREAM_STATE_DIR"], ignore_errors=True)
    cluster = SparkStandalone({**TEST_ENVIRONMENT, **SPARK_ENVIRONMENT}, LOG_DIR)
    try:
        cluster.start()
    except StackError as error:
        cluster.stop()
        pytest.fail(str(error))
    FIGURES["spark cluster start (s)"] = {
        name: round(seconds, 1) for name, seconds in cluster.start_seconds.items()
    }
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[KafkaCluster]:
    shutil.rmtree(KAFKA_CLUSTER_ENVIRONMENT["COINSTREAM_STATE_DIR"], ignore_errors=True)
    cluster = KafkaCluster(KAFKA_CLUSTER_ENVIRONMENT, LOG_DIR)
    try:
        FIGURES["kafka cluster start (s)"] = round(cluster.start(), 1)
    except StackError as error:
        cluster.stop()
        pytest.fail(str(error))
    yield cluster
    cluster.stop()
