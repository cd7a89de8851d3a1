"""`make run` with three bootstrap servers and two local Spark workers: three Kafka nodes, a
standalone master and two workers start with the rest, the stream worker writes its batches
from the cluster's executors, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx

from tests.cluster.support import report
from tests.harness.cluster import CLUSTER_SPARK_CONF
from tests.harness.environment import KAFKA_TEST_JVM_OPTIONS, offset_port
from tests.harness.make_run import processes_in_session, start_make_run

KAFKA_PORTS = [offset_port(port) for port in (22092, 22192, 22292)]
SPARK_UI_PORT = offset_port(22180)


def test_make_run_starts_both_clusters_with_settings_alone(tmp_path: Path) -> None:
    run = start_make_run(
        tmp_path,
        23000,
        {
            "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": ",".join(
                f"127.0.0.1:{port}" for port in KAFKA_PORTS
            ),
            "COINSTREAM_KAFKA_HEAP": "256m",
            "COINSTREAM_TOPIC_REPLICATION_FACTOR": "3",
            "COINSTREAM_TOPIC_MIN_INSYNC_REPLICAS": "2",
            "COINSTREAM_LOCAL_SPARK_WORKERS": "2",
            "COINSTREAM_LOCAL_SPARK_MASTER_PORT": str(offset_port(22077)),
            "COINSTREAM_LOCAL_SPARK_MASTER_UI_PORT": str(SPARK_UI_PORT),
            "COINSTREAM_SPARK_EXECUTOR_MEMORY": "512m",
            # The JVM options every other cluster test runs with (the shipped defaults are
            # `make run`'s own test in tests/integration/test_make_run.py).
            "COINSTREAM_KAFKA_JVM_OPTIONS": KAFKA_TEST_JVM_OPTIONS,
            "COINSTREAM_SPARK_CONF": json.dumps(CLUSTER_SPARK_CONF),
        },
    )
    make = run.process
    try:
        ready = run.wait_for_output(f"ready: Kafka at 127.0.0.1:{KAFKA_PORTS[0]}", 240)
        log_text = run.output()
        assert f"Spark master with 2 worker(s) at http://127.0.0.1:{SPARK_UI_PORT}" in log_text
        for node in (1, 2, 3):  # three nodes, each under its own name, with its own storage
            node_data = tmp_path / "state" / "kafka-cluster" / f"node-{node}" / "data"
            assert f"kafka-{node} " in log_text
            assert f"kafka: formatted new storage in {node_data}" in log_text
        first_batch = run.wait_for_output('"message": "batch 0: ', 240)

        # The worker's query runs on the cluster: the master gives it both workers' cores.
        status = httpx.get(f"http://127.0.0.1:{SPARK_UI_PORT}/json/", timeout=10).json()
        applications = [app["name"] for app in status["activeapps"]]
        assert applications == ["coinstream-stream-worker"], applications
        assert status["coresused"] == 2
        report(
            "make run with both clusters",
            seconds_to_ready=round(ready, 1),
            seconds_from_ready_to_first_batch=round(first_batch, 1),
        )

        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        make.wait(timeout=90)
        deadline = time.monotonic() + 30
        while processes_in_session(make.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_in_session(make.pid) == []
    finally:
        if make.poll() is None or processes_in_session(make.pid):
            os.killpg(make.pid, signal.SIGKILL)
