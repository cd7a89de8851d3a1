"""The clusters of the `cluster` tests: a Spark standalone cluster (a master and two workers) and
a three-node Kafka cluster, from the same jars and commands as ``make run``, on test ports.

They are small for a two-core machine: one core and 512 MiB per executor, 256 MiB daemons,
256 MiB per Kafka node. Both write their figures (start times, peak memory, records checked)
into the terminal summary and ``.state/test*/cluster-report.jsonl``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from deploy.local.cluster_processes import KafkaCluster, SparkStandalone
from deploy.local.errors import StackError
from tests.cluster.support import FIGURES, LOG_DIR
from tests.conftest import TEST_ENVIRONMENT, TEST_STATE_DIR, offset_port

SPARK_ENVIRONMENT = {
    "COINSTREAM_STATE_DIR": str(TEST_STATE_DIR / "spark-cluster"),
    "COINSTREAM_LOCAL_SPARK_WORKERS": "2",
    "COINSTREAM_LOCAL_SPARK_MASTER_PORT": str(offset_port(21077)),
    "COINSTREAM_LOCAL_SPARK_MASTER_UI_PORT": str(offset_port(21180)),
    "COINSTREAM_SPARK_EXECUTOR_MEMORY": "512m",
    "COINSTREAM_SPARK_EXECUTOR_CORES": "1",
    "COINSTREAM_SPARK_EXECUTOR_INSTANCES": "2",
}
"""The cluster's settings, which the stream worker also gets (they name its master)."""

KAFKA_CLUSTER_ENVIRONMENT = {
    **TEST_ENVIRONMENT,
    "COINSTREAM_STATE_DIR": str(TEST_STATE_DIR / "kafka-cluster"),
    "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": ",".join(
        f"127.0.0.1:{offset_port(port)}" for port in (21192, 21292, 21392)
    ),
    "COINSTREAM_KAFKA_CONTROLLER_PORT": str(offset_port(21193)),
    "COINSTREAM_KAFKA_HEAP": "256m",
    "COINSTREAM_TOPIC_REPLICATION_FACTOR": "3",
    "COINSTREAM_TOPIC_MIN_INSYNC_REPLICAS": "2",
}
"""Three nodes, and topics replicated three times of which two must hold every record."""


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
