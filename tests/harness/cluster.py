"""The local stack's clusters as separate processes, for tests that kill one piece of them.

``KafkaCluster`` is one process per Kafka node (``stack kafka --node N``), ``SparkStandalone``
the master and its workers (``stack spark-master``, ``stack spark-worker --node N``): the same
commands ``make run`` starts, each a ``ManagedProcess`` a test can SIGKILL and start again.
``KAFKA_CLUSTER_ENVIRONMENT`` and ``SPARK_ENVIRONMENT`` are the `cluster` tests' settings for
them, on test ports.

They are small for a two-core machine: one core and 512 MiB per executor, 256 MiB daemons,
256 MiB per Kafka node.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

from aiokafka.errors import KafkaError

from deploy.local.errors import StackError
from deploy.local.kafka_broker import local_kafka_nodes
from deploy.local.readiness import wait_until
from deploy.local.spark_cluster import alive_spark_workers
from shared.kafka import live_brokers
from tests.harness.environment import (
    SPARK_TEST_CONF,
    TEST_ENVIRONMENT,
    TEST_STATE_DIR,
    offset_port,
)
from tests.harness.processes import ManagedProcess, settings_from, stop_together
from tests.harness.spark_class_archive import QUICK_JVM

CLUSTER_SPARK_CONF = {**SPARK_TEST_CONF, "spark.executor.extraJavaOptions": QUICK_JVM}
"""The drivers' test options (``SPARK_TEST_CONF``), and the quick compiler and single-threaded
collector for the executors too: an executor here lives for one test on a few thousand records."""

SPARK_ENVIRONMENT = {
    "COINSTREAM_STATE_DIR": str(TEST_STATE_DIR / "spark-cluster"),
    "COINSTREAM_LOCAL_SPARK_WORKERS": "2",
    "COINSTREAM_LOCAL_SPARK_MASTER_PORT": str(offset_port(21077)),
    "COINSTREAM_LOCAL_SPARK_MASTER_UI_PORT": str(offset_port(21180)),
    "COINSTREAM_SPARK_EXECUTOR_MEMORY": "512m",
    "COINSTREAM_SPARK_EXECUTOR_CORES": "1",
    "COINSTREAM_SPARK_EXECUTOR_INSTANCES": "2",
    "COINSTREAM_SPARK_CONF": json.dumps(CLUSTER_SPARK_CONF),
}
"""The Spark cluster's settings, which the stream worker also gets (they name its master)."""

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


def stack_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "deploy.local.stack", *arguments]


class KafkaCluster:
    """One Kafka node per bootstrap server in ``environment``, each its own process."""

    def __init__(self, environment: dict[str, str], log_dir: Path) -> None:
        self.environment = environment
        self.settings = settings_from(environment)
        self.nodes = {
            node.node_id: ManagedProcess(
                f"kafka-{node.node_id}",
                stack_command("kafka", "--node", str(node.node_id)),
                environment,
                log_dir,
            )
            for node in local_kafka_nodes(self.settings)
        }

    def live_brokers(self) -> list[int]:
        """The brokers the cluster counts as alive; empty when no node answers."""
        try:
            return asyncio.run(live_brokers(self.settings, within_seconds=3.0))
        except (KafkaError, OSError, TimeoutError):
            return []

    def wait_until_whole(self, timeout: float = 120.0) -> float:
        """Wait until every node is alive in the cluster's eyes; return the seconds it took."""
        expected = sorted(self.nodes)

        def whole() -> bool:
            for number, process in self.nodes.items():
                if not process.is_running():
                    raise StackError(f"Kafka node {number} exited:\n{process.log_tail()}")
            return self.live_brokers() == expected

        return wait_until(whole, f"Kafka nodes {expected}", timeout, interval=0.5)

    def start(self) -> float:
        """Start every node; return the seconds until all of them were alive."""
        for process in self.nodes.values():
            process.start()
        return self.wait_until_whole()

    def kill(self, node_id: int) -> None:
        self.nodes[node_id].stop(signal.SIGKILL)

    def start_node(self, node_id: int) -> None:
        self.nodes[node_id].start()

    def stop(self) -> None:
        stop_together(list(self.nodes.values()))


class SparkStandalone:
    """A standalone master and ``local_spark_workers`` workers on loopback, each its own process."""

    def __init__(self, environment: dict[str, str], log_dir: Path) -> None:
        self.settings = settings_from(environment)
        self.master = ManagedProcess(
            "spark-master", stack_command("spark-master"), environment, log_dir
        )
        self.workers = {
            number: ManagedProcess(
                f"spark-worker-{number}",
                stack_command("spark-worker", "--node", str(number)),
                environment,
                log_dir,
            )
            for number in range(1, self.settings.local_spark_workers + 1)
        }
        self.start_seconds: dict[str, float] = {}

    def start(self, timeout: float = 120.0) -> None:
        """Start the master and the workers together; wait until every worker registered."""
        started = time.monotonic()
        self.master.start()
        for process in self.workers.values():
            process.start()

        def master_answers() -> bool:
            if not self.master.is_running():
                raise StackError(f"the Spark master exited:\n{self.master.log_tail()}")
            return alive_spark_workers(self.settings) is not None

        wait_until(master_answers, "the Spark master", timeout)
        self.start_seconds["master"] = time.monotonic() - started

        def workers_registered() -> bool:
            for number, process in self.workers.items():
                if not process.is_running():
                    raise StackError(f"Spark worker {number} exited:\n{process.log_tail()}")
            return alive_spark_workers(self.settings) == len(self.workers)

        wait_until(workers_registered, f"{len(self.workers)} Spark workers", timeout)
        self.start_seconds["workers"] = time.monotonic() - started

    def stop(self) -> None:
        stop_together([*self.workers.values(), self.master])
