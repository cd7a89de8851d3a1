"""Where the tests' processes listen and keep their state: test ports, moved by
``COINSTREAM_TEST_PORT_OFFSET``, and a state folder of their own (``.state/test``).

A developer's ``make run`` on the default ports can stay up while the tests run, and two test
runs on one machine (two worktrees, say) keep apart by setting the offset to, e.g., 10800 (with
one process): every test port moves by it, and the state folder is named after it. The processes
of one run (``make test`` runs three) keep apart the same way, each moved by its own multiple of
``WORKER_PORT_STEP``, each with its own broker, emulator and state folder.
"""

from __future__ import annotations

import json
import os

from shared.settings import PROJECT_ROOT
from tests.harness.spark_class_archive import QUICK_JVM, driver_java_options

WORKER_PORT_STEP = 3600
"""How far apart two test processes of one run (pytest-xdist's ``gw0``, ``gw1``, ...) keep their
ports: more than the 18090-21593 span one process uses, so no two processes share a port."""
WORKER_INDEX = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or "0")
PORT_OFFSET = (
    int(os.environ.get("COINSTREAM_TEST_PORT_OFFSET", "0")) + WORKER_INDEX * WORKER_PORT_STEP
)
TEST_STATE_DIR = PROJECT_ROOT / ".state" / (f"test-{PORT_OFFSET}" if PORT_OFFSET else "test")


def offset_port(port: int) -> int:
    """``port`` moved by this run's offset."""
    return port + PORT_OFFSET


SPARK_TEST_CONF = {"spark.driver.extraJavaOptions": driver_java_options()}
"""Spark drivers under test run on the JVM's quick compiler and its single-threaded collector:
a test's driver lives for seconds to minutes on a few hundred records, where the optimising
compiler's work never pays back (measured on this project's 2-core machine: a driver start and
first job took 11.5 s of CPU instead of 16-21 s); and they map the class archive of
``tests.harness.spark_class_archive`` once the session's stack has made it. Behaviour is the
same; the benchmarks do not use this."""

KAFKA_TEST_JVM_OPTIONS = QUICK_JVM
"""The session's test broker likewise: a broker start 3.2 CPU-seconds instead of 4.6, idle 1.1-1.3
CPU-seconds a minute instead of 1.5 (two back-to-back runs of each on this machine). Not the
outage broker: the outage tests stop it under records in flight, and run it as shipped."""

TEST_ENVIRONMENT = {
    "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{offset_port(19092)}",
    "COINSTREAM_KAFKA_CONTROLLER_PORT": str(offset_port(19093)),
    "COINSTREAM_BIGQUERY_EMULATOR_URL": f"http://127.0.0.1:{offset_port(19050)}",
    "COINSTREAM_BIGQUERY_EMULATOR_GRPC_PORT": str(offset_port(19060)),
    "COINSTREAM_BIGQUERY_DATASET": "coinstream_test",
    "COINSTREAM_STATE_DIR": str(TEST_STATE_DIR / "stack"),
    "COINSTREAM_SPARK_CONF": json.dumps(SPARK_TEST_CONF),
    "COINSTREAM_KAFKA_JVM_OPTIONS": KAFKA_TEST_JVM_OPTIONS,
}
"""The settings that reach the session's broker and emulator (``LocalStack``)."""

OUTAGE_STACK_STATE_DIR = TEST_STATE_DIR / "outage-stack"
OUTAGE_STACK_ENVIRONMENT = {
    "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{offset_port(20092)}",
    "COINSTREAM_KAFKA_CONTROLLER_PORT": str(offset_port(20093)),
    "COINSTREAM_BIGQUERY_EMULATOR_URL": f"http://127.0.0.1:{offset_port(20050)}",
    "COINSTREAM_BIGQUERY_EMULATOR_GRPC_PORT": str(offset_port(20060)),
    "COINSTREAM_BIGQUERY_DATASET": "coinstream_test",
    "COINSTREAM_STATE_DIR": str(OUTAGE_STACK_STATE_DIR / "stack"),
}
"""The settings that reach a second broker and emulator, for the tests that stop or restart
them (``outage_stack``), so that the session's are never stopped."""

SIMULATOR_PORT = offset_port(18090)
"""The session's CoinCap simulator (``simulator_process``)."""
